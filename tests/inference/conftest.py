"""Shared setup for the inference tests: synthetic images and a trained model in the emulator."""

from __future__ import annotations

import time
import uuid

import boto3
import pytest

from rekfeedback_local import synthetic
from rekfeedback.core.paths import parse_s3_uri


def clients(emulator):
    kw = {"endpoint_url": emulator.endpoint_url, "region_name": emulator.region}
    return boto3.client("s3", **kw), boto3.client("rekognition", **kw)


def wait_status(rek, project_arn: str, version: str, wanted: set[str], timeout: float = 30.0) -> str:
    deadline = time.monotonic() + timeout
    while True:
        status = rek.describe_project_versions(ProjectArn=project_arn, VersionNames=[version])[
            "ProjectVersionDescriptions"][0]["Status"]
        if status in wanted or time.monotonic() > deadline:
            return status
        time.sleep(0.05)


def train_model(emulator, data: dict, name: str | None = None) -> dict:
    """A trained (not started) version on the synthetic seed/test manifests."""
    _, rek = clients(emulator)
    name = name or f"p-{uuid.uuid4().hex[:10]}"
    project_arn = rek.create_project(ProjectName=name)["ProjectArn"]

    def asset(uri):
        s3 = parse_s3_uri(uri)
        return {"GroundTruthManifest": {"S3Object": {"Bucket": s3.bucket, "Name": s3.key}}}

    arn = rek.create_project_version(
        ProjectArn=project_arn, VersionName="v1",
        OutputConfig={"S3Bucket": data["bucket"], "S3KeyPrefix": f"{name}/output"},
        TrainingData={"Assets": [asset(data["seed_manifest_uri"])]},
        TestingData={"Assets": [asset(data["test_manifest_uri"])]},
    )["ProjectVersionArn"]
    status = wait_status(rek, project_arn, "v1", {"TRAINING_COMPLETED", "TRAINING_FAILED"})
    assert status == "TRAINING_COMPLETED", status
    return {"project_arn": project_arn, "version_name": "v1", "arn": arn}


def start_model(emulator, model: dict) -> None:
    _, rek = clients(emulator)
    rek.start_project_version(ProjectVersionArn=model["arn"], MinInferenceUnits=1)
    assert wait_status(rek, model["project_arn"], model["version_name"], {"RUNNING"}) == "RUNNING"


def stop_model(emulator, model: dict) -> None:
    _, rek = clients(emulator)
    if wait_status(rek, model["project_arn"], model["version_name"], {"RUNNING", "STOPPED", "TRAINING_COMPLETED"}) == "RUNNING":
        rek.stop_project_version(ProjectVersionArn=model["arn"])
        wait_status(rek, model["project_arn"], model["version_name"], {"STOPPED"})


@pytest.fixture(scope="module")
def dataset(emulator):
    """60 pool images plus the synthetic bad objects, in a bucket of their own."""
    s3, _ = clients(emulator)
    bucket = f"inf-{uuid.uuid4().hex[:16]}"
    return synthetic.generate(s3, bucket, "data", n=60, n_seed=8, n_test=12, seed=11)


@pytest.fixture(scope="module")
def trained(emulator, dataset):
    return train_model(emulator, dataset)


@pytest.fixture
def running(emulator, trained, emulator_knobs):
    """The trained model, RUNNING, fast (high capacity, no latency) unless a test sets knobs; stopped after."""
    emulator_knobs(capacity_per_unit=500.0, latency=0.0, throttle_rate=0.0)
    start_model(emulator, trained)
    yield trained
    stop_model(emulator, trained)


@pytest.fixture(scope="session", autouse=True)
def _shared_emulator_s3_client(emulator):
    """Work around an emulator cost: EmulatorEnv.s3() makes one boto3 client per thread, and the threaded
    server runs each request on a new thread, so every DetectCustomLabels built a client (~0.2 s).
    boto3 clients are thread-safe; one shared client is what the emulator means."""
    env = emulator.env
    original = env.s3_factory
    shared = original()
    env.s3_factory = lambda: shared
    env._local.__dict__.clear()
    yield
    env.s3_factory = original


class FakeTI:
    """The part of a task instance the operators use: XCom push/pull (enough for links and the stop task)."""

    def __init__(self, xcoms: dict | None = None):
        self.xcoms = dict(xcoms or {})
        self.pushed: dict = {}

    def xcom_push(self, key, value):
        self.pushed[key] = value

    def xcom_pull(self, task_ids=None, key="return_value", **_):
        return self.xcoms.get(task_ids)
