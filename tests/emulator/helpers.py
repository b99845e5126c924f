"""Shared helpers for the emulator tests: boto3 clients on the emulator and a trained-model builder."""

from __future__ import annotations

import uuid

import boto3
from botocore.config import Config

from tests.fixtures.waits import dataset_settles


def client(emulator, service: str, *, retries: int = 1, validate: bool = True):
    """A plain boto3 client on the emulator; `retries` is the total attempts, 1 so each error reaches the test once."""
    return boto3.client(
        service, endpoint_url=emulator.endpoint_url, region_name="us-east-1",
        config=Config(retries={"mode": "standard", "total_max_attempts": retries}, parameter_validation=validate,
                      max_pool_connections=32),
    )


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


def split_uri(uri: str) -> tuple[str, str]:
    bucket, key = uri[len("s3://"):].split("/", 1)
    return bucket, key


def manifest_source(uri: str) -> dict:
    bucket, key = split_uri(uri)
    return {"GroundTruthManifest": {"S3Object": {"Bucket": bucket, "Name": key}}}


def wait_dataset(rek, arn: str) -> dict:
    return dataset_settles(rek, arn)


FAST = {"Delay": 0.1, "MaxAttempts": 100}


def train(rek, project_arn: str, version: str, bucket: str, prefix: str = "out", **extra) -> str:
    arn = rek.create_project_version(ProjectArn=project_arn, VersionName=version,
                                     OutputConfig={"S3Bucket": bucket, "S3KeyPrefix": prefix}, **extra)["ProjectVersionArn"]
    rek.get_waiter("project_version_training_completed").wait(ProjectArn=project_arn, VersionNames=[version], WaiterConfig=FAST)
    return arn


def project_with_datasets(rek, train_uri: str, test_uri: str | None) -> str:
    project = rek.create_project(ProjectName=unique("p"))["ProjectArn"]
    arns = [rek.create_dataset(ProjectArn=project, DatasetType="TRAIN", DatasetSource=manifest_source(train_uri))["DatasetArn"]]
    if test_uri:
        arns.append(rek.create_dataset(ProjectArn=project, DatasetType="TEST", DatasetSource=manifest_source(test_uri))["DatasetArn"])
    for arn in arns:
        assert wait_dataset(rek, arn)["Status"] == "CREATE_COMPLETE"
    return project


def version_description(rek, project_arn: str, version: str) -> dict:
    return rek.describe_project_versions(ProjectArn=project_arn, VersionNames=[version])["ProjectVersionDescriptions"][0]


def synthetic_data(emulator, **kwargs) -> dict:
    """A fresh bucket filled by rekfeedback_local.synthetic (the summary has every URI)."""
    from rekfeedback_local import synthetic

    bucket = unique("synth")
    options = {"n": 20, "seed": 11, "n_seed": 8, "n_test": 24, **kwargs}
    return synthetic.generate(client(emulator, "s3", retries=3), bucket, "data", **options)


def put_manifest(emulator, bucket: str, key: str, lines: list) -> str:
    import json

    body = "".join((line if isinstance(line, str) else json.dumps(line)) + "\n" for line in lines)
    client(emulator, "s3").put_object(Bucket=bucket, Key=key, Body=body.encode())
    return f"s3://{bucket}/{key}"
