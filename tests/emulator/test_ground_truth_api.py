"""Ground Truth labeling-job API of the emulator through boto3 over HTTP: shapes, errors, listing, stopping."""

from __future__ import annotations

import json
import uuid

import boto3
import botocore.session
import pytest
from botocore.exceptions import ClientError, ParamValidationError
from botocore.config import Config

from tests.fixtures.waits import labeling_job_reaches

REGION = "us-east-1"
ACCOUNT = "123456789012"
AWS_LAMBDA = "arn:aws:lambda:us-east-1:432418664414:function:"


@pytest.fixture(scope="module")
def sm(emulator):
    return boto3.client("sagemaker", endpoint_url=emulator.endpoint_url, region_name=REGION)


@pytest.fixture(scope="module")
def loose_sm(emulator):
    # Skips boto3's client-side checks so that the emulator's own validation answers.
    return boto3.client("sagemaker", endpoint_url=emulator.endpoint_url, region_name=REGION,
                        config=Config(parameter_validation=False))


@pytest.fixture(scope="module")
def bucket(emulator):
    s3 = boto3.client("s3", endpoint_url=emulator.endpoint_url, region_name=REGION)
    name = f"gt-api-{uuid.uuid4().hex[:8]}"
    s3.create_bucket(Bucket=name)
    lines = [{"source-ref": f"s3://{name}/img/{i}.png", "width": 64, "height": 64,
              "bbox": {"image_size": [{"width": 64, "height": 64, "depth": 3}],
                       "annotations": [{"class_id": 0, "left": 1, "top": 2, "width": 30, "height": 20}]},
              "bbox-metadata": {"objects": [{"confidence": 0.9}], "class-map": {"0": "circle"},
                                "type": "groundtruth/object-detection", "human-annotated": "no",
                                "creation-date": "2024-01-01T00:00:00", "job-name": "predictions"}}
             for i in range(4)]
    s3.put_object(Bucket=name, Key="in.manifest", Body="\n".join(json.dumps(x) for x in lines).encode())
    s3.put_object(Bucket=name, Key="labels.json", Body=json.dumps(
        {"document-version": "2018-11-28", "labels": [{"label": "circle"}, {"label": "square"}]}).encode())
    s3.put_object(Bucket=name, Key="template.html", Body=b"<crowd-form></crowd-form>")
    return name


@pytest.fixture
def knobs(emulator_knobs):
    return emulator_knobs()  # the config; restored after the test


def request(bucket: str, name: str, task: str = "AdjustmentBoundingBox", **overrides) -> dict:
    req = {
        "LabelingJobName": name,
        "LabelAttributeName": "bbox-reviewed",
        "InputConfig": {"DataSource": {"S3DataSource": {"ManifestS3Uri": f"s3://{bucket}/in.manifest"}}},
        "OutputConfig": {"S3OutputPath": f"s3://{bucket}/out/"},
        "RoleArn": f"arn:aws:iam::{ACCOUNT}:role/GroundTruthExecution",
        "LabelCategoryConfigS3Uri": f"s3://{bucket}/labels.json",
        "HumanTaskConfig": {
            "WorkteamArn": f"arn:aws:sagemaker:{REGION}:{ACCOUNT}:workteam/private-crowd/reviewers",
            "UiConfig": {"UiTemplateS3Uri": f"s3://{bucket}/template.html"},
            "PreHumanTaskLambdaArn": f"{AWS_LAMBDA}PRE-{task}",
            "TaskTitle": "Adjust boxes", "TaskDescription": "Fix the boxes",
            "NumberOfHumanWorkersPerDataObject": 1, "TaskTimeLimitInSeconds": 300,
            "AnnotationConsolidationConfig": {"AnnotationConsolidationLambdaArn": f"{AWS_LAMBDA}ACS-{task}"},
        },
    }
    req.update(overrides)
    return req


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


def wait(sm, name: str) -> dict:
    return labeling_job_reaches(sm, name)


def missing_required(shape_name: str, value: dict) -> list[str]:
    model = botocore.session.get_session().get_service_model("sagemaker")
    shape = model.shape_for(shape_name)
    return [m for m in shape.required_members if m not in value]


def test_create_and_describe_carry_every_required_field(sm, bucket, emulator):
    emulator.reset_stats()
    name = unique("api-describe")
    arn = sm.create_labeling_job(**request(bucket, name))["LabelingJobArn"]
    assert arn == f"arn:aws:sagemaker:{REGION}:{ACCOUNT}:labeling-job/{name}"
    first = sm.describe_labeling_job(LabelingJobName=name)
    assert first["LabelingJobStatus"] in {"Initializing", "InProgress"}
    job = wait(sm, name)
    for shape, value in (("DescribeLabelingJobResponse", job), ("LabelingJobOutput", job["LabelingJobOutput"])):
        assert missing_required(shape, value) == []
    assert job["LabelingJobStatus"] == "Completed"
    assert job["LabelingJobArn"] == arn and job["LabelAttributeName"] == "bbox-reviewed"
    assert job["HumanTaskConfig"]["TaskTitle"] == "Adjust boxes"
    assert job["LabelCounters"] == {"TotalLabeled": 4, "HumanLabeled": 4, "MachineLabeled": 0,
                                    "FailedNonRetryableError": 0, "Unlabeled": 0}
    assert job["LabelingJobOutput"]["OutputDatasetS3Uri"] == f"s3://{bucket}/out/{name}/manifests/output/output.manifest"
    assert job["CreationTime"] <= job["LastModifiedTime"]
    assert job["JobReferenceCode"]
    assert emulator.calls["SageMaker.CreateLabelingJob"] == 1
    assert emulator.calls["SageMaker.DescribeLabelingJob"] >= 2


def test_same_name_in_any_case_is_in_use(sm, bucket):
    name = unique("api-dup")
    sm.create_labeling_job(**request(bucket, name))
    with pytest.raises(ClientError) as err:
        sm.create_labeling_job(**request(bucket, name.upper()))
    assert err.value.response["Error"]["Code"] == "ResourceInUse"
    assert err.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400
    wait(sm, name)
    with pytest.raises(ClientError) as err:  # a finished job's name stays taken (no DeleteLabelingJob)
        sm.create_labeling_job(**request(bucket, name))
    assert err.value.response["Error"]["Code"] == "ResourceInUse"


@pytest.mark.parametrize("change, expected", [
    ({"LabelingJobName": "bad_name!"}, "LabelingJobName"),
    ({"LabelingJobName": "-starts-with-hyphen"}, "LabelingJobName"),
    ({"LabelingJobName": "x" * 64}, "LabelingJobName"),
    ({"LabelAttributeName": "bbox_reviewed"}, "LabelAttributeName"),
    ({"LabelAttributeName": "bbox-metadata"}, "-metadata"),
    ({"LabelAttributeName": "bbox-ref"}, "-ref"),
    ({"RoleArn": "not-a-role"}, "RoleArn"),
    ({"HumanTaskConfig.NumberOfHumanWorkersPerDataObject": 10}, "NumberOfHumanWorkersPerDataObject"),
    ({"HumanTaskConfig.UiConfig": {"UiTemplateS3Uri": "s3://b/t.html",
                                   "HumanTaskUiArn": f"arn:aws:sagemaker:{REGION}:394669845002:human-task-ui/X"}},
     "exactly one"),
    ({"HumanTaskConfig.PreHumanTaskLambdaArn": f"{AWS_LAMBDA}PRE-BoundingBox"}, "same built-in task type"),
    ({"HumanTaskConfig.PreHumanTaskLambdaArn": "arn:aws:lambda:eu-west-1:568282634449:function:PRE-AdjustmentBoundingBox"},
     "432418664414"),
    ({"LabelCategoryConfigS3Uri": None}, "LabelCategoryConfigS3Uri"),
])
def test_invalid_requests_are_validation_exceptions(loose_sm, bucket, change, expected):
    req = request(bucket, unique("api-invalid"))
    for path, value in change.items():
        target, *keys = path.split(".")
        holder = req if not keys else req[target]
        key = keys[0] if keys else target
        if value is None:
            holder.pop(key)
        else:
            holder[key] = value
    with pytest.raises(ClientError) as err:
        loose_sm.create_labeling_job(**req)
    assert err.value.response["Error"]["Code"] == "ValidationException"
    assert expected.lower() in err.value.response["Error"]["Message"].lower()


def test_boto3_itself_refuses_missing_required_members(sm):
    with pytest.raises(ParamValidationError):
        sm.create_labeling_job(LabelingJobName="x")


@pytest.mark.parametrize("call", ["describe_labeling_job", "stop_labeling_job"])
def test_unknown_job_is_resource_not_found(sm, call):
    with pytest.raises(ClientError) as err:
        getattr(sm, call)(LabelingJobName=unique("never-created"))
    assert err.value.response["Error"]["Code"] == "ResourceNotFound"


def test_list_filters_sorts_and_paginates(emulator, sm, bucket):
    tag = uuid.uuid4().hex[:6]
    names = [f"list-{tag}-{c}" for c in "cab"]
    before = emulator.env.clock() - 1
    for name in names:
        sm.create_labeling_job(**request(bucket, name))
        emulator.advance_clock(0.05)  # three distinct creation times
    for name in names:
        wait(sm, name)
    found = sm.list_labeling_jobs(NameContains=f"LIST-{tag}", SortBy="Name", SortOrder="Ascending")
    summaries = found["LabelingJobSummaryList"]
    assert [s["LabelingJobName"] for s in summaries] == sorted(names)
    assert "NextToken" not in found
    for summary in summaries:
        assert missing_required("LabelingJobSummary", summary) == []
        assert summary["AnnotationConsolidationLambdaArn"].endswith("ACS-AdjustmentBoundingBox")
    newest_first = sm.list_labeling_jobs(NameContains=tag)["LabelingJobSummaryList"]
    assert [s["LabelingJobName"] for s in newest_first] == names[::-1]
    pages = list(sm.get_paginator("list_labeling_jobs").paginate(
        NameContains=tag, SortBy="CreationTime", SortOrder="Ascending", PaginationConfig={"PageSize": 2}))
    assert [len(p["LabelingJobSummaryList"]) for p in pages] == [2, 1]
    assert [s["LabelingJobName"] for p in pages for s in p["LabelingJobSummaryList"]] == names
    assert sm.list_labeling_jobs(NameContains=tag, StatusEquals="InProgress")["LabelingJobSummaryList"] == []
    assert len(sm.list_labeling_jobs(NameContains=tag, StatusEquals="Completed")["LabelingJobSummaryList"]) == 3
    assert len(sm.list_labeling_jobs(NameContains=tag, CreationTimeAfter=before)["LabelingJobSummaryList"]) == 3
    assert sm.list_labeling_jobs(NameContains=tag, CreationTimeBefore=before)["LabelingJobSummaryList"] == []
    assert sm.list_labeling_jobs(NameContains=tag, CreationTimeAfter=emulator.env.clock() + 60)["LabelingJobSummaryList"] == []


def test_list_rejects_a_forged_token(sm):
    with pytest.raises(ClientError) as err:
        sm.list_labeling_jobs(NextToken="not-a-token")
    assert err.value.response["Error"]["Code"] == "ValidationException"


def test_stop_goes_through_stopping_to_stopped_and_keeps_partial_results(sm, bucket, knobs):
    knobs.labeling_seconds = 600.0  # far longer than the test: the stop is what ends it
    knobs.stop_seconds = 0.3
    name = unique("api-stop")
    sm.create_labeling_job(**request(bucket, name))
    sm.stop_labeling_job(LabelingJobName=name)
    assert sm.describe_labeling_job(LabelingJobName=name)["LabelingJobStatus"] == "Stopping"
    sm.stop_labeling_job(LabelingJobName=name)  # stopping a stopping job is harmless
    job = wait(sm, name)
    assert job["LabelingJobStatus"] == "Stopped"
    counters = job["LabelCounters"]
    assert counters["TotalLabeled"] < 4
    assert "LabelingJobOutput" in job  # results so far are still written
    with pytest.raises(ClientError) as err:
        sm.stop_labeling_job(LabelingJobName=name)
    assert err.value.response["Error"]["Code"] == "ValidationException"


def test_too_many_active_jobs_is_resource_limit_exceeded(sm, bucket, knobs):
    knobs.max_active_labeling_jobs = 0
    with pytest.raises(ClientError) as err:
        sm.create_labeling_job(**request(bucket, unique("api-limit")))
    assert err.value.response["Error"]["Code"] == "ResourceLimitExceeded"
