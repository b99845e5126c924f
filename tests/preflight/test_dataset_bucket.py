"""Preflight refuses a turn whose new images are in another bucket than the cumulative dataset's, before
anything is started or paid, and says what to do; a new `dataset_name` starts a new dataset instead."""

from __future__ import annotations

import json

from rekfeedback import turn_config
from tests.preflight.conftest import DAG_ID


def _put_cumulative(setup, refs, **overrides) -> str:
    manifest = turn_config.cumulative_manifest_uri(turn_config.resolve({**setup.config, **overrides}, environ={}), DAG_ID)
    bucket, key = manifest.removeprefix("s3://").split("/", 1)
    setup.client("s3").put_object(Bucket=bucket, Key=key, Body="".join(
        json.dumps({"source-ref": ref, "bbox": {"annotations": []}}) + "\n" for ref in refs).encode())
    return manifest


def test_new_images_in_another_bucket_are_refused_with_what_to_do(setup):
    manifest = _put_cumulative(setup, [f"s3://old-dataset-bucket/images/{i}.jpg" for i in range(3)])
    report = setup.check()
    assert report.failed
    [error] = [f for f in report.errors if f.check == "input"]
    assert setup.result["bucket"] in error.problem and "old-dataset-bucket" in error.problem and manifest in error.problem
    assert "copy the new images" in error.advice and "s3://old-dataset-bucket/" in error.advice
    assert "dataset_name" in error.advice


def test_a_new_dataset_name_starts_a_new_cumulative_dataset(setup):
    _put_cumulative(setup, [f"s3://old-dataset-bucket/images/{i}.jpg" for i in range(3)])
    report = setup.check(dataset_name="dataset-2")
    assert report.findings == [], report.format()
    assert report.facts["new_images"] == 6
    config = turn_config.resolve({**setup.config, "dataset_name": "dataset-2"}, environ={})
    assert turn_config.cumulative_manifest_uri(config, DAG_ID).endswith(f"/{DAG_ID}/dataset-2/cumulative.manifest")
    assert turn_config.unusable_images_uri(config, DAG_ID).endswith(f"/{DAG_ID}/dataset/unusable.jsonl")  # about images


def test_a_bad_dataset_name_is_a_settings_error(setup):
    report = setup.check(dataset_name="../elsewhere")
    assert any("dataset_name" in f.problem for f in report.errors), report.format()
