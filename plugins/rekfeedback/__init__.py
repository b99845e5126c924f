"""rekfeedback: an Apache Airflow provider for the Rekognition Custom Labels feedback loop."""
__version__ = "0.1.0"
