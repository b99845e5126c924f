"""The pieces the feedback-loop DAG (dags/rekognition_feedback_loop.py) is assembled from: templates that read
the preflight's result, the human-review task group used for both rounds, and the small Python tasks that
branch and join between the operators. Importing them does no I/O (the DAG file is parsed often)."""
