"""Both review backends write a turn's review artifacts the same way, byte for byte, from the same predictions."""

from __future__ import annotations

import json
import uuid

import pytest
from airflow.sdk import DAG

from rekfeedback.core import review
from rekfeedback.operators import GroundTruthVerificationOperator
from rekfeedback.operators.label_studio import LabelStudioReviewOperator
from tests.fixtures import ground_truth as gt_helpers
from tests.fixtures.label_studio import CONN_ID, context_for

pytestmark = pytest.mark.labelstudio


def read_s3(s3, uri):
    bucket, key = uri[5:].split("/", 1)
    return s3.get_object(Bucket=bucket, Key=key)["Body"].read().decode()


def test_ground_truth_and_label_studio_write_the_same_items_auto_accepted_and_unlabelled(label_studio, make_turn, s3):
    turn = make_turn(n=8)
    broken = {"source-ref": f"s3://{turn['bucket']}/ls/{turn['tag']}/broken.jpg", "width": None, "height": None,
              "format": None, "labels": [], "error": {"code": "InvalidImageFormatException", "message": "bad"},
              "model": turn["lines"][0]["model"], "predicted_at": "2026-11-26T05:00:00Z"}
    key = f"turns/ls-dag/{turn['tag']}/predictions/broken.jsonl"
    s3.put_object(Bucket=turn["bucket"], Key=key, Body=(json.dumps(broken) + "\n").encode())
    inputs = dict(predictions_uris=turn["predictions_uris"] + [f"s3://{turn['bucket']}/{key}"],
                  auto_accept_threshold=55, audit_rate=0.1, routing_seed=3)
    run_id = f"manual__{uuid.uuid4().hex[:8]}"

    ls_out = LabelStudioReviewOperator(task_id="review", output_prefix=turn["turn"] + "/ls", label_studio_conn_id=CONN_ID,
                                       **inputs).execute(context_for(run_id))
    with DAG("ls-dag", schedule=None):
        gt_op = GroundTruthVerificationOperator(task_id="review", output_prefix=turn["turn"] + "/gt",
                                                **gt_helpers.setup_account(), **inputs)
    gt_out = gt_op.execute(context_for(run_id))

    assert ls_out["counts"] == gt_out["counts"]
    routes = {r for r, n in gt_out["counts"].items() if n}
    assert {"human", "auto_accept", "unlabelled"} <= routes  # every artifact below has lines to compare
    for name in ("items_uri", "auto_accepted_uri", "unlabelled_uri"):
        assert ls_out[name].replace("/ls/", "/") == gt_out[name].replace("/gt/", "/")
        assert read_s3(s3, ls_out[name]) == read_s3(s3, gt_out[name]), name
    items = review.read_items(read_s3(s3, gt_out["items_uri"]), gt_out["items_uri"])
    assert len(items) == 9 and items[broken["source-ref"]]["route"] == "unlabelled"
    # An auto-accepted image gets the same answer id whichever backend routed it: its source is the model.
    auto = [json.loads(line) for line in read_s3(s3, gt_out["auto_accepted_uri"]).splitlines()]
    assert {a["source"] for a in auto} == {turn["lines"][0]["model"]}
