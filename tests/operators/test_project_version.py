"""Start/stop operators and their deferred waits, against the emulator over HTTP."""

from __future__ import annotations

import pytest
from airflow.sdk.exceptions import AirflowException, TaskDeferred

from rekfeedback.hooks.rekognition import RekognitionCustomLabelsHook, parse_project_version_arn
from rekfeedback.operators import RekognitionStartProjectVersionOperator, RekognitionStopProjectVersionOperator
from rekfeedback.triggers.project_version import (
    ProjectVersionRunningTrigger, ProjectVersionSettledTrigger, ProjectVersionStoppedTrigger,
)

from tests.fixtures.models import FakeTI, stop_model
from tests.fixtures.triggers import first_event


def start_op(arn, **kw):
    kw.setdefault("waiter_delay", 1)
    kw.setdefault("waiter_max_attempts", 30)
    return RekognitionStartProjectVersionOperator(task_id="start_model", project_version_arn=arn, **kw)


def stop_op(arn, **kw):
    kw.setdefault("deferrable", False)
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


def _resume(op, deferred, context, expected_trigger):
    """The deferred wait run for real in a trigger (aiobotocore against the emulator), then the method it names."""
    assert isinstance(deferred.value.trigger, expected_trigger)
    classpath, kwargs = deferred.value.trigger.serialize()
    event = first_event(type(deferred.value.trigger)(**kwargs))
    return getattr(op, deferred.value.method_name)(context, event=event.payload, **(deferred.value.kwargs or {}))


def test_every_model_wait_defers_stop_settle_and_start_after_stopping(emulator, trained, emulator_knobs):
    """No model wait blocks a worker: a STARTING model settles, a stop ends, a STOPPING model is waited out,
    each in the triggerer (the waiters of waiters/rekognition.json), and the task resumes where it was."""
    arn = trained["arn"]
    emulator_knobs(start_seconds=30.0, stop_seconds=30.0)  # both take minutes on AWS
    first = start_op(arn)
    with pytest.raises(TaskDeferred):
        first.execute({})
    record = {"start_model": {"project_version_arn": arn, "started_by_this_run": True}}

    stop = stop_op(arn, deferrable=True, start_task_id="start_model")
    with pytest.raises(TaskDeferred) as settle:  # STARTING: StopProjectVersion would be refused
        stop.execute({"ti": FakeTI(record)})
    assert settle.value.method_name == "execute_after_settled"
    emulator.advance_clock(30.0)
    with pytest.raises(TaskDeferred) as stopping:  # settled RUNNING: stopped, then the wait for STOPPED defers
        _resume(stop, settle, {"ti": FakeTI(record)}, ProjectVersionSettledTrigger)
    assert emulator.calls["Rekognition.StopProjectVersion"] >= 1

    again = start_op(arn)  # the next turn finds it STOPPING: waits it out in the triggerer, then starts it
    with pytest.raises(TaskDeferred) as out_of_stopping:
        again.execute({})
    assert out_of_stopping.value.method_name == "execute_after_stopped"
    emulator.advance_clock(30.0)
    result = _resume(stop, stopping, {"ti": FakeTI(record)}, ProjectVersionStoppedTrigger)
    assert result["stopped"] is True and result["status"] == "STOPPED"
    with pytest.raises(TaskDeferred) as running:
        _resume(again, out_of_stopping, {}, ProjectVersionStoppedTrigger)
    emulator.advance_clock(30.0)
    started = _resume(again, running, {}, ProjectVersionRunningTrigger)
    assert started["status"] == "RUNNING" and started["started_by_this_run"] is True
    stop_model(emulator, trained)
