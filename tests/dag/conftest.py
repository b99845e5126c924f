"""The real DAG, run with `dag.test()` on the session's temporary AIRFLOW_HOME against the emulator.

- `loop_dag` (session): the metadata database initialised once, the DAG parsed from dags/ with
  1-second polls and retry delays (read from the environment when the file is parsed).
- `loop_setup` (function): a factory provisioning a whole local setup (bucket, images, role,
  Lambdas, work team, project and version 1) under names of its own, so tests never see each
  other's data; returns the provision result plus `run_conf`, every DAG setting given explicitly.
- `run_dag`: `dag.test(run_conf=...)` returning the finished DagRun, with helpers to read task
  states and XComs.
- `label_studio`: the session's real Label Studio (tests/fixtures/label_studio.py); skips when it
  cannot be installed.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import uuid

import boto3
import pendulum
import pytest

from rekfeedback.turn_config import SETTINGS
from tests.conftest import ROOT

DAG_ID = "rekognition_feedback_loop"
DAGS = ROOT / "dags"
# Read by the DAG file at parse time: the emulator answers in seconds, not hours.
PARSE_ENV = {"REKFEEDBACK_POLL_SECONDS": "1", "REKFEEDBACK_RETRY_DELAY_SECONDS": "1"}
# The settings that are not about the setup, as the tests want them (small and quick).
# The synthetic data has 3 corrupt files; with ~20 images a shard can hold 3 of 12 (25 %), over the
# default max_failed_share of 20 %, depending on how the bucket name hashes into shards.
TEST_SETTINGS = {"shard_count": 2, "images_per_task": 5, "review_timeout_hours": 1, "test_share": 0.0,
                 "min_confidence": 50.0, "audit_rate": 0.1, "max_failed_share": 0.5}


@pytest.fixture(scope="session")
def loop_dag(emulator):
    mp = pytest.MonkeyPatch()
    for key, value in PARSE_ENV.items():
        mp.setenv(key, value)
    # Every setting comes from run_conf; a developer's REKFEEDBACK_<NAME> must not leak into a run.
    for s in SETTINGS:
        mp.delenv(f"REKFEEDBACK_{s.name.upper()}", raising=False)
    from airflow.dag_processing.dagbag import BundleDagBag
    from airflow.utils import db

    db.initdb()
    bag = BundleDagBag(dag_folder=str(DAGS), bundle_path=str(DAGS))
    assert bag.import_errors == {}, bag.import_errors
    yield bag.dags[DAG_ID]
    mp.undo()


def _clients(emulator):
    kw = {"endpoint_url": emulator.endpoint_url, "region_name": emulator.region}
    return {name: boto3.client(name, **kw) for name in ("s3", "rekognition", "sagemaker")}


@pytest.fixture
def aws(emulator):
    return _clients(emulator)


def _test_tags(request):
    """Names of a test's own: fixed by the test's id, so every run of the suite sees the same buckets,
    job names and hence the same simulated workers' answers (they are seeded by the job's name).

    Label Studio keeps its projects between sessions (.labelstudio/data), and a project is found by a title
    made from these names: a test using it gets names of this session too, never a project of an earlier one."""
    salt = uuid.uuid4().hex if "label_studio" in request.fixturenames else ""
    for n in itertools.count():
        yield hashlib.sha1(f"{request.node.nodeid}:{n}:{salt}".encode()).hexdigest()[:10]


@pytest.fixture
def loop_setup(emulator, request):
    """provision() under names of the test's own; `run_conf` holds every DAG setting, explicitly."""
    from rekfeedback_local.local_setup import provision

    tags = _test_tags(request)

    def make(n_images: int = 20, bad_files: bool = True, **settings) -> dict:
        tag = next(tags)
        setup = provision(emulator.endpoint_url, bucket=f"e2e-{tag}", project_name=f"e2e-{tag}",
                          output_prefix=f"loop-{tag}", n_images=n_images, bad_files=bad_files)
        conf = {s.name: s.default for s in SETTINGS}
        conf.update(setup["config"], aws_conn_id="aws_default", **TEST_SETTINGS)
        conf.update(settings)
        unknown = set(conf) - {s.name for s in SETTINGS}
        assert not unknown, f"not DAG settings: {unknown}"
        setup["run_conf"] = conf
        setup["tag"] = tag
        return setup

    return make


def task_states(dag_run) -> dict[str, str]:
    """task_id (with `[map_index]` for mapped tasks) -> state, from the metadata database."""
    from airflow.models.taskinstance import TaskInstance
    from airflow.utils.session import create_session

    with create_session() as session:
        tis = session.query(TaskInstance).filter(TaskInstance.dag_id == dag_run.dag_id,
                                                 TaskInstance.run_id == dag_run.run_id).all()
        return {(ti.task_id if ti.map_index < 0 else f"{ti.task_id}[{ti.map_index}]"): str(ti.state)
                for ti in tis}


def xcom(dag_run, task_id: str, map_index: int = -1):
    """A task's return value, read from the metadata database (as rekfeedback_local.demo does)."""
    from airflow.models.xcom import XComModel
    from airflow.utils.session import create_session

    with create_session() as session:
        row = session.query(XComModel).filter(
            XComModel.dag_id == dag_run.dag_id, XComModel.run_id == dag_run.run_id,
            XComModel.task_id == task_id, XComModel.map_index == map_index, XComModel.key == "return_value",
        ).first()
        value = None if row is None else row.value
    return json.loads(value) if isinstance(value, str) else value


def _forget_runs_after(dag_id: str, run_after) -> None:
    """dag.test() names a run after its run_after but finds an earlier one by logical date (now, unless given):
    two tests on one fixed run_after would collide on run_id. A rerun on the same logical date keeps its run."""
    from airflow.models.dagrun import DagRun
    from airflow.utils.session import create_session

    with create_session() as session:
        for dag_run in session.query(DagRun).filter(DagRun.dag_id == dag_id, DagRun.run_after == run_after):
            session.delete(dag_run)


@pytest.fixture
def run_dag(loop_dag):
    """dag.test(); each run of a test gets a fixed date (the run id) unless it names one: no outcome of
    the suite depends on the day it runs."""
    used: set = set()  # a test's own dates too: a later default never reuses an earlier run's id
    dates = (pendulum.datetime(2026, 1, 5, 3, 0, tz="UTC").add(days=n) for n in itertools.count())

    def run(run_conf: dict, **kwargs):
        if "run_after" not in kwargs and "logical_date" not in kwargs:
            kwargs["run_after"] = next(d for d in dates if d not in used)
        used.add(kwargs.get("run_after"))
        if kwargs.get("run_after") is not None and "logical_date" not in kwargs:
            _forget_runs_after(loop_dag.dag_id, kwargs["run_after"])
        return loop_dag.test(run_conf=run_conf, **kwargs)

    return run
