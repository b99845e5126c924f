"""The emulator's SageMaker work teams (moto has none): CreateWorkteam, DescribeWorkteam, ListWorkteams."""

from __future__ import annotations

import uuid

import boto3
import pytest
from botocore.exceptions import ClientError

COGNITO = [{"CognitoMemberDefinition": {"UserPool": "us-east-1_pool", "UserGroup": "g", "ClientId": "c"}}]


@pytest.fixture
def sm(emulator):
    return boto3.client("sagemaker", endpoint_url=emulator.endpoint_url, region_name="us-east-1")


def test_create_then_describe(sm, emulator):
    name = f"team-{uuid.uuid4().hex[:8]}"
    before = emulator.calls["SageMaker.CreateWorkteam"]
    arn = sm.create_workteam(WorkteamName=name, Description="reviewers", MemberDefinitions=COGNITO)["WorkteamArn"]
    assert arn == f"arn:aws:sagemaker:us-east-1:123456789012:workteam/private-crowd/{name}"
    assert emulator.calls["SageMaker.CreateWorkteam"] == before + 1
    team = sm.describe_workteam(WorkteamName=name)["Workteam"]
    assert team["WorkteamArn"] == arn and team["MemberDefinitions"] == COGNITO
    assert team["SubDomain"].endswith(".labeling.us-east-1.sagemaker.aws")
    assert team["CreateDate"] == team["LastUpdatedDate"]


def test_duplicate_and_missing_names(sm):
    name = f"team-{uuid.uuid4().hex[:8]}"
    sm.create_workteam(WorkteamName=name, Description="d", MemberDefinitions=COGNITO)
    with pytest.raises(ClientError) as dup:
        sm.create_workteam(WorkteamName=name.upper(), Description="d", MemberDefinitions=COGNITO)
    assert dup.value.response["Error"]["Code"] == "ResourceInUse"
    with pytest.raises(ClientError) as missing:
        sm.describe_workteam(WorkteamName=f"nobody-{uuid.uuid4().hex[:6]}")
    assert missing.value.response["Error"]["Code"] == "ValidationException"
    assert "does not exist" in missing.value.response["Error"]["Message"]


def test_request_validation_follows_the_model(sm):
    with pytest.raises(ClientError) as bad:
        sm.create_workteam(WorkteamName="under_score", Description="d", MemberDefinitions=COGNITO)
    assert bad.value.response["Error"]["Code"] == "ValidationException"
    with pytest.raises(ClientError):
        sm.create_workteam(WorkteamName=f"mix-{uuid.uuid4().hex[:6]}", Description="d",
                           MemberDefinitions=[*COGNITO, {"OidcMemberDefinition": {"Groups": ["a"]}}])


def test_list_filters_sorts_and_pages(sm):
    tag = uuid.uuid4().hex[:6]
    names = [f"list-{tag}-{c}" for c in "cab"]
    for name in names:
        sm.create_workteam(WorkteamName=name, Description="d", MemberDefinitions=COGNITO)
    first = sm.list_workteams(NameContains=tag, SortBy="Name", SortOrder="Ascending", MaxResults=2)
    assert [t["WorkteamName"] for t in first["Workteams"]] == sorted(names)[:2]
    rest = sm.list_workteams(NameContains=tag, SortBy="Name", SortOrder="Ascending", MaxResults=2,
                             NextToken=first["NextToken"])
    assert [t["WorkteamName"] for t in rest["Workteams"]] == sorted(names)[2:] and "NextToken" not in rest
    paged = [t["WorkteamName"] for page in sm.get_paginator("list_workteams").paginate(
        NameContains=tag, PaginationConfig={"PageSize": 1}) for t in page["Workteams"]]
    assert paged == names[::-1]  # newest first by default
