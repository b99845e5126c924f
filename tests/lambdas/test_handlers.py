"""The custom verification task's Lambdas, fed the event shapes Ground Truth sends (aws-formats.md 4.1-4.4)."""

from __future__ import annotations

import json

import boto3
import pytest

from rekfeedback.lambdas import consolidation, pre_annotation

JOB_ARN = "arn:aws:sagemaker:us-east-1:123456789012:labeling-job/feedback-run-1-verify-labels-p00"
LINE = {"source": "batch-00000", "labels": ["circle", "square", "triangle"],
        "images": [{"source-ref": "s3://imgs/a.jpg", "width": 640, "height": 480,
                    "predicted": [{"name": "circle", "confidence": 91.2}, {"name": "square", "confidence": 55.0}]},
                   {"source-ref": "s3://imgs/b.png", "width": 320, "height": 200, "predicted": []}]}


def test_pre_annotation_builds_the_task_input():
    event = {"version": "2018-10-06", "labelingJobArn": JOB_ARN, "dataObject": LINE}
    out = pre_annotation.handler(event, None)
    assert out["isHumanAnnotationRequired"] == "true"
    ti = out["taskInput"]
    assert ti["batch"] == "batch-00000" and ti["labels"] == ["circle", "square", "triangle"]
    assert [i["source-ref"] for i in ti["images"]] == ["s3://imgs/a.jpg", "s3://imgs/b.png"]
    assert ti["images"][0]["predicted"] == LINE["images"][0]["predicted"] and ti["images"][1]["predicted"] == []
    # Without a label set on the line, the labels the model predicted are offered.
    no_labels = {k: v for k, v in LINE.items() if k != "labels"}
    assert pre_annotation.handler({"version": "2018-10-16", "labelingJobArn": JOB_ARN, "dataObject": no_labels},
                                  None)["taskInput"]["labels"] == ["circle", "square"]
    with pytest.raises(ValueError, match="images"):
        pre_annotation.handler({"dataObject": {"source": "x"}}, None)


def answer(a_verdicts, a_added=(), b_added=()):
    return {"images": [
        {"source-ref": "s3://imgs/a.jpg", "verdicts": [{"name": n, "present": v} for n, v in a_verdicts],
         "added": list(a_added)},
        {"source-ref": "s3://imgs/b.png", "verdicts": [], "added": list(b_added)}]}


def test_consolidation_majority_vote_over_disagreeing_workers(emulator, s3_bucket):
    s3 = boto3.client("s3")
    worker3 = answer([("circle", False), ("square", False)], b_added=["triangle"])
    s3.put_object(Bucket=s3_bucket, Key="out/job/annotations/worker-response/iteration-1/0/w3.json",
                  Body=json.dumps({"answer": json.dumps(worker3)}).encode())
    payload = [
        {"datasetObjectId": "0",
         "dataObject": {"content": "batch-00000"},
         "annotations": [
             # The crowd-form posts one hidden field "answer" holding a JSON string: content is a JSON string of that.
             {"workerId": "private.us-east-1.aaaa",
              "annotationData": {"content": json.dumps({"answer": json.dumps(
                  answer([("circle", True), ("square", False)], b_added=["triangle"]))})}},
             {"workerId": "private.us-east-1.bbbb",
              "annotationData": {"content": json.dumps(answer([("circle", True), ("square", True)], ["triangle"]))}},
             {"workerId": "private.us-east-1.cccc",
              "annotationData": {"s3Uri": f"s3://{s3_bucket}/out/job/annotations/worker-response/iteration-1/0/w3.json"}},
         ]},
        {"datasetObjectId": "1",
         "dataObject": {"content": "batch-00001"},
         "annotations": [{"workerId": "private.us-east-1.aaaa", "annotationData": {"content": json.dumps(
             {"answer": json.dumps({"images": [{"source-ref": "s3://imgs/c.jpg",
                                                "verdicts": [{"name": "circle", "present": True}], "added": []}]})})}}]},
    ]
    key = "out/job/annotations/consolidated-annotation/consolidation-request/iteration-1/2026-11-26_07:12:00.json"
    s3.put_object(Bucket=s3_bucket, Key=key, Body=json.dumps(payload).encode())
    event = {"version": "2018-10-16", "labelingJobArn": JOB_ARN, "labelCategories": ["circle", "square", "triangle"],
             "labelAttributeName": "verified-labels", "roleArn": "arn:aws:iam::123456789012:role/GroundTruth",
             "payload": {"s3Uri": f"s3://{s3_bucket}/{key}"}, "outputConfig": f"s3://{s3_bucket}/out/job/annotations"}

    result = consolidation.handler(event, None)

    assert [r["datasetObjectId"] for r in result] == ["0", "1"]
    first = result[0]["consolidatedAnnotation"]["content"]["verified-labels"]
    a, b = first["images"]
    assert first["workers"] == 3
    # circle: 2 of 3 keep it; square: 2 of 3 reject it; triangle on a.jpg: 1 of 3 adds it -> not added.
    # The Lambda votes; it makes no diff (the collect step diffs against the review item, once).
    assert a["labels"] == ["circle"] and not {"confirmed", "rejected", "added"} & set(a)
    assert a["workers"] == 3 and a["agreement"] == pytest.approx(1 / 3, abs=1e-3)
    # b.png: two workers add triangle, one adds nothing.
    assert b["labels"] == ["triangle"] and b["agreement"] == pytest.approx(2 / 3, abs=1e-3)
    assert first["agreement"] == pytest.approx(0.5, abs=1e-3)
    second = result[1]["consolidatedAnnotation"]["content"]["verified-labels"]
    assert second["images"] == [{"source-ref": "s3://imgs/c.jpg", "labels": ["circle"], "workers": 1, "agreement": 1.0,
                                 "label_agreement": {"circle": 1.0}, "candidates": [{"labels": ["circle"]}]}]
    json.dumps(result)  # what Ground Truth receives must be plain JSON


def test_consolidation_rejects_events_without_what_it_needs():
    with pytest.raises(ValueError, match="labelAttributeName"):
        consolidation.handler({"payload": {"s3Uri": "s3://b/k"}}, None)
    with pytest.raises(ValueError, match="payload"):
        consolidation.handler({"labelAttributeName": "x"}, None)
    with pytest.raises(ValueError, match="neither content nor s3Uri"):
        consolidation.consolidate([{"datasetObjectId": "0", "annotations": [{"workerId": "w", "annotationData": {}}]}],
                                  "x")
