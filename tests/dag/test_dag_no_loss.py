"""The real DAG (`dag.test()` against the emulator): no verified answer is lost when the input bucket changes."""

from __future__ import annotations

import json

import pendulum

from rekfeedback import turn_config
from rekfeedback.core.paths import parse_s3_uri

from .conftest import DAG_ID, task_states, xcom


def test_a_turn_from_another_bucket_is_refused_before_anything_is_paid_and_loses_no_verified_line(
        loop_setup, run_dag, aws, emulator):
    setup = loop_setup(n_images=6, bad_files=False)
    conf = setup["run_conf"]
    # The cumulative dataset of earlier turns: human-verified images in another bucket.
    dataset_bucket = f"ds-{setup['tag']}"
    aws["s3"].create_bucket(Bucket=dataset_bucket)
    verified = "".join(json.dumps({
        "source-ref": f"s3://{dataset_bucket}/images/{i}.jpg", "shape": 0,
        "shape-metadata": {"class-name": "circle", "confidence": 1.0, "type": "groundtruth/image-classification",
                           "human-annotated": "yes", "creation-date": "2026-11-01T00:00:00.000", "job-name": "turn-1"},
    }) + "\n" for i in range(4))
    cumulative = parse_s3_uri(turn_config.cumulative_manifest_uri(conf, DAG_ID))
    aws["s3"].put_object(Bucket=cumulative.bucket, Key=cumulative.key, Body=verified.encode())
    emulator.reset_stats()

    dag_run = run_dag(conf)

    states = task_states(dag_run)
    assert str(dag_run.state) == "failed" and states["preflight"] == "failed", states
    assert emulator.calls["Rekognition.StartProjectVersion"] == 0
    assert emulator.calls["Rekognition.DetectCustomLabels"] == 0
    assert emulator.calls["SageMaker.CreateLabelingJob"] == 0
    body = aws["s3"].get_object(Bucket=cumulative.bucket, Key=cumulative.key)["Body"].read().decode()
    assert body == verified


def test_objects_left_unresolved_are_counted_in_the_summary_and_the_report(loop_setup, run_dag, aws, emulator_knobs):
    # The workforce leaves some objects unlabelled: Ground Truth lists them as failed objects. Which ones
    # is seeded by the job name, so a fixed run date (hence run id and job names) makes it deterministic.
    emulator_knobs(workforce_policy="oracle", error_rate=0.0, unlabelled_share=0.5)
    # Images without a prediction are listed as unlabelled (no labelling job of one object that could lose
    # it and fail); no review round (its job would meet the same workforce).
    setup = loop_setup(n_images=10, bad_files=False, train=False, images_per_task=1, review_round=False,
                       label_unpredicted=False)
    dag_run = run_dag(setup["run_conf"], run_after=pendulum.datetime(2026, 6, 1, 3, 0, tz="UTC"))
    states = task_states(dag_run)
    assert str(dag_run.state) == "success", states

    wait = xcom(dag_run, "human_review.ground_truth_wait")
    loc = parse_s3_uri(wait["unresolved_uri"])
    body = aws["s3"].get_object(Bucket=loc.bucket, Key=loc.key)["Body"].read().decode()
    unresolved = {json.loads(line)["source-ref"] for line in body.splitlines() if line.strip()}
    merge = xcom(dag_run, "dataset.merge")
    manifest = parse_s3_uri(merge["manifest_uri"])
    written = {json.loads(line)["source-ref"] for line in
               aws["s3"].get_object(Bucket=manifest.bucket, Key=manifest.key)["Body"].read().decode().splitlines()}
    expected = len(unresolved - written)
    assert expected > 0, "the workforce should have left some objects unlabelled"
    assert merge["images"]["unresolved"] == expected
    assert xcom(dag_run, "summary")["unresolved"] == expected
    assert xcom(dag_run, "report")["unresolved"] == expected
