"""Links a user can follow: console links only when the connection talks to AWS, presigned links to the outputs
themselves that open on the connection's own endpoint (the emulator here, AWS in production)."""

from __future__ import annotations

import logging
import urllib.request
from types import SimpleNamespace

import boto3
import pytest

from rekfeedback.links.console import endpoint_is_aws
from rekfeedback.links.ground_truth import LabelingJobLink
from rekfeedback.links.label_studio import LabelStudioProjectLink
from rekfeedback.links.presigned import AnswersFileLink, ManifestFileLink, TurnReportPageLink
from rekfeedback.links.rekognition import RekognitionProjectVersionLink

ARN = "arn:aws:rekognition:us-east-1:123456789012:project/shapes/version/shapes.v1/1700000000000"


class _TI:
    def __init__(self) -> None:
        self.pushed: dict = {}

    def xcom_push(self, key, value) -> None:
        self.pushed[key] = value


def _operator(endpoint_url: str | None):
    hook = SimpleNamespace(conn_config=SimpleNamespace(endpoint_url=endpoint_url), region_name="us-east-1")
    return SimpleNamespace(hook=hook, do_xcom_push=True, aws_conn_id="aws_default", log=logging.getLogger(__name__))


@pytest.mark.parametrize("endpoint, aws", [
    (None, True), ("https://rekognition.us-east-1.amazonaws.com", True), ("https://s3.cn-north-1.amazonaws.com.cn", True),
    ("http://127.0.0.1:4566", False), ("http://emulator:4566", False), ("https://amazonaws.com.evil.example", False),
])
def test_endpoint_is_aws(endpoint, aws):
    assert endpoint_is_aws(endpoint) is aws


@pytest.mark.parametrize("endpoint, stored", [(None, True), ("http://127.0.0.1:4566", False)])
def test_console_links_are_stored_only_against_aws(monkeypatch, endpoint, stored):
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    ti = _TI()
    RekognitionProjectVersionLink.persist_for_arn({"ti": ti}, _operator(endpoint), ARN, "us-east-1")
    LabelingJobLink.persist(context={"ti": ti}, operator=_operator(endpoint), region_name="us-east-1",
                            aws_partition="aws", job_name="job-1")
    assert (RekognitionProjectVersionLink.key in ti.pushed) is stored
    assert (LabelingJobLink.key in ti.pushed) is stored


def test_presigned_report_link_opens_the_report_on_the_connections_endpoint(emulator, s3_bucket):
    html = b"<html><body>turn report</body></html>"
    boto3.client("s3").put_object(Bucket=s3_bucket, Key="turn/report/index.html", Body=html)
    ti = _TI()
    TurnReportPageLink.persist({"ti": ti}, _operator(emulator.endpoint_url), f"s3://{s3_bucket}/turn/report/index.html")
    url = ti.pushed[TurnReportPageLink.key]
    assert url.startswith(emulator.endpoint_url) and "Signature" in url
    with urllib.request.urlopen(url, timeout=30) as response:  # no credentials: the signature is the access
        assert response.read() == html
        assert response.headers["Content-Type"].startswith("text/html")


def test_presigned_links_sit_on_the_tasks_that_write_or_wait_for_the_outputs():
    from rekfeedback.operators.manifest import ManifestMergeOperator
    from rekfeedback.operators.report import TurnReportOperator
    from rekfeedback.sensors.ground_truth import GroundTruthLabelingJobSensor
    from rekfeedback.sensors.label_studio import LabelStudioReviewSensor

    def names(cls):
        return {type(link).__name__ for link in cls.operator_extra_links}

    assert TurnReportPageLink.__name__ in names(TurnReportOperator)
    assert ManifestFileLink.__name__ in names(ManifestMergeOperator)
    assert AnswersFileLink.__name__ in names(GroundTruthLabelingJobSensor)
    # The deferred wait is the task the user looks at while reviewers work: the project link is there too.
    assert {LabelStudioProjectLink.__name__, AnswersFileLink.__name__} <= names(LabelStudioReviewSensor)
