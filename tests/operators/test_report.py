"""TurnReportOperator against the emulator's S3: writes the report next to the turn, keeps a history."""

from __future__ import annotations

import json
import os
import urllib.request

import boto3
import pytest

from rekfeedback.core.paths import run_key
from rekfeedback.operators.report import TurnReportOperator
from tests.fixtures.report_sample import demo_turn

BUCKET = "set-per-test"  # replaced by the `s3` fixture with a fresh bucket


class _Ti:
    """Collects the link's XCom; the operator's AWS calls go to the emulator for real."""

    def __init__(self):
        self.pushed = {}

    def xcom_push(self, key, value):
        self.pushed[key] = value


def _context(run_id):
    return {"run_id": run_id, "ti": _Ti()}


@pytest.fixture
def s3(emulator, s3_bucket, monkeypatch):
    # A fresh bucket per test, so the history file starts empty whatever ran before.
    monkeypatch.setattr(__import__(__name__, fromlist=["BUCKET"]), "BUCKET", s3_bucket)
    return boto3.client("s3", endpoint_url=emulator.endpoint_url, region_name="us-east-1")


def _put_lines(s3, key, lines):
    s3.put_object(Bucket=BUCKET, Key=key, Body="".join(json.dumps(x) + "\n" for x in lines).encode())


def _upload_turn(s3, prefix, turn):
    preds = turn["predictions"]
    half = len(preds) // 2
    _put_lines(s3, f"{prefix}/predictions/part-00000-of-00002.jsonl", preds[:half])
    _put_lines(s3, f"{prefix}/predictions/part-00001-of-00002.jsonl", preds[half:])
    # Checkpoints are work in progress, never the shard's result: an image only there must not count.
    stray = {**preds[0], "source-ref": "s3://demo-bucket/images/only-in-checkpoint.jpg"}
    _put_lines(s3, f"{prefix}/predictions/part-00000-of-00002.checkpoint.jsonl", [*preds[:3], stray])
    human = [a for a in turn["answers"] if a["human"]]
    auto = [a for a in turn["answers"] if not a["human"]]
    _put_lines(s3, f"{prefix}/answers/ground-truth.jsonl", human)
    _put_lines(s3, f"{prefix}/review/auto-accepted.jsonl", auto)


def _operator(prefix, task_id="report", **kw):
    base = f"s3://{BUCKET}/{prefix}"
    params = dict(
        task_id=task_id,
        output_prefix=base,
        predictions_uris=f"{base}/predictions/",
        answers_uris=[f"{base}/answers/ground-truth.jsonl", f"{base}/review/auto-accepted.jsonl",
                      f"{base}/answers/label-studio.jsonl"],
        history_uri=f"s3://{BUCKET}/loop/history.json",
        inference_unit_hours="1.5",
        min_support=10,
    )
    params.update(kw)
    return TurnReportOperator(**params)


def test_report_written_next_to_the_turn_with_history(s3):
    turn = demo_turn()
    prefix = "out/feedback_loop/manual-2026-11-26T05-00-00-00-00"
    _upload_turn(s3, prefix, turn)
    ctx = _context("manual__2026-11-26T05:00:00+00:00")
    merge = {"images": {"unresolved": 3}, "boxes_dropped": 2, "rejects": 0, "manifest_lines": 0}
    result = _operator(prefix, training_results=json.dumps(turn["training"]), merge_summary=merge).execute(ctx)

    assert result["report_uri"] == f"s3://{BUCKET}/{prefix}/report/index.html"
    assert result["run"] == run_key("manual__2026-11-26T05:00:00+00:00")  # the run id's key, with its hash
    assert len(json.dumps(result)) < 2000
    figures = json.loads(s3.get_object(Bucket=BUCKET, Key=f"{prefix}/report/figures.json")["Body"].read())
    assert figures["headline"] == {k: result[k] for k in figures["headline"]}
    assert figures["images"]["predicted"] == len(turn["predictions"])  # the checkpoint was not read
    assert figures["images"]["human"] == sum(a["human"] for a in turn["answers"])
    assert figures["inputs"]["missing"] == [f"s3://{BUCKET}/{prefix}/answers/label-studio.jsonl"]
    assert figures["cost"]["inference"] == pytest.approx(6.0)
    assert figures["headline"]["f1_after"] == turn["training"]["f1_after"]
    assert (figures["headline"]["unresolved"], figures["headline"]["boxes_dropped"]) == (3, 2)

    page = s3.get_object(Bucket=BUCKET, Key=f"{prefix}/report/index.html")
    assert page["ContentType"].startswith("text/html")
    html = page["Body"].read().decode()
    for chart in ("reliability", "labels", "agreement", "dataset", "f1"):
        assert f'data-chart="{chart}"' in html
    assert "3 left unresolved" in html and "2 bad boxes dropped" in html

    # Against the emulator the link is a presigned URL on the connection's own endpoint (it opens the page
    # in a browser); the S3 console link is kept for AWS endpoints only.
    url = ctx["ti"].pushed["rekfeedback_turn_report_page"]
    assert url.startswith(os.environ["AWS_ENDPOINT_URL"]) and f"{prefix}/report/index.html" in url
    with urllib.request.urlopen(url) as opened:
        assert opened.headers["Content-Type"].startswith("text/html") and b'data-chart="f1"' in opened.read()
    assert "rekfeedback_turn_report" not in ctx["ti"].pushed

    history = json.loads(s3.get_object(Bucket=BUCKET, Key="loop/history.json")["Body"].read())
    assert [h["run"] for h in history] == [result["run"]]

    # A retry of the same run rewrites its files and keeps one history entry.
    _operator(prefix, training_results=turn["training"]).execute(_context("manual__2026-11-26T05:00:00+00:00"))
    history = json.loads(s3.get_object(Bucket=BUCKET, Key="loop/history.json")["Body"].read())
    assert [h["run"] for h in history] == [result["run"]]

    # The next turn draws the first one's F1 and dataset size from its figures.json.
    turn2 = demo_turn(n_images=30, seed=11)
    prefix2 = "out/feedback_loop/scheduled-2026-11-27"
    _upload_turn(s3, prefix2, turn2)
    training2 = {**turn2["training"], "f1_before": 0.78, "f1_after": 0.81}
    result2 = _operator(prefix2, training_results=training2).execute(_context("scheduled__2026-11-27"))
    figures2 = json.loads(s3.get_object(Bucket=BUCKET, Key=f"{prefix2}/report/figures.json")["Body"].read())
    turns = figures2["history"]["turns"]
    assert [(t["run"], t["f1_after"]) for t in turns] == [(result["run"], 0.78), (result2["run"], 0.81)]
    first_sizes = figures["dataset"]["per_label"]
    for label, size in figures2["dataset"]["per_label"].items():
        assert size == first_sizes.get(label, 0) + figures2["dataset"]["this_turn"].get(label, 0)
    history = json.loads(s3.get_object(Bucket=BUCKET, Key="loop/history.json")["Body"].read())
    assert [h["run"] for h in history] == [result["run"], result2["run"]]


def test_bad_prediction_line_names_the_file_and_line(s3):
    prefix = "out/feedback_loop/broken"
    s3.put_object(Bucket=BUCKET, Key=f"{prefix}/predictions/part-00000-of-00001.jsonl",
                  Body=b'{"source-ref": "s3://b/a.jpg", "labels": []}\nnot json\n')
    op = _operator(prefix, answers_uris="[]", history_uri=None,
                   predictions_uris=f"['s3://{BUCKET}/{prefix}/predictions/part-00000-of-00001.jsonl']")
    with pytest.raises(ValueError, match=r"part-00000-of-00001\.jsonl.*line 2: not valid JSON"):
        op.execute(_context("manual__broken"))
    with pytest.raises(Exception):
        s3.head_object(Bucket=BUCKET, Key=f"{prefix}/report/index.html")
