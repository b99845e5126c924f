"""Conformance of training results with the Custom Labels developer guide: DescribeProjectVersions'
TrainingDataResult / TestingDataResult (Input as supplied, Output, Validation), the manifest summary
(tm-debugging-summary) and the evaluation summary (im-summary-file), through boto3 over HTTP."""

from __future__ import annotations

import json

import pytest

from rekfeedback_local import synthetic

from .helpers import client, put_manifest, split_uri, train, unique, version_description


@pytest.fixture(scope="module")
def data(emulator):
    s3 = client(emulator, "s3", retries=3)
    bucket = unique("conform")
    boxes = synthetic.generate(s3, bucket, "boxes", n=0, seed=41, n_seed=16, n_test=12, bad_files=False)
    classes = synthetic.generate(s3, bucket, "classes", n=0, seed=42, n_seed=16, n_test=12, bad_files=False,
                                 kind="classification")
    return {"bucket": bucket, "boxes": boxes, "classes": classes}


def _read(emulator, s3object: dict):
    body = client(emulator, "s3").get_object(Bucket=s3object["Bucket"], Key=s3object["Name"])["Body"].read()
    return body.decode()


def _asset(uri: str) -> dict:
    bucket, key = split_uri(uri)
    return {"GroundTruthManifest": {"S3Object": {"Bucket": bucket, "Name": key}}}


def test_results_echo_the_inputs_as_supplied_and_point_at_validation_manifests(emulator, data):
    rek = client(emulator, "rekognition")
    project = rek.create_project(ProjectName=unique("echo"))["ProjectArn"]
    training = {"Assets": [_asset(data["boxes"]["seed_manifest_uri"])]}
    train(rek, project, "v1", data["bucket"], TrainingData=training, TestingData={"AutoCreate": True})
    desc = version_description(rek, project, "v1")
    assert desc["TrainingDataResult"]["Input"] == training
    assert desc["TestingDataResult"]["Input"] == {"AutoCreate": True}  # not replaced by the split's assets
    for part in ("TrainingDataResult", "TestingDataResult"):
        (output,) = desc[part]["Output"]["Assets"]
        (validation,) = desc[part]["Validation"]["Assets"]
        assert validation["GroundTruthManifest"]["S3Object"]["Name"].endswith("_manifest_with_validation.json")
        assert _read(emulator, output["GroundTruthManifest"]["S3Object"]).strip()


def test_summary_lists_each_datasets_errors_and_counts_unlabeled_lines_as_ignored(emulator, data):
    rek = client(emulator, "rekognition")
    bucket = data["bucket"]
    seed_lines = _read(emulator, _asset(data["boxes"]["seed_manifest_uri"])["GroundTruthManifest"]["S3Object"]).splitlines()
    missing = {**json.loads(seed_lines[0]), "source-ref": f"s3://{bucket}/boxes/nowhere.png"}
    unlabeled = {"source-ref": f"s3://{bucket}/boxes/not-yet-labelled.png"}
    train_uri = put_manifest(emulator, bucket, "conform/train.manifest", [*seed_lines, missing, unlabeled])
    project = rek.create_project(ProjectName=unique("summary"))["ProjectArn"]
    train(rek, project, "v1", bucket, TrainingData={"Assets": [_asset(train_uri)]},
          TestingData={"Assets": [_asset(data["boxes"]["test_manifest_uri"])]})
    desc = version_description(rek, project, "v1")
    summary = json.loads(_read(emulator, desc["ManifestSummary"]["S3Object"]))
    stats = summary["statistics"]["training"]
    assert (stats["total_json_lines"], stats["valid_json_lines"], stats["invalid_json_lines"],
            stats["ignored_json_lines"]) == (len(seed_lines) + 2, len(seed_lines), 1, 1)
    assert [e["code"] for e in stats["errors"]] == ["ERROR_INVALID_IMAGE"]
    assert summary["statistics"]["testing"]["errors"] == [] and summary["errors"] == []
    checked = [json.loads(x) for x in _read(emulator, desc["TrainingDataResult"]["Validation"]["Assets"][0]
                                            ["GroundTruthManifest"]["S3Object"]).splitlines()]
    assert [line["source-ref"] for line in checked if line.get("errors")] == [missing["source-ref"]]


def _evaluation(emulator, rek, made: dict, bucket: str) -> tuple[dict, dict]:
    project = rek.create_project(ProjectName=unique("eval"))["ProjectArn"]
    train(rek, project, "v1", bucket, TrainingData={"Assets": [_asset(made["seed_manifest_uri"])]},
          TestingData={"Assets": [_asset(made["test_manifest_uri"])]})
    desc = version_description(rek, project, "v1")
    return desc, json.loads(_read(emulator, desc["EvaluationResult"]["Summary"]["S3Object"]))


def test_detection_summary_has_map_and_mar_and_labels_sorted_by_f1(emulator, data):
    rek = client(emulator, "rekognition")
    desc, summary = _evaluation(emulator, rek, data["boxes"], data["bucket"])
    aggregated = summary["AggregatedEvaluationResults"]
    assert set(aggregated) == {"F1Score", "Precision", "Recall", "AveragePrecision", "AverageRecall"}
    assert 0.0 < aggregated["AveragePrecision"] <= 1.0 and 0.0 < aggregated["AverageRecall"] <= 1.0
    f1s = [r["Metrics"]["F1Score"] for r in summary["LabelEvaluationResults"]]
    assert f1s == sorted(f1s, reverse=True)
    assert aggregated["F1Score"] == desc["EvaluationResult"]["F1Score"]


def test_classification_summary_has_a_confusion_matrix_and_no_detection_metrics(emulator, data):
    rek = client(emulator, "rekognition")
    _desc, summary = _evaluation(emulator, rek, data["classes"], data["bucket"])
    aggregated = summary["AggregatedEvaluationResults"]
    assert "AveragePrecision" not in aggregated and aggregated["ConfusionMatrix"]



@pytest.mark.parametrize("bucket", ["a", "conform-1f3c", "conform-9e2d7a", "another-bucket"])
def test_the_automatic_test_split_takes_a_fifth_of_every_label_whatever_the_names(bucket):
    from rekfeedback_local.emulator import manifests
    from rekfeedback_local.emulator.rekognition_models import _auto_split

    sizes = {"cat": 10, "dog": 5, "owl": 2, "rare": 1}
    entries = [manifests.Entry(line={}, source_ref=f"s3://{bucket}/{label}-{i}.png", labels=[label])
               for label, n in sizes.items() for i in range(n)]
    train_set, test_set = _auto_split(entries)
    assert {label: sum(e.labels == [label] for e in test_set) for label in sizes} == {
        "cat": 2, "dog": 1, "owl": 1, "rare": 0}  # a label with one image stays in training
    assert sorted(e.source_ref for e in train_set + test_set) == sorted(e.source_ref for e in entries)
    assert {e.source_ref for e in _auto_split(entries[::-1])[1]} == {e.source_ref for e in test_set}  # order-free
