"""The real DAG (`dag.test()` against the emulator): no verified answer is lost when the input bucket changes."""

from __future__ import annotations

import json

from rekfeedback import turn_config
from rekfeedback.core.paths import parse_s3_uri

from .conftest import DAG_ID, task_states


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
