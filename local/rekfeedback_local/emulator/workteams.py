"""SageMaker work teams: CreateWorkteam, DescribeWorkteam, ListWorkteams (moto has none of them).

Enough for preflight to ask "does this private work team exist, and what is its ARN" and for a local
setup to create one. Private teams only: the ARN is `...:workteam/private-crowd/<name>` in the emulator's
region and account; members are stored as given (no Cognito/OIDC user pool behind them). The team lives
in the `default` workforce, as the first private team of an account does on AWS. Timestamps are epoch
seconds, the JSON protocol's wire form.

Not found: AWS answers DescribeWorkteam for an unknown name with a ValidationException whose message
says the team does not exist (the model declares no error shapes for it); so do we.
"""

from __future__ import annotations

import base64
import hashlib
import json
from typing import Callable

from rekfeedback_local.emulator.base import EmulatorEnv
from rekfeedback_local.emulator.errors import ApiError

# The server counts calls ("SageMaker.DescribeWorkteam") before dispatching here, so handlers don't.

_SORT_KEYS = {"Name": lambda t: t["WorkteamName"].lower(), "CreateDate": lambda t: t["CreateDate"]}


def workteam_arn(env: EmulatorEnv, name: str) -> str:
    return f"arn:aws:sagemaker:{env.region}:{env.account_id}:workteam/private-crowd/{name}"


def handlers(env: EmulatorEnv) -> dict[str, Callable[[dict], dict]]:
    # Shared on env so the labeling-job emulator (or a test) can look teams up by ARN.
    teams: dict[str, dict] = getattr(env, "workteams", None) or {}
    env.workteams = teams  # lower-case name -> Workteam shape

    def create_workteam(params: dict) -> dict:
        name = params["WorkteamName"]
        members = params.get("MemberDefinitions") or []
        if not members:
            raise ApiError("ValidationException", "MemberDefinitions must contain at least one member definition.")
        kinds = {next(iter(m), None) for m in members}
        if len(kinds) > 1:
            raise ApiError("ValidationException", "A work team's MemberDefinitions must all be Cognito or all be OIDC, "
                                                  "not a mix.")
        now = env.clock()
        workforce = params.get("WorkforceName") or "default"
        team = {
            "WorkteamName": name,
            "MemberDefinitions": members,
            "WorkteamArn": workteam_arn(env, name),
            "WorkforceArn": f"arn:aws:sagemaker:{env.region}:{env.account_id}:workforce/{workforce}",
            "ProductListingIds": [],
            "Description": params["Description"],
            "SubDomain": f"{_subdomain(env, name)}.labeling.{env.region}.sagemaker.aws",
            "CreateDate": now,
            "LastUpdatedDate": now,
        }
        if params.get("NotificationConfiguration"):
            team["NotificationConfiguration"] = params["NotificationConfiguration"]
        if params.get("WorkerAccessConfiguration"):
            team["WorkerAccessConfiguration"] = params["WorkerAccessConfiguration"]
        with env.lock:
            if name.lower() in teams:
                raise ApiError("ResourceInUse", f"Workteam {teams[name.lower()]['WorkteamArn']} already exists.")
            teams[name.lower()] = team
        return {"WorkteamArn": team["WorkteamArn"]}

    def describe_workteam(params: dict) -> dict:
        name = params["WorkteamName"]
        with env.lock:
            team = teams.get(name.lower())
        if team is None:
            raise ApiError("ValidationException", f"Workteam {workteam_arn(env, name)} does not exist.")
        return {"Workteam": json.loads(json.dumps(team))}

    def list_workteams(params: dict) -> dict:
        contains = (params.get("NameContains") or "").lower()
        with env.lock:
            selected = [t for t in teams.values() if contains in t["WorkteamName"].lower()]
        sort_by = params.get("SortBy", "CreateDate")
        descending = params.get("SortOrder", "Descending") == "Descending"
        selected.sort(key=lambda t: (_SORT_KEYS[sort_by](t), t["WorkteamName"].lower()), reverse=descending)
        start = _decode_token(params.get("NextToken"))
        size = int(params.get("MaxResults", 10))
        page = selected[start:start + size]
        out = {"Workteams": json.loads(json.dumps(page))}
        if start + size < len(selected):
            out["NextToken"] = base64.urlsafe_b64encode(json.dumps({"offset": start + size}).encode()).decode()
        return out

    return {
        "CreateWorkteam": create_workteam,
        "DescribeWorkteam": describe_workteam,
        "ListWorkteams": list_workteams,
    }


def _subdomain(env: EmulatorEnv, name: str) -> str:
    # Stable per team, like the opaque portal sub-domain AWS assigns.
    return hashlib.sha1(f"{env.account_id}/{env.region}/{name.lower()}".encode()).hexdigest()[:10]


def _decode_token(token: str | None) -> int:
    if not token:
        return 0
    try:
        offset = int(json.loads(base64.urlsafe_b64decode(token.encode()))["offset"])
    except (ValueError, KeyError, TypeError) as exc:
        raise ApiError("ValidationException", "The NextToken is invalid; start again without it.") from exc
    if offset < 0:
        raise ApiError("ValidationException", "The NextToken is invalid; start again without it.")
    return offset
