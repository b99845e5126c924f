"""Model ownership kept in S3 (core.ownership): retries, reruns and the teardown agree, against the emulator."""

from __future__ import annotations

import uuid

import pytest
from airflow.sdk.exceptions import TaskDeferred

from rekfeedback.hooks.rekognition import RekognitionCustomLabelsHook

from tests.fixtures.triggers import first_event

from tests.fixtures.models import FakeTI, clients, stop_model
from tests.operators.test_project_version import start_op, stop_op


@pytest.fixture
def records(dataset):
    tag = uuid.uuid4().hex[:8]
    return {"records_prefix": f"s3://{dataset['bucket']}/loop-{tag}/run/model/",
            "owned_models_uri": f"s3://{dataset['bucket']}/loop-{tag}/dataset/owned-models/"}


def owned_records(emulator, records) -> list[str]:
    s3, _ = clients(emulator)
    bucket, key = records["owned_models_uri"][5:].split("/", 1)
    return [o["Key"] for o in s3.list_objects_v2(Bucket=bucket, Prefix=key).get("Contents", [])]


def test_a_start_retry_that_finds_the_model_starting_still_stops_it_at_the_end(emulator, trained, emulator_knobs,
                                                                              records):
    emulator_knobs(start_seconds=30.0)  # a start on AWS takes minutes: the retry finds STARTING
    arn, ctx = trained["arn"], {"run_id": "manual__retry"}
    hook = RekognitionCustomLabelsHook()
    assert hook.get_project_version_status(arn) in ("TRAINING_COMPLETED", "STOPPED")
    before = hook.get_project_version_status(arn)
    with pytest.raises(TaskDeferred):  # first try: starts the model, then its worker dies while deferred
        start_op(arn, status_before_run=before, **records).execute(ctx)
    assert hook.get_project_version_status(arn) == "STARTING"
    assert len(owned_records(emulator, records)) == 1  # the loop knows this run owns a billing model

    # The retry sees STARTING, as if another process were starting it; the record says it is ours.
    retry = start_op(arn, status_before_run=before, **records)
    with pytest.raises(TaskDeferred) as deferred:
        retry.execute(ctx)
    emulator.advance_clock(30.0)  # the start finishes on the emulator's clock, not after 30 s of waiting
    event = first_event(deferred.value.trigger)
    result = retry.execute_complete(ctx, event=event.payload, **deferred.value.kwargs)  # kwargs as a triggerer passes
    assert result["started_by_this_run"] is True and result["start_requested_at"]

    # The teardown, whatever XCom says, stops it and counts the hours from the first start request.
    out = stop_op(arn, start_task_id="start_model", **records).execute(
        {**ctx, "ti": FakeTI({"start_model": {**result, "started_by_this_run": False}})})
    assert out["stopped"] is True and out["status"] == "STOPPED" and out["running_seconds"] > 0
    assert hook.get_project_version_status(arn) == "STOPPED"
    assert owned_records(emulator, records) == []


def test_a_model_running_before_the_run_is_never_stopped_even_on_retry(emulator, trained, records):
    arn, ctx = trained["arn"], {"run_id": "manual__theirs"}
    start_op(arn, deferrable=False).execute({})  # someone else's model
    try:
        for _ in range(2):  # the try and its retry
            out = start_op(arn, status_before_run="RUNNING", deferrable=False, **records).execute(ctx)
            assert out["started_by_this_run"] is False
        kept = stop_op(arn, **records).execute(ctx)
        assert kept["stopped"] is False and kept["status"] == "RUNNING"
        assert owned_records(emulator, records) == []
    finally:
        stop_model(emulator, trained)


def test_nothing_to_predict_starts_nothing(emulator, trained, records):
    arn = trained["arn"]
    emulator.reset_stats()
    out = start_op(arn, status_before_run="STOPPED", images_to_predict="0", **records).execute({"run_id": "r"})
    assert out["status"] in ("STOPPED", "TRAINING_COMPLETED")
    assert emulator.calls["Rekognition.StartProjectVersion"] == 0


def test_preflight_stops_a_model_an_earlier_turn_left_running(emulator, trained, dataset):
    """The loop-level record a dead turn left behind: the next preflight stops that model."""
    from rekfeedback import turn_config
    from rekfeedback.operators.preflight import FeedbackLoopPreflightOperator

    arn = trained["arn"]
    config = {"output_uri": f"s3://{dataset['bucket']}/loop-{uuid.uuid4().hex[:8]}/", "stop_leftover_models": True}
    records = {"records_prefix": config["output_uri"] + "dag/dead/model/",
               "owned_models_uri": turn_config.owned_models_uri(config, "dag")}
    dead = start_op(arn, status_before_run="STOPPED", **records)
    with pytest.raises(TaskDeferred) as deferred:  # the turn dies while its model starts
        dead.execute({"run_id": "manual__dead"})
    assert first_event(deferred.value.trigger).payload["status"] == "success"
    assert len(owned_records(emulator, records)) == 1
    s3, _ = clients(emulator)
    emulator.reset_stats()
    op = FeedbackLoopPreflightOperator(task_id="preflight", params_to_check={})
    assert op._stop_leftover_models({**config, "stop_leftover_models": False}, "dag", "manual__next",
                                    lambda service: s3) == set()
    assert emulator.calls["Rekognition.StopProjectVersion"] == 0  # the setting turns it off

    stopped = op._stop_leftover_models(config, "dag", "manual__next", lambda service: s3)
    assert stopped == {arn} and emulator.calls["Rekognition.StopProjectVersion"] == 1
    assert owned_records(emulator, records) == []
    stop_model(emulator, trained)
