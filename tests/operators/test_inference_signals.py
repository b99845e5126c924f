"""Inference keeps the selection signals without changing the predictions humans see."""

from __future__ import annotations

import uuid

from rekfeedback.core.predictions import read_prediction_lines
from rekfeedback.operators.inference import RekognitionCustomLabelsInferenceOperator

from tests.fixtures.models import clients


def run(emulator, dataset, model, **kw) -> tuple[dict, list[dict]]:
    out = RekognitionCustomLabelsInferenceOperator(
        task_id="infer", project_version_arn=model["arn"], input_prefix=dataset["images_prefix_uri"],
        output_prefix=f"s3://{dataset['bucket']}/turns/{uuid.uuid4().hex[:8]}", initial_rate=100.0,
        max_failed_share=0.2, progress_interval=5, **kw).execute({})
    s3, _ = clients(emulator)
    bucket, key = out["output_uri"][5:].split("/", 1)
    return out, list(read_prediction_lines(s3.get_object(Bucket=bucket, Key=key)["Body"].read()))


def test_lower_min_confidence_keeps_the_shown_predictions_and_adds_signals(emulator, dataset, running):
    # MaxResults too: with signals it is applied after the threshold, as the service applies it.
    for options in ({"min_confidence": 55.0, "max_results": 1},):
        plain, plain_lines = run(emulator, dataset, running, **options)
        kept, kept_lines = run(emulator, dataset, running, keep_signals=True, **options)
        assert [(x["source-ref"], x["labels"], x["error"]) for x in kept_lines] == \
               [(x["source-ref"], x["labels"], x["error"]) for x in plain_lines]
        assert plain["descriptor_bytes"] == 0 and not any("signals" in x for x in plain_lines)  # header-only path
        answered = [x for x in kept_lines if not x["error"]]
        assert answered and all(x["signals"]["descriptor"] and x["signals"]["descriptor_bytes"] > 0 for x in answered)
        assert kept["descriptor_bytes"] == sum(x["signals"]["descriptor_bytes"] for x in answered) > plain["header_bytes"]
        floor = options["min_confidence"] - 25.0
        below = [b for x in answered for b in x["signals"]["below"]]
        assert below and all(floor <= b["confidence"] < options["min_confidence"] for b in below)
