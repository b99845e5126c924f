"""Prediction files built from synthetic images (the inference operator is someone else's; no dependency on it)."""

from __future__ import annotations

import datetime as dt
import json
import uuid

import boto3

from rekfeedback_local import synthetic
from rekfeedback.core import boxes as boxlib

RUN_ID = "manual__2026-11-26T05:00:00+00:00"
MODEL = "arn:aws:rekognition:us-east-1:123456789012:project/shapes/version/shapes.v1/1"
LABELS = list(synthetic.LABELS)


def make_predictions(bucket: str, kind: str = "classification", n: int = 8, seed: int = 11,
                     with_error: bool = True) -> dict:
    """Upload n synthetic images and a predictions file about them; return URIs and each image's truth.

    Images rotate through four cases: no prediction; the truth; the truth minus a label plus a
    wrong one; the truth with boxes shifted. Confidences 95 / 70 / 60 let routing tests bite.
    """
    s3 = boto3.client("s3")
    info = synthetic.generate(s3, bucket, "data", n=n, seed=seed, n_seed=0, n_test=0, bad_files=False,
                              kind="detection" if kind == "boxes" else "classification")
    truth_lines = [json.loads(x) for x in
                   s3.get_object(Bucket=bucket, Key="data/manifests/truth.jsonl")["Body"].read().decode().splitlines()]
    lines, truth = [], {}
    for i, t in enumerate(truth_lines):
        ref, w, h = t["source-ref"], t["width"], t["height"]
        truth[ref] = t
        case = i % 4
        labels = []
        if case:
            boxes = t["boxes"] if kind == "boxes" else [{"label": n_} for n_ in t["labels"]]
            conf = {1: 95.0, 2: 70.0, 3: 60.0}[case]
            chosen = list(boxes)
            if case == 2 and chosen:
                chosen = chosen[1:] + [dict(chosen[0], label=next(x for x in LABELS if x not in t["labels"]))]
            for b in chosen:
                box = None
                if kind == "boxes":
                    px = dict(b)
                    if case == 3:
                        px["left"] = max(0, px["left"] - 3)
                    box = boxlib.pixels_to_ratio(px, w, h)
                labels.append({"name": b["label"], "confidence": conf, "box": box})
        lines.append({"source-ref": ref, "width": w, "height": h, "format": "jpeg", "labels": labels, "error": None,
                      "model": MODEL, "predicted_at": "2026-11-26T05:00:00Z"})
    if with_error:
        lines.append({"source-ref": f"s3://{bucket}/data/images/broken.jpg", "width": None, "height": None,
                      "format": None, "labels": [], "model": MODEL, "predicted_at": "2026-11-26T05:00:00Z",
                      "error": {"code": "InvalidImageFormatException", "message": "Request has invalid image format"}})
    key = f"turns/{uuid.uuid4().hex[:8]}/predictions/part-00000-of-00001.jsonl"
    s3.put_object(Bucket=bucket, Key=key, Body="".join(json.dumps(x) + "\n" for x in lines).encode())
    prefix = key.rsplit("/predictions/", 1)[0]
    return {"predictions_uri": f"s3://{bucket}/{key}", "turn": f"s3://{bucket}/{prefix}",
            "predictions_prefix": f"s3://{bucket}/{prefix}/predictions/", "truth": truth, "lines": lines}


def setup_account() -> dict:
    """A private workteam and an execution role in the emulator (idempotent)."""
    sm, iam = boto3.client("sagemaker"), boto3.client("iam")
    try:
        team = sm.create_workteam(WorkteamName="reviewers", Description="test reviewers", MemberDefinitions=[
            {"CognitoMemberDefinition": {"UserPool": "us-east-1_Emulated1", "UserGroup": "reviewers",
                                         "ClientId": "client"}}])["WorkteamArn"]
    except sm.exceptions.ResourceInUse:
        team = sm.describe_workteam(WorkteamName="reviewers")["Workteam"]["WorkteamArn"]
    trust = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Principal": {"Service": "sagemaker.amazonaws.com"},
                                                     "Action": "sts:AssumeRole"}]}
    try:
        role = iam.create_role(RoleName="GroundTruth", AssumeRolePolicyDocument=json.dumps(trust))["Role"]["Arn"]
    except iam.exceptions.EntityAlreadyExistsException:
        role = iam.get_role(RoleName="GroundTruth")["Role"]["Arn"]
    account = role.split(":")[4]
    return {"workteam_arn": team, "role_arn": role,
            "pre_annotation_lambda_arn": f"arn:aws:lambda:us-east-1:{account}:function:rekfeedback-pre-annotation",
            "annotation_consolidation_lambda_arn":
                f"arn:aws:lambda:us-east-1:{account}:function:rekfeedback-annotation-consolidation"}


class FakeTI:
    """The few TaskInstance methods the operators touch outside of a DAG run (XCom for links, reschedule)."""

    def __init__(self):
        self.xcom: dict = {}

    def xcom_push(self, key, value):
        self.xcom[key] = value

    def get_first_reschedule_date(self, context):
        return None


def context(run_id: str = RUN_ID) -> dict:
    return {"run_id": run_id, "ti": FakeTI(), "logical_date": dt.datetime(2026, 11, 26, 5, tzinfo=dt.timezone.utc)}


def read_lines(uri: str) -> list[dict]:
    bucket, key = uri[5:].split("/", 1)
    text = boto3.client("s3").get_object(Bucket=bucket, Key=key)["Body"].read().decode()
    return [json.loads(x) for x in text.splitlines() if x.strip()]


def read_bytes(uri: str) -> bytes:
    bucket, key = uri[5:].split("/", 1)
    return boto3.client("s3").get_object(Bucket=bucket, Key=key)["Body"].read()
