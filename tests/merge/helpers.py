"""Shared setup for the merge/training tests: synthetic data, answers from its truth, S3 helpers."""

from __future__ import annotations

import json
import time
import uuid

import boto3

from rekfeedback_local import synthetic
from rekfeedback.core.answers import make_answer
from rekfeedback.core.paths import parse_s3_uri


def clients(emulator):
    kw = {"endpoint_url": emulator.endpoint_url, "region_name": emulator.region}
    return boto3.client("s3", **kw), boto3.client("rekognition", **kw)


def read_text(s3, uri: str) -> str:
    loc = parse_s3_uri(uri)
    return s3.get_object(Bucket=loc.bucket, Key=loc.key)["Body"].read().decode("utf-8")


def put_text(s3, uri: str, text: str) -> str:
    loc = parse_s3_uri(uri)
    s3.put_object(Bucket=loc.bucket, Key=loc.key, Body=text.encode("utf-8"))
    return uri


def make_dataset(emulator, kind: str = "detection", n: int = 40, seed: int = 5) -> dict:
    s3, _ = clients(emulator)
    bucket = f"mrg-{uuid.uuid4().hex[:16]}"
    return synthetic.generate(s3, bucket, "data", n=n, n_seed=8, n_test=12, seed=seed, kind=kind, bad_files=False)


def truth_answers(s3, data: dict, *, source: str = "rekfeedback-gt-job-1", human: bool = True,
                  answered_at: str = "2026-11-26T07:12:00Z", limit: int | None = None) -> list[dict]:
    """Normalized answers that say exactly the truth (what an oracle workforce would answer)."""
    answers = []
    for line in read_text(s3, data["truth_uri"]).splitlines()[:limit]:
        truth = json.loads(line)
        boxes = [dict(b, status="unchanged") for b in truth["boxes"]] if data["kind"] == "detection" else []
        answers.append(make_answer(
            source_ref=truth["source-ref"], width=truth["width"], height=truth["height"],
            kind="boxes" if data["kind"] == "detection" else "classification", labels=truth["labels"], boxes=boxes,
            confirmed=truth["labels"], workers=1 if human else 0, agreement=1.0, human=human,
            backend="ground-truth" if human else "auto-accept", source=source, answered_at=answered_at))
    return answers


def jsonl(rows) -> str:
    return "".join(json.dumps(r) + "\n" for r in rows)


def train_base_version(emulator, data: dict) -> dict:
    """Version v1 trained from the synthetic seed/test manifests (a project without datasets)."""
    _, rek = clients(emulator)
    name = f"p-{uuid.uuid4().hex[:10]}"
    project_arn = rek.create_project(ProjectName=name)["ProjectArn"]

    def asset(uri):
        loc = parse_s3_uri(uri)
        return {"GroundTruthManifest": {"S3Object": {"Bucket": loc.bucket, "Name": loc.key}}}

    arn = rek.create_project_version(
        ProjectArn=project_arn, VersionName="v1", OutputConfig={"S3Bucket": data["bucket"], "S3KeyPrefix": f"{name}/v1"},
        TrainingData={"Assets": [asset(data["seed_manifest_uri"])]},
        TestingData={"Assets": [asset(data["test_manifest_uri"])]},
    )["ProjectVersionArn"]
    deadline = time.monotonic() + 30
    while True:
        desc = rek.describe_project_versions(ProjectArn=project_arn, VersionNames=["v1"])["ProjectVersionDescriptions"][0]
        if desc["Status"] != "TRAINING_IN_PROGRESS" or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    assert desc["Status"] == "TRAINING_COMPLETED", desc
    return {"project_arn": project_arn, "arn": arn, "f1": desc["EvaluationResult"]["F1Score"]}
