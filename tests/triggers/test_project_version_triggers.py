"""The project-version triggers run as the triggerer runs them (aiobotocore against the emulator over HTTP)."""

from __future__ import annotations

import pytest
from airflow.sdk.exceptions import AirflowException

from rekfeedback.core.paths import parse_s3_uri
from rekfeedback.triggers.project_version import ProjectVersionTrainedTrigger
from tests.fixtures.models import clients
from tests.fixtures.triggers import first_event
from tests.operators.test_project_version import start_op


def test_trained_trigger_and_not_trained_version(emulator, dataset, emulator_knobs):
    emulator_knobs(fail_training=True)
    _, rek = clients(emulator)
    project_arn = rek.create_project(ProjectName="failing-project")["ProjectArn"]

    def asset(uri):
        s3 = parse_s3_uri(uri)
        return {"GroundTruthManifest": {"S3Object": {"Bucket": s3.bucket, "Name": s3.key}}}

    arn = rek.create_project_version(
        ProjectArn=project_arn, VersionName="bad", OutputConfig={"S3Bucket": dataset["bucket"]},
        TrainingData={"Assets": [asset(dataset["seed_manifest_uri"])]},
        TestingData={"Assets": [asset(dataset["test_manifest_uri"])]})["ProjectVersionArn"]
    trigger = ProjectVersionTrainedTrigger(project_arn=project_arn, version_name="bad", project_version_arn=arn,
                                           waiter_delay=1, waiter_max_attempts=20)
    event = first_event(trigger)
    assert event.payload["status"] == "error" and "training failed" in event.payload["message"]
    with pytest.raises(AirflowException, match="failed training"):
        start_op(arn, deferrable=False).execute({})
