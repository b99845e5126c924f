"""Retries, failures, bad parameters and the deferrable path of the Ground Truth tasks, against the emulator."""

from __future__ import annotations

import asyncio

import boto3
import pytest
from airflow.sdk import DAG
from airflow.sdk.exceptions import AirflowException, TaskDeferred

from rekfeedback.operators import GroundTruthVerificationOperator
from rekfeedback.sensors import GroundTruthLabelingJobSensor
from rekfeedback.triggers import GroundTruthLabelingJobTrigger
from tests.fixtures import ground_truth as helpers
from tests.fixtures.ground_truth import make_operator as operator, make_sensor as sensor
from tests.fixtures.waits import labeling_job_reaches


def test_retried_operator_reuses_its_jobs(emulator, s3_bucket, account):
    data = helpers.make_predictions(s3_bucket, "boxes", n=8)
    emulator.reset_stats()
    first = operator(data, account, "gt_retry", label_unpredicted=True).execute(helpers.context())
    assert emulator.calls["SageMaker.CreateLabelingJob"] == 2 and all(j["created"] for j in first["jobs"])
    second = operator(data, account, "gt_retry", label_unpredicted=True).execute(helpers.context())
    assert emulator.calls["SageMaker.CreateLabelingJob"] == 2
    assert [j["name"] for j in second["jobs"]] == [j["name"] for j in first["jobs"]]
    assert not any(j["created"] for j in second["jobs"]) and second["counts"] == first["counts"]
    # A different run gets different jobs.
    third = operator(data, account, "gt_retry", label_unpredicted=True).execute(
        helpers.context("manual__2026-11-27T05:00:00+00:00"))
    assert emulator.calls["SageMaker.CreateLabelingJob"] == 4
    assert not {j["name"] for j in third["jobs"]} & {j["name"] for j in first["jobs"]}
    from rekfeedback.hooks import GroundTruthHook
    listed = GroundTruthHook().list_labeling_jobs_by_prefix("gt-retry-manual-2026-11-26")
    assert [j["LabelingJobName"] for j in listed] == sorted(j["name"] for j in first["jobs"])


def test_two_loops_on_one_schedule_never_share_a_job(emulator, s3_bucket, account, monkeypatch):
    """A dev and a prod Airflow run the same DAG at the same time: same dag_id and run_id, other turn prefixes."""
    from rekfeedback.core import ground_truth_jobs as gtjobs
    from airflow.sdk.exceptions import AirflowFailException

    prod = helpers.make_predictions(s3_bucket, "classification", n=4)
    dev = {**prod, "turn": prod["turn"] + "-dev"}
    emulator.reset_stats()
    first = operator(prod, account, "gt_two_loops").execute(helpers.context())
    second = operator(dev, account, "gt_two_loops").execute(helpers.context())
    assert emulator.calls["SageMaker.CreateLabelingJob"] == 2 and second["jobs"][0]["created"]
    assert first["jobs"][0]["name"] != second["jobs"][0]["name"]
    # Were two turns' names ever to collide, the job writing elsewhere is refused, never adopted.
    real = gtjobs.job_name
    monkeypatch.setattr(gtjobs, "job_name", lambda *a, turn, **kw: real(*a, turn="one hash for all", **kw))
    operator(prod, account, "gt_two_loops").execute(helpers.context())
    with pytest.raises(AirflowFailException, match="belongs to another loop"):
        operator(dev, account, "gt_two_loops").execute(helpers.context())


def test_failed_job_fails_the_sensor_with_its_reason(emulator, emulator_knobs, s3_bucket, account):
    emulator_knobs(fail_labeling_jobs=True)
    data = helpers.make_predictions(s3_bucket, "classification", n=4)
    result = operator(data, account, "gt_fail").execute(helpers.context())
    emulator_knobs(fail_labeling_jobs=False)
    name = result["jobs"][0]["name"]
    reason = _wait_for(name, "Failed")["FailureReason"]
    assert reason
    with pytest.raises(AirflowException, match="failed: " + reason[:40].replace("(", r"\(").replace(")", r"\)")):
        sensor(result, "gt_fail").execute(helpers.context())
    # The deferrable path reports the same reason through its trigger.
    trig = GroundTruthLabelingJobTrigger(job_names=[name], waiter_delay=0, waiter_max_attempts=3)
    event = asyncio.run(anext(trig.run())).payload
    assert event["status"] == "error" and event["failure_reason"] == reason and event["job_name"] == name
    with pytest.raises(AirflowException, match="failed"):
        sensor(result, "gt_fail").execute_complete(helpers.context(), event)


def _wait_for(name, status):
    return labeling_job_reaches(boto3.client("sagemaker"), name, status)


def test_deferrable_sensor_runs_through_its_trigger(emulator, emulator_knobs, s3_bucket, account):
    emulator_knobs(labeling_seconds=2.0, workforce_policy="oracle", error_rate=0.0)
    data = helpers.make_predictions(s3_bucket, "classification", n=8)
    result = operator(data, account, "gt_defer", label_unpredicted=True).execute(helpers.context())
    s = sensor(result, "gt_defer", deferrable=True, poke_interval=1)
    with pytest.raises(TaskDeferred) as deferred:
        s.execute(helpers.context())
    trigger = deferred.value.trigger
    assert isinstance(trigger, GroundTruthLabelingJobTrigger) and deferred.value.method_name == "execute_complete"
    classpath, kwargs = trigger.serialize()
    rebuilt = GroundTruthLabelingJobTrigger(**kwargs)  # what the triggerer does
    assert rebuilt.serialize() == (classpath, kwargs) and kwargs["job_names"] == [j["name"] for j in result["jobs"]]
    event = asyncio.run(anext(rebuilt.run())).payload  # aiobotocore against the emulator
    assert event == {"status": "success", "job_names": kwargs["job_names"]}
    out = s.execute_complete(helpers.context(), event)
    assert out["counts"]["answers"] == 8
    answers = helpers.read_lines(out["answers_uri"])
    assert all(a["labels"] == data["truth"][a["source-ref"]]["labels"] for a in answers)


def test_reschedule_mode_and_stopped_jobs(emulator, emulator_knobs, s3_bucket, account):
    from airflow.sdk.exceptions import AirflowRescheduleException

    emulator_knobs(labeling_seconds=30.0)
    data = helpers.make_predictions(s3_bucket, "classification", n=4)
    result = operator(data, account, "gt_stop").execute(helpers.context())
    with pytest.raises(AirflowRescheduleException):
        sensor(result, "gt_stop", mode="reschedule").execute(helpers.context())
    name = result["jobs"][0]["name"]
    boto3.client("sagemaker").stop_labeling_job(LabelingJobName=name)
    _wait_for(name, "Stopped")
    with pytest.raises(AirflowException, match="stopped.*allow_stopped"):
        sensor(result, "gt_stop").execute(helpers.context())
    out = sensor(result, "gt_stop", allow_stopped=True).execute(helpers.context())
    assert out["jobs"][0]["status"] == "Stopped"
    assert out["counts"]["answers"] + out["counts"]["unresolved"] <= 3


def test_sensor_times_out(emulator, emulator_knobs, s3_bucket, account):
    from airflow.sdk.exceptions import AirflowSensorTimeout

    emulator_knobs(labeling_seconds=30.0)
    data = helpers.make_predictions(s3_bucket, "classification", n=4)
    result = operator(data, account, "gt_timeout").execute(helpers.context())
    with pytest.raises(AirflowSensorTimeout):
        sensor(result, "gt_timeout", timeout=0.5).execute(helpers.context())
    boto3.client("sagemaker").stop_labeling_job(LabelingJobName=result["jobs"][0]["name"])


@pytest.mark.parametrize("name, value, message", [
    ("workteam_arn", "reviewers", "workteam_arn"),
    ("role_arn", None, "role_arn"),
    ("task_time_limit_seconds", 5, "task_time_limit_seconds"),
    ("workers_per_object", 12, "workers_per_object"),
    ("output_prefix", "bucket/turn", "output_prefix"),
    ("predictions_uris", ["https://x"], r"predictions_uris\[0\]"),
    ("pre_annotation_lambda_arn", None, "pre_annotation_lambda_arn is required"),
    ("tags", {"aws:owner": "me"}, "tags"),
])
def test_bad_parameters_fail_before_anything_exists(emulator, s3_bucket, account, name, value, message):
    from airflow.sdk.exceptions import AirflowFailException

    data = helpers.make_predictions(s3_bucket, "classification", n=4)
    emulator.reset_stats()
    op = operator(data, account, "gt_bad", **{name: value})
    with pytest.raises(AirflowFailException, match=message):
        op.execute(helpers.context())
    assert emulator.calls["SageMaker.CreateLabelingJob"] == 0
    bucket, prefix = data["turn"][5:].split("/", 1)
    written = boto3.client("s3").list_objects_v2(Bucket=bucket, Prefix=prefix + "/review/").get("KeyCount", 0)
    assert written == 0
