"""Start/stop operators and the running trigger, against the emulator over HTTP."""

from __future__ import annotations


import pytest
from airflow.sdk.exceptions import AirflowException, TaskDeferred

from rekfeedback.hooks.rekognition import RekognitionCustomLabelsHook, parse_project_version_arn
from rekfeedback.operators.project_version import (
    RekognitionStartProjectVersionOperator, RekognitionStopProjectVersionOperator,
)
from rekfeedback.triggers.project_version import ProjectVersionRunningTrigger, ProjectVersionTrainedTrigger

from tests.triggers import first_event

from .conftest import FakeTI, clients, stop_model


def start_op(arn, **kw):
    kw.setdefault("waiter_delay", 1)
    kw.setdefault("waiter_max_attempts", 30)
    return RekognitionStartProjectVersionOperator(task_id="start_model", project_version_arn=arn, **kw)


def stop_op(arn, **kw):
    return RekognitionStopProjectVersionOperator(task_id="stop_model", project_version_arn=arn, waiter_delay=0.1, **kw)


def test_hook_helpers(emulator, trained):
    hook = RekognitionCustomLabelsHook()
    ref = parse_project_version_arn(trained["arn"])
    assert ref.version_name == "v1" and ref.project_name in trained["project_arn"]
    assert hook.project_arn_for_version(trained["arn"]) == trained["project_arn"]
    assert hook.get_project_version_status(trained["arn"]) in ("TRAINING_COMPLETED", "STOPPED")
    with pytest.raises(ValueError, match="project_version_arn must look like"):
        parse_project_version_arn("arn:aws:rekognition:us-east-1:123456789012:project/p/1")


def test_start_is_idempotent_and_stop_only_stops_what_this_run_started(emulator, trained):
    arn = trained["arn"]
    first = start_op(arn, deferrable=False).execute({})
    assert first["started_by_this_run"] is True and first["status"] == "RUNNING"
    again = start_op(arn, deferrable=False).execute({})
    assert again["started_by_this_run"] is False and again["status"] == "RUNNING"

    # A run that did not start it leaves it running (something else relies on it).
    ti = FakeTI({"start_model": again})
    kept = stop_op(arn, start_task_id="start_model").execute({"ti": ti})
    assert kept["stopped"] is False and kept["status"] == "RUNNING"
    kept = stop_op(arn).execute({})  # no record at all: never stop
    assert kept["stopped"] is False

    ti = FakeTI({"start_model": first})
    stopped = stop_op(arn, start_task_id="start_model").execute({"ti": ti})
    assert stopped["stopped"] is True and stopped["status"] == "STOPPED"
    assert stopped["running_seconds"] is not None and stopped["running_seconds"] >= 0
    # Idempotent: already stopped is success, nothing called.
    emulator.reset_stats()
    again = stop_op(arn, started_by_this_run="True").execute({})  # as a rendered template
    assert again["stopped"] is False and again["status"] == "STOPPED"
    assert emulator.calls["Rekognition.StopProjectVersion"] == 0


def test_stop_finds_the_start_task_in_its_dag(emulator, trained):
    from airflow.sdk import DAG

    arn = trained["arn"]
    with DAG("stop_default", schedule=None):
        start = start_op(arn, deferrable=False)
        stop = stop_op(arn)
        start >> stop
    record = start.execute({})
    assert record["started_by_this_run"] is True
    out = stop.execute({"ti": FakeTI({"start_model": record})})
    assert out["stopped"] is True and out["status"] == "STOPPED"


def test_deferrable_start_defers_with_the_running_trigger(emulator, trained):
    arn = trained["arn"]
    op = start_op(arn)  # deferrable by default
    assert op.deferrable is True
    with pytest.raises(TaskDeferred) as deferred:
        op.execute({})
    trigger = deferred.value.trigger
    assert isinstance(trigger, ProjectVersionRunningTrigger)
    assert deferred.value.method_name == "execute_complete"
    classpath, kwargs = trigger.serialize()
    assert classpath == "rekfeedback.triggers.project_version.ProjectVersionRunningTrigger"
    assert ProjectVersionRunningTrigger(**kwargs).serialize() == (classpath, kwargs)
    assert kwargs["project_arn"] == trained["project_arn"] and kwargs["version_name"] == "v1"

    event = first_event(trigger)  # aiobotocore against the emulator
    assert event.payload == {"status": "success", "project_version_arn": arn}
    out = op.execute_complete({}, event=event.payload, **deferred.value.kwargs)
    assert out["status"] == "RUNNING" and out["started_by_this_run"] is True
    with pytest.raises(AirflowException, match="did not reach RUNNING"):
        op.execute_complete({}, event={"status": "error", "message": "boom"})
    stop_model(emulator, trained)


def test_trained_trigger_and_not_trained_version(emulator, dataset, emulator_knobs):
    emulator_knobs(fail_training=True)
    _, rek = clients(emulator)
    project_arn = rek.create_project(ProjectName="failing-project")["ProjectArn"]
    from rekfeedback.core.paths import parse_s3_uri

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
