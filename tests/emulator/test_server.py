"""The one endpoint: routing to moto, the control endpoints, error format and SageMaker validation."""

from __future__ import annotations

import json
import urllib.error
import urllib.request

import pytest
from botocore.exceptions import ClientError

from .helpers import client, unique


def _http(emulator, path: str, body: dict | None = None, headers: dict | None = None, raw: bytes | None = None):
    data = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
    request = urllib.request.Request(emulator.endpoint_url + path, data=data, headers=headers or {},
                                     method="POST" if data is not None else "GET")
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, dict(response.headers), json.loads(response.read() or b"{}")
    except urllib.error.HTTPError as exc:
        return exc.code, dict(exc.headers), json.loads(exc.read() or b"{}")


def test_moto_serves_s3_and_sts_behind_the_same_endpoint(emulator, s3_bucket):
    s3 = client(emulator, "s3")
    s3.put_object(Bucket=s3_bucket, Key="a/b.txt", Body=b"hello", Metadata={"truth": '{"labels": []}'})
    head = s3.head_object(Bucket=s3_bucket, Key="a/b.txt")
    assert head["Metadata"] == {"truth": '{"labels": []}'}
    assert client(emulator, "sts").get_caller_identity()["Account"] == "123456789012"


def test_fixture_sets_client_environment(emulator):
    import os

    import boto3

    assert os.environ["AWS_ENDPOINT_URL"] == emulator.endpoint_url
    conn = json.loads(os.environ["AIRFLOW_CONN_AWS_DEFAULT"])
    assert conn["conn_type"] == "aws" and conn["extra"]["endpoint_url"] == emulator.endpoint_url
    # A client built with no arguments at all reaches the emulator.
    assert "Buckets" in boto3.client("s3").list_buckets()


def test_unemulated_rekognition_operation_goes_to_moto(emulator):
    before = sum(emulator.calls.values())
    # moto's own canned DetectLabels answer: proof the request went past our routing untouched.
    answer = client(emulator, "rekognition").detect_labels(Image={"Bytes": b"x"})
    assert "Labels" in answer
    assert sum(emulator.calls.values()) == before


def test_config_endpoint_reads_and_updates_knobs(emulator, emulator_knobs):
    status, headers, config = _http(emulator, "/_rekfeedback/config")
    assert status == 200 and config["capacity_per_unit"] == emulator.config.capacity_per_unit
    status, _, config = _http(emulator, "/_rekfeedback/config", {"latency": "0.05", "fail_training": "true"})
    assert status == 200 and config["latency"] == 0.05 and config["fail_training"] is True
    assert emulator.config.latency == 0.05
    emulator_knobs()  # restores the original knobs at teardown
    status, _, error = _http(emulator, "/_rekfeedback/config", {"no_such_knob": 1})
    assert status == 400 and "no_such_knob" in error["message"]
    status, _, error = _http(emulator, "/_rekfeedback/config", {"latency": "fast"})
    assert status == 400 and "latency" in error["message"]


def test_stats_count_calls_and_errors_and_reset(emulator):
    rek = client(emulator, "rekognition")
    rek.describe_projects()
    with pytest.raises(ClientError):
        rek.describe_dataset(DatasetArn="arn:aws:rekognition:us-east-1:123456789012:project/x/dataset/train/1")
    status, _, stats = _http(emulator, "/_rekfeedback/stats")
    assert status == 200
    assert stats["calls"]["Rekognition.DescribeProjects"] >= 1
    assert stats["errors"]["Rekognition.DescribeDataset.ResourceNotFoundException"] >= 1
    status, _, stats = _http(emulator, "/_rekfeedback/stats/reset", {})
    assert status == 200 and stats == {"calls": {}, "errors": {}, "answered": {}}
    assert emulator.calls == {} and emulator.errors == {}
    rek.describe_projects()
    assert emulator.calls["Rekognition.DescribeProjects"] == 1
    emulator.reset_stats()
    assert _http(emulator, "/_rekfeedback/stats")[2] == {"calls": {}, "errors": {}, "answered": {}}


def test_unknown_control_path_is_404(emulator):
    assert _http(emulator, "/_rekfeedback/nothing")[0] == 404


def test_aws_json_error_format(emulator):
    status, headers, body = _http(
        emulator, "/", raw=json.dumps({"ProjectArn": "arn:aws:rekognition:us-east-1:123456789012:project/none/1"}).encode(),
        headers={"X-Amz-Target": "RekognitionService.DescribeProjectVersions", "Content-Type": "application/x-amz-json-1.1"})
    assert status == 400
    assert headers["x-amzn-ErrorType"] == "ResourceNotFoundException"
    assert headers["Content-Type"] == "application/x-amz-json-1.1"
    assert body["__type"] == "ResourceNotFoundException" and body["message"]


def test_malformed_json_is_serialization_exception(emulator):
    status, headers, body = _http(emulator, "/", raw=b"{not json",
                                  headers={"X-Amz-Target": "RekognitionService.DescribeProjects"})
    assert status == 400 and body["__type"] == "SerializationException"


def test_sagemaker_operations_are_routed_and_validated(emulator):
    sm = client(emulator, "sagemaker", validate=False)
    before = emulator.calls["SageMaker.CreateLabelingJob"]
    with pytest.raises(ClientError) as err:
        sm.create_labeling_job(
            LabelingJobName="bad_name_with_underscores", LabelAttributeName="label",
            InputConfig={"DataSource": {"S3DataSource": {"ManifestS3Uri": "s3://b/in.manifest"}}},
            OutputConfig={"S3OutputPath": "s3://b/out/"}, RoleArn="arn:aws:iam::123456789012:role/gt",
            HumanTaskConfig={"WorkteamArn": "arn:aws:sagemaker:us-east-1:123456789012:workteam/private-crowd/t",
                             "UiConfig": {"UiTemplateS3Uri": "s3://b/t.html"}, "TaskTitle": "t", "TaskDescription": "d",
                             "NumberOfHumanWorkersPerDataObject": 10, "TaskTimeLimitInSeconds": 30})
    assert err.value.response["Error"]["Code"] == "ValidationException"
    message = err.value.response["Error"]["Message"]
    assert "labelingJobName" in message and "regular expression" in message
    assert "humanTaskConfig.numberOfHumanWorkersPerDataObject" in message
    assert emulator.calls["SageMaker.CreateLabelingJob"] == before + 1


def test_sagemaker_validation_of_missing_members(emulator):
    sm = client(emulator, "sagemaker", validate=False)
    with pytest.raises(ClientError) as err:
        sm.describe_labeling_job()
    assert err.value.response["Error"]["Code"] == "ValidationException"
    with pytest.raises(ClientError) as err:
        sm.describe_labeling_job(LabelingJobName="x" * 64)
    assert err.value.response["Error"]["Code"] == "ValidationException"
    assert "length less than or equal to 63" in err.value.response["Error"]["Message"]


def test_start_in_thread_is_independent_and_stoppable():
    from rekfeedback_local.emulator.cli import start_in_thread

    with start_in_thread(port=0, latency=0.01, training_seconds=0.1) as handle:
        assert handle.config.latency == 0.01 and handle.port > 0
        rek = client(handle, "rekognition")
        rek.create_project(ProjectName=unique("own"))
        assert handle.calls["Rekognition.CreateProject"] == 1
    with pytest.raises(Exception):
        client(handle, "rekognition").describe_projects()
