"""Datasets: CreateDataset (manifest and copy), DescribeDataset, ListDatasetEntries, UpdateDatasetEntries."""

from __future__ import annotations

import json

import pytest
from botocore.exceptions import ClientError

from .helpers import client, manifest_source, put_manifest, synthetic_data, unique, wait_dataset


@pytest.fixture(scope="module")
def data(emulator):
    return synthetic_data(emulator, n=4, n_seed=8, n_test=8)


@pytest.fixture
def rek(emulator):
    return client(emulator, "rekognition")


def _seed_lines(emulator, data) -> list[dict]:
    bucket, key = data["seed_manifest_uri"][5:].split("/", 1)
    body = client(emulator, "s3").get_object(Bucket=bucket, Key=key)["Body"].read().decode()
    return [json.loads(line) for line in body.splitlines()]


def test_create_dataset_from_manifest_moves_to_complete(emulator, rek, data, emulator_knobs):
    emulator_knobs(dataset_seconds=0.3)
    project = rek.create_project(ProjectName=unique("ds"))["ProjectArn"]
    arn = rek.create_dataset(ProjectArn=project, DatasetType="TRAIN", DatasetSource=manifest_source(data["seed_manifest_uri"]))["DatasetArn"]
    assert "/dataset/train/" in arn
    first = rek.describe_dataset(DatasetArn=arn)["DatasetDescription"]
    assert first["Status"] == "CREATE_IN_PROGRESS"
    with pytest.raises(ClientError) as err:
        rek.list_dataset_entries(DatasetArn=arn)
    assert err.value.response["Error"]["Code"] == "ResourceNotReadyException"
    done = wait_dataset(rek, arn)
    assert done["Status"] == "CREATE_COMPLETE" and done["StatusMessageCode"] == "SUCCESS"
    assert done["DatasetStats"] == {"LabeledEntries": 8, "TotalEntries": 8, "TotalLabels": 4, "ErrorEntries": 0}
    (meta,) = rek.describe_projects(ProjectNames=[project.split("/")[1]])["ProjectDescriptions"][0]["Datasets"]
    assert meta["DatasetArn"] == arn and meta["DatasetType"] == "TRAIN" and meta["Status"] == "CREATE_COMPLETE"


def test_dataset_errors(emulator, rek, data):
    project = rek.create_project(ProjectName=unique("dserr"))["ProjectArn"]
    source = manifest_source(data["seed_manifest_uri"])
    rek.create_dataset(ProjectArn=project, DatasetType="TRAIN", DatasetSource=source)
    with pytest.raises(ClientError) as err:
        rek.create_dataset(ProjectArn=project, DatasetType="TRAIN", DatasetSource=source)
    assert err.value.response["Error"]["Code"] == "ResourceAlreadyExistsException"
    with pytest.raises(ClientError) as err:
        rek.create_dataset(ProjectArn=project.replace("/dserr", "/nothere"), DatasetType="TEST", DatasetSource=source)
    assert err.value.response["Error"]["Code"] == "ResourceNotFoundException"
    with pytest.raises(ClientError) as err:
        rek.create_dataset(ProjectArn=project, DatasetType="TEST",
                           DatasetSource={**source, "DatasetArn": project.replace(project.split("/")[-1], "dataset/train/1")})
    assert err.value.response["Error"]["Code"] == "InvalidParameterException"
    with pytest.raises(ClientError) as err:
        rek.describe_dataset(DatasetArn=f"{project.rsplit('/', 1)[0]}/dataset/test/42")
    assert err.value.response["Error"]["Code"] == "ResourceNotFoundException"
    with pytest.raises(ClientError) as err:
        rek.describe_dataset(DatasetArn="arn:aws:rekognition:us-east-1:123456789012:project/p/dataset/validation/1")
    assert err.value.response["Error"]["Code"] == "ValidationException"


def test_missing_manifest_fails_creation(emulator, rek, data):
    project = rek.create_project(ProjectName=unique("dsmiss"))["ProjectArn"]
    arn = rek.create_dataset(ProjectArn=project, DatasetType="TRAIN", DatasetSource={
        "GroundTruthManifest": {"S3Object": {"Bucket": data["bucket"], "Name": "no/such.manifest"}}})["DatasetArn"]
    desc = wait_dataset(rek, arn)
    assert desc["Status"] == "CREATE_FAILED"
    assert desc["StatusMessageCode"] == "CLIENT_ERROR"
    assert "no/such.manifest" in desc["StatusMessage"]


def test_mostly_invalid_manifest_fails(emulator, rek, data):
    uri = put_manifest(emulator, data["bucket"], unique("bad") + ".manifest",
                       ["not json", '{"no-source-ref": 1}', '{"source-ref": "https://x/y.jpg"}', _seed_lines(emulator, data)[0]])
    project = rek.create_project(ProjectName=unique("dsbad"))["ProjectArn"]
    arn = rek.create_dataset(ProjectArn=project, DatasetType="TRAIN", DatasetSource=manifest_source(uri))["DatasetArn"]
    desc = wait_dataset(rek, arn)
    assert desc["Status"] == "CREATE_FAILED"
    assert "ERROR_TOO_MANY_RECORDS_IN_ERROR" in desc["StatusMessage"]


def test_copy_dataset_and_list_entries_filters(emulator, rek, data):
    lines = _seed_lines(emulator, data)
    lines.append({"source-ref": f"s3://{data['bucket']}/data/extra/unlabelled.jpg"})  # WARNING_UNANNOTATED_RECORD
    broken = dict(lines[0], **{"source-ref": f"s3://{data['bucket']}/data/extra/odd.jpg"})
    broken["bbox-metadata"] = dict(broken["bbox-metadata"], type="groundtruth/label-verification")
    lines.append(broken)
    uri = put_manifest(emulator, data["bucket"], unique("mixed") + ".manifest", lines)
    project = rek.create_project(ProjectName=unique("dscopy"))["ProjectArn"]
    train = rek.create_dataset(ProjectArn=project, DatasetType="TRAIN", DatasetSource=manifest_source(uri))["DatasetArn"]
    assert wait_dataset(rek, train)["DatasetStats"] == {"LabeledEntries": 8, "TotalEntries": 10, "TotalLabels": 4, "ErrorEntries": 1}
    test = rek.create_dataset(ProjectArn=project, DatasetType="TEST", DatasetSource={"DatasetArn": train})["DatasetArn"]
    assert wait_dataset(rek, test)["DatasetStats"]["TotalEntries"] == 10

    def entries(**filters):
        pages = rek.get_paginator("list_dataset_entries").paginate(DatasetArn=test, **filters, PaginationConfig={"PageSize": 3})
        return [json.loads(e) for page in pages for e in page["DatasetEntries"]]

    assert len(entries()) == 10
    assert len(entries(Labeled=False)) == 2
    circles = entries(ContainsLabels=["circle"])
    assert circles and all("circle" in e["bbox-metadata"]["class-map"].values() for e in circles)
    assert [e["source-ref"] for e in entries(SourceRefContains="unlabelled")] == [f"s3://{data['bucket']}/data/extra/unlabelled.jpg"]
    (with_error,) = entries(HasErrors=True)
    assert with_error["errors"][0]["code"] == "ERROR_UNSUPPORTED_USE_CASE_TYPE"


def test_update_dataset_entries_merges_by_source_ref(emulator, rek, data):
    lines = _seed_lines(emulator, data)
    project = rek.create_project(ProjectName=unique("dsupd"))["ProjectArn"]
    arn = rek.create_dataset(ProjectArn=project, DatasetType="TRAIN", DatasetSource=manifest_source(data["seed_manifest_uri"]))["DatasetArn"]
    with pytest.raises(ClientError) as err:  # still CREATE_IN_PROGRESS
        rek.update_dataset_entries(DatasetArn=arn, Changes={"GroundTruth": json.dumps(lines[0]).encode()})
    assert err.value.response["Error"]["Code"] == "ResourceInUseException"
    wait_dataset(rek, arn)
    relabelled = json.loads(json.dumps(lines[0]))
    relabelled["bbox-metadata"]["class-map"] = {"0": "star"}
    added = dict(lines[1], **{"source-ref": f"s3://{data['bucket']}/data/extra/new.png"})
    body = "\n".join(json.dumps(line) for line in (relabelled, added)).encode()
    assert rek.update_dataset_entries(DatasetArn=arn, Changes={"GroundTruth": body})["ResponseMetadata"]["HTTPStatusCode"] == 200
    assert rek.describe_dataset(DatasetArn=arn)["DatasetDescription"]["Status"] == "UPDATE_IN_PROGRESS"
    desc = wait_dataset(rek, arn)
    assert desc["Status"] == "UPDATE_COMPLETE"
    assert desc["DatasetStats"]["TotalEntries"] == 9
    (entry,) = rek.list_dataset_entries(DatasetArn=arn, SourceRefContains=lines[0]["source-ref"])["DatasetEntries"]
    assert json.loads(entry)["bbox-metadata"]["class-map"] == {"0": "star"}


def test_update_dataset_entries_errors(emulator, rek, data):
    with pytest.raises(ClientError) as err:
        rek.update_dataset_entries(DatasetArn="arn:aws:rekognition:us-east-1:123456789012:project/none/dataset/train/1",
                                   Changes={"GroundTruth": b"{}"})
    assert err.value.response["Error"]["Code"] == "ResourceNotFoundException"
    project = rek.create_project(ProjectName=unique("dsupderr"))["ProjectArn"]
    arn = rek.create_dataset(ProjectArn=project, DatasetType="TRAIN")["DatasetArn"]  # empty dataset
    assert wait_dataset(rek, arn)["DatasetStats"]["TotalEntries"] == 0
    with pytest.raises(ClientError) as err:
        rek.update_dataset_entries(DatasetArn=arn, Changes={"GroundTruth": b"\n\n"})
    assert err.value.response["Error"]["Code"] == "InvalidParameterException"
    with pytest.raises(ClientError) as err:  # 5 MB + 1 byte: over the model's limit, rejected before the handler
        client(emulator, "rekognition", validate=False).update_dataset_entries(
            DatasetArn=arn, Changes={"GroundTruth": b"x" * (5 * 1024 * 1024 + 1)})
    assert err.value.response["Error"]["Code"] == "ValidationException"
