"""Paid work is paid once and an owned model is always stopped: the real DAG with `dag.test()`.

A worker really killed (SIGKILL of the process running the DAG) mid-inference, reruns, a failed
labeling job redone, unresolved objects and a prefix of only unusable images: each checked with the
emulator's counters (calls, answers per image) and knobs, never with sleeps and timing.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys

import pendulum

from rekfeedback.core.paths import parse_s3_uri, turn_prefix

from tests.fixtures.waits import until

from .conftest import DAG_ID, DAGS, task_states, xcom
from .test_dag_e2e import model_status, timed

DETECT = "Rekognition.DetectCustomLabels"
START = "Rekognition.StartProjectVersion"

# The DAG run in a process of its own, so the test can kill it like an OOM killer would.
RUN_IN_SUBPROCESS = """
import json, sys
import pendulum
from airflow.dag_processing.dagbag import BundleDagBag
bag = BundleDagBag(dag_folder=sys.argv[1], bundle_path=sys.argv[1])
when = pendulum.parse(sys.argv[3])
bag.dags[sys.argv[2]].test(run_conf=json.loads(sys.argv[4]), logical_date=when, run_after=when)
"""


def wait_until(condition, what: str, timeout: float):
    """Wait for an event the emulator or S3 shows (not a duration); False when it never came."""
    if until(condition, timeout):
        return True
    print(f"gave up waiting for {what}")
    return False


def s3_lines(aws, uri: str) -> list[dict]:
    loc = parse_s3_uri(uri)
    try:
        body = aws["s3"].get_object(Bucket=loc.bucket, Key=loc.key)["Body"].read().decode()
    except aws["s3"].exceptions.NoSuchKey:
        return []
    return [json.loads(line) for line in body.splitlines() if line.strip()]


def test_a_worker_killed_mid_inference_then_a_rerun_repays_at_most_50_answers_and_stops_the_model(
        loop_setup, run_dag, loop_dag, aws, emulator, emulator_knobs):
    setup = loop_setup(n_images=90, bad_files=False, train=False, shard_count=1)
    conf = setup["run_conf"]
    when = pendulum.datetime(2026, 2, 3, tz="UTC")
    run_id = f"manual__{when.isoformat()}"
    checkpoint = str(turn_prefix(conf["output_uri"], DAG_ID, run_id).join(
        "predictions", "part-00000-of-00001.checkpoints", "000001.checkpoint.jsonl"))
    emulator.reset_stats()
    emulator_knobs(detect_hold_after=70)  # the 71st call and later hang: the worker dies with answers unsaved
    proc = subprocess.Popen([sys.executable, "-c", RUN_IN_SUBPROCESS, str(DAGS), DAG_ID, when.isoformat(),
                             json.dumps(conf)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=os.environ)
    try:
        assert wait_until(lambda: sum(emulator.answered.values()) >= 70, "70 answers", timeout=300)
        # New code saves after 50 answers; the old cadence (30 s or 500 images) had saved nothing yet.
        wait_until(lambda: len(s3_lines(aws, checkpoint)) >= 50, "the checkpoint after 50 answers", timeout=10)
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        emulator_knobs(detect_hold_after=0)  # held calls end as throttled (unpaid)
    assert proc.returncode == -signal.SIGKILL
    assert sum(emulator.answered.values()) == 70
    assert model_status(aws, setup) == "RUNNING"  # started by the dead run, still billing

    rerun = timed(run_dag, conf, logical_date=when, run_after=when)

    states = task_states(rerun)
    assert rerun.run_id == run_id and str(rerun.state) == "success", states
    repeated = sum(count - 1 for count in emulator.answered.values())
    assert repeated <= 50, f"{repeated} images paid twice"
    predicted = s3_lines(aws, xcom(rerun, "inference.detect_custom_labels", 0)["output_uri"])
    assert len(predicted) == 90 and set(emulator.answered) >= {line["source-ref"] for line in predicted}
    assert model_status(aws, setup) == "STOPPED"
    summary = xcom(rerun, "summary")
    assert summary["model_started_by_this_run"] is True and summary["model_hours"] > 0


def test_a_prefix_of_only_unusable_images_is_recorded_when_inference_fails_and_never_starts_the_model_again(
        loop_setup, run_dag, aws, emulator):
    import io

    from PIL import Image

    setup = loop_setup(n_images=4, bad_files=False, train=False)
    tiny = io.BytesIO()
    Image.new("RGB", (32, 32), "white").save(tiny, format="PNG")
    junk = {"junk/corrupt.jpg": b"\xff\xd8\xff\xe0 not really a jpeg", "junk/tiny.png": tiny.getvalue(),
            "junk/empty.png": b""}
    for key, body in junk.items():
        aws["s3"].put_object(Bucket=setup["bucket"], Key=key, Body=body)
    conf = {**setup["run_conf"], "input_uri": f"s3://{setup['bucket']}/junk/"}

    first = timed(run_dag, conf)
    states = task_states(first)
    assert states["inference.detect_custom_labels[0]"] == "failed" or states.get(
        "inference.detect_custom_labels[1]") == "failed", states
    assert model_status(aws, setup) == "STOPPED"  # the teardown stopped what the run started

    emulator.reset_stats()
    second = timed(run_dag, conf)
    states = task_states(second)
    assert states["preflight"] == "skipped", states
    assert emulator.calls[START] == 0 and emulator.calls[DETECT] == 0
    # A fixed file under the same key (a new ETag) is tried again: tests/operators/test_inference_paid_ledger.py.


def test_objects_a_backend_left_unresolved_are_reviewed_again_next_turn_without_paying_their_predictions(
        loop_setup, run_dag, aws, emulator, emulator_knobs):
    setup = loop_setup(n_images=16, train=False, auto_accept_confidence=None, audit_rate=0.0)
    conf = {**setup["run_conf"], "noise_check": "off"}  # first-round jobs only: no review round to expire too
    emulator_knobs(unlabelled_share=0.25)
    # The simulated workers are seeded by the job's name, which holds the run id: a fixed date makes which
    # objects expire the same on every run (a job where every object expired would fail the turn instead).
    first = timed(run_dag, conf, run_after=pendulum.datetime(2026, 6, 1, 3, 0, tz="UTC"))
    assert str(first.state) == "success", task_states(first)
    first_predictions = {line["source-ref"]: line for shard in range(conf["shard_count"])
                         for line in s3_lines(aws, xcom(first, "inference.detect_custom_labels", shard)["output_uri"])}
    merged = {json.loads(line)["source-ref"] for line in s3_lines_text(aws, xcom(first, "dataset.merge")["cumulative_manifest_uri"])}
    unresolved = {ref for ref, line in first_predictions.items() if ref not in merged and not line["error"]}
    assert unresolved, "the knob left nothing unresolved"

    emulator_knobs(unlabelled_share=0.0)
    emulator.reset_stats()
    second = timed(run_dag, conf)

    assert str(second.state) == "success", task_states(second)
    assert emulator.calls[DETECT] == 0 and emulator.calls[START] == 0  # reused, not paid again
    assert emulator.calls["SageMaker.CreateLabelingJob"] >= 1
    reused = {line["source-ref"]: line for shard in range(conf["shard_count"])
              for line in s3_lines(aws, xcom(second, "inference.detect_custom_labels", shard)["output_uri"])}
    assert unresolved <= set(reused)
    assert all(reused[ref]["predicted_at"] == first_predictions[ref]["predicted_at"] for ref in unresolved)


def s3_lines_text(aws, uri: str) -> list[str]:
    loc = parse_s3_uri(uri)
    body = aws["s3"].get_object(Bucket=loc.bucket, Key=loc.key)["Body"].read().decode()
    return [line for line in body.splitlines() if line.strip()]
