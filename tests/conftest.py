"""Test session setup.

Airflow reads its settings at import time, so the temporary AIRFLOW_HOME and the dummy AWS
credentials are set here, before any test module imports airflow or boto3.
"""

from __future__ import annotations

import os
import pathlib
import tempfile

ROOT = pathlib.Path(__file__).resolve().parents[1]

os.environ.setdefault("AIRFLOW_HOME", tempfile.mkdtemp(prefix="rekfeedback-airflow-"))
os.environ["AIRFLOW__CORE__LOAD_EXAMPLES"] = "False"
os.environ["AIRFLOW__CORE__DAGS_FOLDER"] = str(ROOT / "dags")
os.environ.setdefault("AIRFLOW__CORE__UNIT_TEST_MODE", "False")
# As docker-compose.yaml sets it: operators and sensors built without `deferrable=` wait in the triggerer.
os.environ["AIRFLOW__OPERATORS__DEFAULT_DEFERRABLE"] = "True"
# Never let a test reach a real AWS account, whatever the developer's shell has.
for var in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN"):
    os.environ.pop(var, None)
os.environ["AWS_ACCESS_KEY_ID"] = "testing"
os.environ["AWS_SECRET_ACCESS_KEY"] = "testing"
os.environ["AWS_DEFAULT_REGION"] = "us-east-1"
os.environ.setdefault("AWS_EC2_METADATA_DISABLED", "true")

# The emulator fixtures (a session-wide server on a free port) live in tests/fixtures/.
pytest_plugins = ["tests.fixtures.emulator"]
