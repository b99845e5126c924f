"""A small reader of IAM policy documents: may this principal do this action on this resource?

Preflight reads a role's inline and attached policies and asks it whether Ground Truth will be able
to read the input, write the output and invoke the Lambdas, before a job fails on it hours later.
It covers Allow/Deny, Action/NotAction, Resource/NotResource and wildcards. Conditions cannot be
evaluated without the request context, so a statement with a Condition counts as "conditional"
(reported as a warning, never as a pass or a hard failure). Permission boundaries, SCPs and session
policies are out of reach; the verdict is about what the role's own policies say.
"""

from __future__ import annotations

import json
import re
from functools import lru_cache
from typing import Any, Iterable
from urllib.parse import unquote

ALLOWED = "allowed"
DENIED = "denied"  # an explicit Deny matches
NOT_ALLOWED = "not-allowed"  # nothing allows it (implicit deny)
CONDITIONAL = "conditional"  # only statements with conditions decide


def load_document(document: Any) -> dict:
    """Policy documents come as dicts from boto3, but as URL-encoded JSON strings from some IAM calls."""
    if isinstance(document, dict):
        return document
    if not isinstance(document, str):
        raise ValueError(f"not a policy document: {type(document).__name__}")
    text = document.strip()
    if not text.startswith("{"):
        text = unquote(text)
    return json.loads(text)


def _as_list(value: Any) -> list:
    if value is None:
        return []
    return value if isinstance(value, list) else [value]


@lru_cache(maxsize=512)
def _pattern(glob: str, case_insensitive: bool) -> re.Pattern:
    regex = "".join(".*" if c == "*" else "." if c == "?" else re.escape(c) for c in glob)
    return re.compile(f"^{regex}$", re.IGNORECASE | re.DOTALL if case_insensitive else re.DOTALL)


def _matches(globs: Iterable[str], value: str, case_insensitive: bool) -> bool:
    return any(_pattern(str(g), case_insensitive).match(value) for g in globs)


def _statement_applies(stmt: dict, action: str, resource: str) -> bool:
    if "Action" in stmt:
        if not _matches(_as_list(stmt["Action"]), action, True):
            return False
    elif "NotAction" in stmt:
        if _matches(_as_list(stmt["NotAction"]), action, True):
            return False
    else:
        return False
    if "Resource" in stmt:
        return _matches(_as_list(stmt["Resource"]), resource, False)
    if "NotResource" in stmt:
        return not _matches(_as_list(stmt["NotResource"]), resource, False)
    return True  # resource-based policies omit Resource only when they mean "this resource"


def evaluate(documents: Iterable[Any], action: str, resource: str) -> str:
    """The verdict of identity policies for `action` on `resource`: ALLOWED, DENIED, NOT_ALLOWED or CONDITIONAL."""
    allowed = conditional_allow = conditional_deny = False
    for document in documents:
        for stmt in _as_list(load_document(document).get("Statement")):
            if not isinstance(stmt, dict) or not _statement_applies(stmt, action, resource):
                continue
            deny = str(stmt.get("Effect", "")).lower() == "deny"
            has_condition = bool(stmt.get("Condition"))
            if deny and not has_condition:
                return DENIED
            if deny:
                conditional_deny = True
            elif has_condition:
                conditional_allow = True
            else:
                allowed = True
    if allowed and not conditional_deny:
        return ALLOWED
    if allowed or conditional_allow:
        return CONDITIONAL
    return NOT_ALLOWED


def _principal_values(principal: Any, kind: str) -> list[str]:
    if principal == "*":
        return ["*"]
    if isinstance(principal, dict):
        return [str(v) for v in _as_list(principal.get(kind))]
    return []


def principal_allowed(document: Any, action: str, *, service: str | None = None,
                      arns: Iterable[str] = (), account: str | None = None) -> str:
    """The verdict of a resource or trust policy letting a principal do `action`.

    The principal is the AWS service `service` (e.g. "sagemaker.amazonaws.com"), any ARN in `arns`,
    or the account `account` (its root ARN or bare id, which in a trust policy delegates to the
    account's own IAM).
    """
    arns = list(arns)
    accepted_aws = set(arns)
    if account:
        accepted_aws |= {account, f"arn:aws:iam::{account}:root"}
    allowed = conditional = False
    for stmt in _as_list(load_document(document).get("Statement")):
        if not isinstance(stmt, dict):
            continue
        actions = _as_list(stmt.get("Action"))
        if not _matches(actions, action, True):
            continue
        principal = stmt.get("Principal")
        services = _principal_values(principal, "Service")
        aws = _principal_values(principal, "AWS")
        hit = ("*" in services or "*" in aws
               or (service is not None and service in services)
               or any(_matches([p], a, False) for p in aws for a in accepted_aws))
        if not hit:
            continue
        deny = str(stmt.get("Effect", "")).lower() == "deny"
        if deny and not stmt.get("Condition"):
            return DENIED
        if deny:
            continue
        if stmt.get("Condition"):
            conditional = True
        else:
            allowed = True
    if allowed:
        return ALLOWED
    return CONDITIONAL if conditional else NOT_ALLOWED
