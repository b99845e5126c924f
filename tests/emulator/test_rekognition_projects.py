"""CreateProject / DescribeProjects through boto3 over HTTP, with their error codes and server-side validation."""

from __future__ import annotations

import pytest
from botocore.exceptions import ClientError

from .helpers import client, unique


def test_create_and_describe_project(emulator):
    rek = client(emulator, "rekognition")
    name = unique("shapes")
    arn = rek.create_project(ProjectName=name)["ProjectArn"]
    assert arn.startswith(f"arn:aws:rekognition:us-east-1:123456789012:project/{name}/")
    (desc,) = rek.describe_projects(ProjectNames=[name])["ProjectDescriptions"]
    assert desc["ProjectArn"] == arn
    assert desc["Status"] == "CREATED"
    assert desc["Feature"] == "CUSTOM_LABELS"
    assert desc["Datasets"] == []
    assert desc["CreationTimestamp"].year >= 2024


def test_duplicate_project_name_is_resource_in_use(emulator):
    rek = client(emulator, "rekognition")
    name = unique("dup")
    rek.create_project(ProjectName=name)
    with pytest.raises(ClientError) as err:
        rek.create_project(ProjectName=name)
    assert err.value.response["Error"]["Code"] == "ResourceInUseException"
    assert err.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400


def test_describe_projects_paginates(emulator):
    rek = client(emulator, "rekognition")
    names = [unique("page") for _ in range(3)]
    for name in names:
        rek.create_project(ProjectName=name)
    seen = []
    for page in rek.get_paginator("describe_projects").paginate(ProjectNames=names, PaginationConfig={"PageSize": 2}):
        assert len(page["ProjectDescriptions"]) <= 2
        seen += [d["ProjectArn"].split("/")[1] for d in page["ProjectDescriptions"]]
    assert sorted(seen) == sorted(names)


def test_bad_pagination_token(emulator):
    rek = client(emulator, "rekognition")
    with pytest.raises(ClientError) as err:
        rek.describe_projects(NextToken="not-a-token!")
    assert err.value.response["Error"]["Code"] == "InvalidPaginationTokenException"


@pytest.mark.parametrize("name, constraint", [
    ("has space", "regular expression pattern"),
    ("x" * 256, "length less than or equal to 255"),
])
def test_project_name_validated_server_side(emulator, name, constraint):
    # botocore's own validator skips patterns and max lengths; the emulator must not.
    rek = client(emulator, "rekognition")
    with pytest.raises(ClientError) as err:
        rek.create_project(ProjectName=name)
    assert err.value.response["Error"]["Code"] == "ValidationException"
    assert constraint in err.value.response["Error"]["Message"]
    assert "projectName" in err.value.response["Error"]["Message"]


def test_missing_required_and_wrong_type_without_client_validation(emulator):
    rek = client(emulator, "rekognition", validate=False)
    with pytest.raises(ClientError) as err:
        rek.create_project()
    assert err.value.response["Error"]["Code"] == "ValidationException"
    assert "Member must not be null" in err.value.response["Error"]["Message"]
    with pytest.raises(ClientError) as err:
        rek.describe_projects(MaxResults="ten")
    assert err.value.response["Error"]["Code"] == "ValidationException"


def test_enum_and_range_validated(emulator):
    rek = client(emulator, "rekognition", validate=False)
    with pytest.raises(ClientError) as err:
        rek.describe_projects(Features=["NOT_A_FEATURE"], MaxResults=0)
    message = err.value.response["Error"]["Message"]
    assert message.startswith("2 validation errors detected")
    assert "enum value set" in message and "greater than or equal to 1" in message
