"""rekfeedback: an Apache Airflow provider for the Rekognition Custom Labels feedback loop."""
__version__ = "0.1.0"  # the one place: pyproject.toml, the provider info and the Lambda bundle read it
