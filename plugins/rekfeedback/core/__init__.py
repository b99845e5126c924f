"""The loop's logic as plain Python: no Airflow and no boto3 imports, so it is fast to test and reusable."""
