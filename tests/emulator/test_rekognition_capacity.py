"""Inference units: capacity scales between MinInferenceUnits and MaxInferenceUnits with the demand."""

from __future__ import annotations

import pytest
from botocore.exceptions import ClientError

from rekfeedback_local import synthetic
from rekfeedback_local.emulator.capacity import AutoScaler

from .helpers import FAST, client, project_with_datasets, train, unique


def drive(scaler, seconds, calls_per_second, start=0.0):
    """Offer `calls_per_second` for `seconds`; serve what the capacity allows. Returns calls served per second."""
    served = []
    for s in range(seconds):
        cap = scaler.capacity(start + s)
        n = 0
        for i in range(calls_per_second):
            ok = n < cap
            scaler.record(start + s + i / calls_per_second, ok)
            n += ok
        served.append(n)
    return served


def test_units_grow_to_max_under_overload_and_shrink_when_idle():
    scaler = AutoScaler(1, 3, per_unit=10, scale_up_seconds=2, scale_down_seconds=5)
    served = drive(scaler, 12, 50)
    assert served[0] == 10 and served[-1] == 30  # one unit, then all three: never more than MaxInferenceUnits
    assert [units for _, units in scaler.history] == [1, 2, 3]
    drive(scaler, 20, 5, start=12)  # fits in one unit
    assert scaler.units == 1


def test_without_max_units_capacity_never_changes():
    scaler = AutoScaler(2, None, per_unit=10, scale_up_seconds=0, scale_down_seconds=0)
    assert drive(scaler, 10, 100) == [20] * 10


@pytest.fixture(scope="module")
def scalable(emulator):
    s3 = client(emulator, "s3", retries=3)
    rek = client(emulator, "rekognition")
    bucket = unique("units")
    data = synthetic.generate(s3, bucket, "u", n=2, seed=41, n_seed=12, n_test=6, bad_files=False)
    project = project_with_datasets(rek, data["seed_manifest_uri"], data["test_manifest_uri"])
    arn = train(rek, project, "v1", bucket)
    return {"arn": arn, "project": project, "image": {"S3Object": {"Bucket": bucket, "Name": data["image_keys"][0]}}}


def test_detect_custom_labels_serves_what_the_auto_scaled_units_serve(emulator, emulator_knobs, scalable, monkeypatch):
    emulator_knobs(capacity_per_unit=4.0, latency=0.0, throttle_rate=0.0, scale_up_seconds=1.0)
    rek = client(emulator, "rekognition")
    rek.start_project_version(ProjectVersionArn=scalable["arn"], MinInferenceUnits=1, MaxInferenceUnits=2)
    rek.get_waiter("project_version_running").wait(ProjectArn=scalable["project"], VersionNames=["v1"],
                                                   WaiterConfig=FAST)
    clock = [1_000_000.0]  # the emulator's own clock, moved by the test: no wall-time windows
    monkeypatch.setattr(emulator.env, "clock", lambda: clock[0])
    try:
        served = []
        for second in range(4):
            clock[0] = 1_000_000.0 + second
            ok = 0
            for _ in range(12):
                try:
                    rek.detect_custom_labels(ProjectVersionArn=scalable["arn"], Image=scalable["image"])
                    ok += 1
                except ClientError as exc:
                    assert exc.response["Error"]["Code"] == "ProvisionedThroughputExceededException"
            served.append(ok)
        assert served[0] == 4 and served[-1] == 8  # one unit, then MaxInferenceUnits=2 after a second of overload
        desc = rek.describe_project_versions(ProjectArn=scalable["project"], VersionNames=["v1"])
        assert desc["ProjectVersionDescriptions"][0]["MaxInferenceUnits"] == 2
    finally:
        monkeypatch.undo()
        rek.stop_project_version(ProjectVersionArn=scalable["arn"])
