"""Where the emulator was more lenient or less realistic than AWS: automated labeling, dataset stats while
a dataset is being created, and a default model speed at which one sequential client is never throttled."""

from __future__ import annotations

import uuid

import pytest
from botocore.exceptions import ClientError

from rekfeedback_local import synthetic
from rekfeedback_local.emulator.base import EmulatorConfig

from .helpers import client, manifest_source, project_with_datasets, train, unique, version_description
from .test_ground_truth_workforce import aws, bucket, builtin, job_request, knobs  # noqa: F401


def later(emulator, monkeypatch, seconds: float) -> None:
    now = emulator.env.clock()
    monkeypatch.setattr(emulator.env, "clock", lambda: now + seconds)


@pytest.mark.parametrize("task, expected", [(None, "not supported for custom"),
                                            ("AdjustmentBoundingBox", "not supported for AdjustmentBoundingBox"),
                                            ("BoundingBox", "does not emulate automated data labeling")])
def test_automated_labeling_is_refused_never_silently_ignored(aws, bucket, task, expected):
    sm, _ = aws
    lambdas = builtin(task) if task else ("arn:aws:lambda:us-east-1:123456789012:function:pre", None)
    request = job_request(bucket, f"auto-{uuid.uuid4().hex[:8]}", "boxes.manifest", "auto", *lambdas)
    request["LabelingJobAlgorithmsConfig"] = {
        "LabelingJobAlgorithmSpecificationArn":
            "arn:aws:sagemaker:us-east-1:027400017018:labeling-job-algorithm-specification/object-detection"}
    with pytest.raises(ClientError) as refused:
        sm.create_labeling_job(**request)
    assert refused.value.response["Error"]["Code"] == "ValidationException"
    assert expected in str(refused.value)


def test_dataset_stats_appear_once_the_dataset_is_created(emulator, emulator_knobs, monkeypatch):
    rek = client(emulator, "rekognition")
    made = synthetic.generate(client(emulator, "s3", retries=3), unique("stats"), "d", n=0, seed=51, n_seed=6,
                              n_test=0, bad_files=False)
    project = rek.create_project(ProjectName=unique("stats"))["ProjectArn"]
    emulator_knobs(dataset_seconds=30)
    arn = rek.create_dataset(ProjectArn=project, DatasetType="TRAIN",
                             DatasetSource=manifest_source(made["seed_manifest_uri"]))["DatasetArn"]
    creating = rek.describe_dataset(DatasetArn=arn)["DatasetDescription"]
    assert creating["Status"] == "CREATE_IN_PROGRESS" and creating["DatasetStats"]["TotalEntries"] == 0
    later(emulator, monkeypatch, 31)
    created = rek.describe_dataset(DatasetArn=arn)["DatasetDescription"]
    assert created["Status"] == "CREATE_COMPLETE" and created["DatasetStats"]["TotalEntries"] == 6


def test_one_sequential_client_is_never_throttled_at_the_default_speed(emulator, emulator_knobs):
    defaults = EmulatorConfig()
    assert defaults.latency > 0  # the old default (0 s) let one loop outrun a unit's capacity
    s3 = client(emulator, "s3", retries=3)
    made = synthetic.generate(s3, unique("speed"), "d", n=1, seed=52, n_seed=8, n_test=8, bad_files=False)
    rek = client(emulator, "rekognition")
    project = project_with_datasets(rek, made["seed_manifest_uri"], made["test_manifest_uri"])
    version = train(rek, project, "v1", made["bucket"])
    rek.start_project_version(ProjectVersionArn=version, MinInferenceUnits=1)
    rek.get_waiter("project_version_running").wait(ProjectArn=project, VersionNames=["v1"],
                                                    WaiterConfig={"Delay": 0.1, "MaxAttempts": 100})
    emulator_knobs(latency=defaults.latency, capacity_per_unit=defaults.capacity_per_unit, throttle_rate=0.0)
    image = {"S3Object": {"Bucket": made["bucket"], "Name": made["image_keys"][0]}}
    before = sum(n for key, n in emulator.errors.items() if key.startswith("Rekognition.DetectCustomLabels."))
    for _ in range(2 * int(defaults.capacity_per_unit) + 2):  # more calls than one unit admits in a second
        rek.detect_custom_labels(ProjectVersionArn=version, Image=image)
    after = sum(n for key, n in emulator.errors.items() if key.startswith("Rekognition.DetectCustomLabels."))
    assert after == before
    rek.stop_project_version(ProjectVersionArn=version)
    assert version_description(rek, project, "v1")["Status"] in ("STOPPING", "STOPPED")
