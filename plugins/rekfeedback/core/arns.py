"""The ARNs a turn reads, one pattern per kind, split into named parts.

Every place that checks or takes apart an ARN (the Trigger form, preflight, the hooks, the operators,
the Ground Truth parameters) uses these, so a value the form accepts is one the rest accepts too.
Name rules follow the AWS API references: project and version names `[a-zA-Z0-9_.-]{1,255}`, work team
names `[a-zA-Z0-9-]{1,63}`, role names `[\\w+=,.@-]{1,64}` under an optional path, function names
`[a-zA-Z0-9_-]{1,64}` with an optional version or alias.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_PARTITION = r"(?P<partition>aws[a-z-]*)"
_REGION = r"(?P<region>[a-z0-9-]+)"
_ACCOUNT = r"(?P<account>\d{12})"
_NAME = r"[a-zA-Z0-9_.\-]{1,255}"

PROJECT_VERSION = re.compile(
    rf"arn:{_PARTITION}:rekognition:{_REGION}:{_ACCOUNT}:project/(?P<project>{_NAME})/version/"
    rf"(?P<version>{_NAME})/(?P<created>\d+)")
PROJECT = re.compile(rf"arn:{_PARTITION}:rekognition:{_REGION}:{_ACCOUNT}:project/(?P<project>{_NAME})/(?P<created>\d+)")
WORKTEAM = re.compile(
    rf"arn:{_PARTITION}:sagemaker:{_REGION}:{_ACCOUNT}:workteam/"
    r"(?P<kind>private-crowd|public-crowd|vendor-crowd)/(?P<name>[A-Za-z0-9-]{1,63})")
ROLE = re.compile(rf"arn:{_PARTITION}:iam::{_ACCOUNT}:role/(?:[\w+=,.@/-]*/)?(?P<name>[\w+=,.@-]{{1,64}})")
LAMBDA = re.compile(
    rf"arn:{_PARTITION}:lambda:{_REGION}:{_ACCOUNT}:function:(?P<name>[A-Za-z0-9_-]{{1,64}})"
    r"(?::(?P<qualifier>[A-Za-z0-9$_-]+))?")

# The Trigger form's JSON Schema "pattern" (ECMAScript): the same rule without Python's named groups.
PROJECT_VERSION_SCHEMA_PATTERN = "^" + re.sub(r"\(\?P<\w+>", "(", PROJECT_VERSION.pattern) + "$"


def match(kind: re.Pattern, value) -> re.Match | None:
    """The whole value matched against one of the patterns above (surrounding blanks ignored), or None."""
    return kind.fullmatch(value.strip()) if isinstance(value, str) else None


def project_of_version(version_arn: str) -> str:
    """The project name in a project-version ARN (the project's own ARN needs DescribeProjects)."""
    m = match(PROJECT_VERSION, version_arn)
    if not m:
        raise ValueError(f"not a Rekognition project-version ARN: {version_arn!r}")
    return m["project"]


def version_name(version_arn: str | None) -> str | None:
    """The version name in a project-version ARN, None for anything else."""
    m = match(PROJECT_VERSION, version_arn)
    return m["version"] if m else None


@dataclass(frozen=True)
class ProjectVersionRef:
    arn: str
    partition: str
    region: str
    account: str
    project_name: str
    version_name: str


def parse_project_version_arn(arn: str) -> ProjectVersionRef:
    """Split a model ARN. The project's own ARN ends in the project's creation number, which the
    version ARN does not carry, so `RekognitionCustomLabelsHook.get_project_arn` looks it up."""
    m = match(PROJECT_VERSION, arn or "")
    if not m:
        raise ValueError(
            f"project_version_arn must look like arn:aws:rekognition:<region>:<account>:project/<project>/"
            f"version/<version>/<number>, got {arn!r}"
        )
    return ProjectVersionRef(m.group(0), m["partition"], m["region"], m["account"], m["project"], m["version"])
