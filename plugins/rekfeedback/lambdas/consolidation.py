"""Annotation-consolidation Lambda of the custom verification task (function `rekfeedback-annotation-consolidation`).

Ground Truth calls it with a payload file in S3 listing, per data object, every worker's answer;
it returns one consolidated answer per object (`core.consensus`: majority vote, per image the agreement, each
label's share and every worker's answer as candidates for the review round).
Deployed from this package by infra/ground-truth.yaml; handler `rekfeedback.lambdas.consolidation.handler`.
"""

from __future__ import annotations

import json
import logging
import os

from rekfeedback.core.verification_task import consolidate_object
from rekfeedback.core.paths import parse_s3_uri

log = logging.getLogger(__name__)


def _s3():
    import boto3  # the Lambda runtime ships boto3; importing it lazily keeps the pure part testable alone

    # boto3 >= 1.28 honours AWS_ENDPOINT_URL by itself; passing it keeps older runtimes on the emulator too.
    return boto3.client("s3", endpoint_url=os.environ.get("AWS_ENDPOINT_URL") or None)


def read_s3_json(uri: str, s3=None):
    loc = parse_s3_uri(uri, "payload s3Uri")
    body = (s3 or _s3()).get_object(Bucket=loc.bucket, Key=loc.key)["Body"].read()
    return json.loads(body)


def _content(annotation: dict, s3) -> object:
    data = annotation.get("annotationData") or {}
    if "content" in data:
        return data["content"]
    uri = data.get("s3Uri") or data.get("s3uri")
    if uri:
        return read_s3_json(uri, s3)
    raise ValueError(f"annotation of worker {annotation.get('workerId')!r} has neither content nor s3Uri")


def consolidate(payload: list, label_attribute: str, s3=None) -> list[dict]:
    """The Lambda's return value for a parsed payload file: every datasetObjectId received, once."""
    out = []
    for obj in payload:
        data_object = obj.get("dataObject") or {}
        contents = [_content(a, s3) for a in obj.get("annotations") or []]
        value = consolidate_object(contents, data_object.get("images"))
        out.append({"datasetObjectId": obj["datasetObjectId"],
                    "consolidatedAnnotation": {"content": {label_attribute: value}}})
    return out


def handler(event, context=None):
    label_attribute = event.get("labelAttributeName")
    if not label_attribute:
        raise ValueError("consolidation event has no 'labelAttributeName'")
    uri = (event.get("payload") or {}).get("s3Uri")
    if not uri:
        raise ValueError("consolidation event has no 'payload.s3Uri'")
    s3 = _s3()
    result = consolidate(read_s3_json(uri, s3), label_attribute, s3)
    log.info("consolidated %d data objects of %s", len(result), event.get("labelingJobArn"))
    return result
