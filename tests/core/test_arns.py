"""One ARN rule per kind: what the Trigger form accepts, the hooks and preflight accept too."""

import re

import pytest

from rekfeedback.core import arns
from rekfeedback.turn_config import ARN_EXAMPLE, check_project_version_arn

VERSION = "arn:aws:rekognition:eu-west-1:123456789012:project/cats.v2/version/cats.v2.2026-01-01T00.00.00/1700000000000"


def test_a_version_arn_splits_into_its_parts():
    ref = arns.parse_project_version_arn(f"  {VERSION} ")
    assert (ref.partition, ref.region, ref.account, ref.project_name, ref.version_name) == (
        "aws", "eu-west-1", "123456789012", "cats.v2", "cats.v2.2026-01-01T00.00.00")
    assert arns.project_of_version(VERSION) == "cats.v2"
    assert arns.version_name(VERSION) == "cats.v2.2026-01-01T00.00.00"


@pytest.mark.parametrize("bad", [
    "arn:aws:rekognition:eu-west-1:123456789012:project/cats/1700000000000",  # a project, not a version
    "arn:aws:rekognition:eu-west-1:12345678901:project/cats/version/v1/1700000000000",  # 11-digit account
    "arn:aws:sagemaker:eu-west-1:123456789012:project/cats/version/v1/1700000000000",
    VERSION + "/extra",
])
def test_the_form_the_settings_check_and_the_hook_agree_on_a_bad_version_arn(bad):
    assert not re.fullmatch(arns.PROJECT_VERSION_SCHEMA_PATTERN, bad)
    assert check_project_version_arn(bad) is not None
    with pytest.raises(ValueError, match="project_version_arn must look like"):
        arns.parse_project_version_arn(bad)


def test_the_form_pattern_accepts_the_documented_example():
    assert re.fullmatch(arns.PROJECT_VERSION_SCHEMA_PATTERN, ARN_EXAMPLE)
    assert check_project_version_arn(ARN_EXAMPLE) is None


@pytest.mark.parametrize("kind, good, bad", [
    (arns.WORKTEAM, "arn:aws:sagemaker:us-east-1:123456789012:workteam/private-crowd/my-team",
     "arn:aws:sagemaker:us-east-1:123456789012:workteam/private-crowd/my_team"),
    (arns.ROLE, "arn:aws:iam::123456789012:role/service-role/GroundTruth", "arn:aws:iam::123456789012:user/bob"),
    (arns.LAMBDA, "arn:aws:lambda:us-east-1:123456789012:function:pre:live",
     "arn:aws:lambda:us-east-1:123456789012:layer:pre"),
    (arns.PROJECT, "arn:aws:rekognition:us-east-1:123456789012:project/cats/1700000000000",
     "arn:aws:rekognition:us-east-1:123456789012:project/cats"),
])
def test_other_kinds(kind, good, bad):
    assert arns.match(kind, good)
    assert arns.match(kind, bad) is None
    assert arns.match(kind, None) is None
