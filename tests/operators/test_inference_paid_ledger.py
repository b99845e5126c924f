"""The inference operator and the paid-work ledger (core.paid) against the emulator over HTTP."""

from __future__ import annotations

import uuid

from rekfeedback.core.predictions import read_prediction_lines

from tests.fixtures.models import clients
from .test_inference import DETECT, infer, lines_of


def test_a_later_turn_reuses_paid_answers_and_skips_unusable_images_until_they_change(emulator, dataset, running):
    s3, _ = clients(emulator)
    ledger = f"s3://{dataset['bucket']}/loop/{uuid.uuid4().hex[:8]}/dataset/paid/"
    emulator.reset_stats()
    first = infer(running, dataset, paid_predictions_uri=ledger).execute({"run_id": "turn-1"})
    assert first["calls"] == emulator.calls[DETECT] > 0 and first["reused"] == 0
    bad = [k for k in dataset["bad_keys"] if not k.endswith(".txt")]
    recorded = {line["source-ref"]: line for line in lines_of(emulator, ledger + "turn-1/part-00000-of-00001.jsonl")}
    assert all(recorded[f"s3://{dataset['bucket']}/{k}"]["error"] for k in bad)
    assert all(line["etag"] for line in recorded.values())

    # One corrupt file is replaced by a real image (a new ETag): only it is tried again.
    fixed = bad[0]
    good = s3.get_object(Bucket=dataset["bucket"], Key=dataset["image_keys"][0])["Body"].read()
    s3.put_object(Bucket=dataset["bucket"], Key=fixed, Body=good)
    emulator.reset_stats()
    second = infer(running, dataset, paid_predictions_uri=ledger).execute({"run_id": "turn-2"})

    assert emulator.calls[DETECT] == second["calls"] == 1
    assert second["known_unusable"] == len(bad) - 1
    assert second["reused"] == first["predicted"] + first["no_prediction"]
    lines = {line["source-ref"]: line for line in lines_of(emulator, second["output_uri"])}
    assert not lines[f"s3://{dataset['bucket']}/{fixed}"]["error"]
    assert all(f"s3://{dataset['bucket']}/{k}" not in lines for k in bad[1:])  # skipped, not predicted
    # The reused answers are the ones paid for, unchanged.
    first_lines = {line["source-ref"]: line for line in read_prediction_lines(
        s3.get_object(Bucket=dataset["bucket"], Key=first["output_uri"].split("/", 3)[3])["Body"].read())}
    ref = f"s3://{dataset['bucket']}/{dataset['image_keys'][1]}"
    assert lines[ref]["labels"] == first_lines[ref]["labels"]
    assert lines[ref]["predicted_at"] == first_lines[ref]["predicted_at"]
