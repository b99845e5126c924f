"""Test session setup.

Airflow reads its settings at import time, so the temporary AIRFLOW_HOME and the dummy AWS
credentials are set here, before any test module imports airflow or boto3.
"""

from __future__ import annotations

import os
import pathlib
import tempfile

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]

# Each pytest-xdist worker gets a home (and a metadata database) of its own: workers inherit the controller's
# environment, and two workers writing one SQLite file would collide on run ids.
if os.environ.get("PYTEST_XDIST_WORKER"):
    os.environ["AIRFLOW_HOME"] = tempfile.mkdtemp(prefix=f"rekfeedback-airflow-{os.environ['PYTEST_XDIST_WORKER']}-")
else:
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


def _share_botocore_models() -> None:
    """Parse each botocore data file once per test process.

    Every AwsBaseHook makes a new boto3 Session, and a Session's loader caches only for itself, so every
    hook re-parses the service model (SageMaker's is megabytes): half of a dag.test()'s CPU went there.
    A real task runs in a process of its own and parses each model once anyway. The parsed files are
    shared read-only, as one Session's loader already shares them between its clients.
    """
    import functools

    from botocore import loaders

    load_file, reader = loaders.JSONFileLoader.load_file, loaders.JSONFileLoader()
    parsed = functools.lru_cache(maxsize=None)(lambda file_path: load_file(reader, file_path))
    loaders.JSONFileLoader.load_file = lambda self, file_path: parsed(file_path)


_share_botocore_models()

# Shared fixtures live in tests/fixtures/ (the emulator, trained models, Label Studio, Ground Truth accounts),
# registered here once so a test in any layer folder can use them.
pytest_plugins = ["tests.fixtures.emulator", "tests.fixtures.models", "tests.fixtures.label_studio",
                  "tests.fixtures.ground_truth"]


def pytest_itemcollected(item):
    """Every test that uses the session's Label Studio carries the `labelstudio` marker, however it gets the
    fixture: `make test` (scripts/run_tests.py) runs those in one process, since they start, restart and stop
    one server, and the rest on pytest-xdist workers beside them."""
    if "label_studio" in getattr(item, "fixturenames", ()):
        item.add_marker(pytest.mark.labelstudio)
