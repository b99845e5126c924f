"""The preflight checks: every AWS resource and service one turn will touch, looked at before anything costs money.

boto3 level and no Airflow import, so `rekfeedback preflight` runs them without an Airflow installation
being configured; the operator passes clients made from its AWS connection. Every check runs, whatever
the others found, and records `Finding`s in one `Report` (rekfeedback.core.preflight). Nothing is
started or created, except one small marker object written to the output prefix and removed at once
(the only way to know a prefix is writable).

Entry point: `run_checks(config, clients=..., region=..., dag_id=..., labelstudio=...)`.
"""

from __future__ import annotations

import json
import re
import uuid
from dataclasses import dataclass, field
from importlib import resources
from typing import Any, Callable, Iterable

import requests
from botocore.exceptions import BotoCoreError, ClientError

from rekfeedback import turn_config
from rekfeedback.core import ground_truth as gt
from rekfeedback.core import iam_policy
from rekfeedback.core.paths import parse_s3_uri
from rekfeedback.core.predictions import exclusion_set, has_image_extension, iter_jsonl, source_refs_from_manifest
from rekfeedback.core.preflight import Report

SAGEMAKER = "sagemaker.amazonaws.com"
# The rule Ground Truth's worker UI needs on every bucket it shows images from (aws-formats.md 3.3).
GT_CORS_RULE = {"AllowedHeaders": [], "AllowedMethods": ["GET"], "AllowedOrigins": ["*"],
                "ExposeHeaders": ["Access-Control-Allow-Origin"]}
SAGEMAKER_TRUST_POLICY = {"Version": "2012-10-17", "Statement": [
    {"Effect": "Allow", "Principal": {"Service": SAGEMAKER}, "Action": "sts:AssumeRole"}]}
MANIFEST_SUFFIXES = (".manifest", ".jsonl", ".json")
MARKER_NAME = ".rekfeedback-preflight-marker"
MAX_LISTED = 1_000_000  # a prefix with more keys than this is counted as "at least"

WORKTEAM_ARN_RE = re.compile(
    r"^arn:aws[a-z-]*:sagemaker:(?P<region>[a-z0-9-]+):(?P<account>\d{12}):workteam/"
    r"(?P<kind>private-crowd|public-crowd|vendor-crowd)/(?P<name>[A-Za-z0-9-]+)$")
ROLE_ARN_RE = re.compile(r"^arn:aws[a-z-]*:iam::(?P<account>\d{12}):role/(?:[\w+=,.@/-]*/)?(?P<name>[\w+=,.@-]{1,64})$")
LAMBDA_ARN_RE = re.compile(
    r"^arn:aws[a-z-]*:lambda:(?P<region>[a-z0-9-]+):(?P<account>\d{12}):function:(?P<name>[A-Za-z0-9_-]{1,64})"
    r"(?::(?P<qualifier>[A-Za-z0-9$_-]+))?$")
VERSION_ARN_PARTS_RE = re.compile(
    r"^arn:aws[a-z-]*:rekognition:(?P<region>[a-z0-9-]+):(?P<account>\d{12}):project/(?P<project>[^/]+)/version/"
    r"(?P<version>[^/]+)/(?P<stamp>\d+)$")

# Model version statuses: which ones a turn can use as they are.
USABLE_STATUSES = {"TRAINING_COMPLETED", "STOPPED", "RUNNING", "COPYING_COMPLETED"}
TRANSIENT_STATUSES = {"STARTING", "STOPPING"}


@dataclass
class LabelStudioTarget:
    """Where the Label Studio check looks: URL and token, or why they could not be read from the connection."""

    url: str | None = None
    token: str | None = None
    auth: str | None = None  # "token" | "pat"; None guesses from the token's shape
    conn_id: str = "label_studio_default"
    error: str | None = None  # the connection could not be read (no host, no token, unknown conn id...)
    timeout: float = 10.0


@dataclass
class Checker:
    config: dict
    clients: Callable[[str], Any]  # service name -> boto3 client in `region`
    region: str
    dag_id: str
    labelstudio: LabelStudioTarget | None = None
    report: Report = field(default_factory=Report)
    bad_settings: set = field(default_factory=set)
    image_uris: list = field(default_factory=list)  # candidate images (for CORS and role checks)
    new_uris: list = field(default_factory=list)
    labels: list | None = None
    model_kind: str | None = None  # "boxes" | "classification" when the training manifest tells
    role_documents: list | None = None  # readable policies of the GT role
    role_unreadable: list = field(default_factory=list)  # policies that could not be read
    turn_prefix: str | None = None  # this run's prefix: what an earlier try of the same run predicted is still new

    def client(self, service: str):
        return self.clients(service)

    @property
    def ground_truth(self) -> bool:
        return self.config.get("review_backend", "ground-truth") == "ground-truth"

    def usable(self, *names: str) -> bool:
        return all(self.config.get(n) and n not in self.bad_settings for n in names)


# --------------------------------------------------------------------------------------- helpers

def _code(exc: ClientError) -> str:
    return exc.response.get("Error", {}).get("Code", "")


def _message(exc: Exception) -> str:
    if isinstance(exc, ClientError):
        err = exc.response.get("Error", {})
        return f"{err.get('Code', 'Error')}: {err.get('Message', '')}".strip()
    return str(exc)


def _denied(exc: ClientError) -> bool:
    return _code(exc) in ("AccessDenied", "AccessDeniedException", "403", "Forbidden", "UnauthorizedOperation")


def _not_found(exc: ClientError) -> bool:
    code = _code(exc)
    return code in ("NoSuchBucket", "NoSuchKey", "404", "NotFound", "NoSuchEntity", "ResourceNotFoundException",
                    "ResourceNotFound") or (code == "ValidationException" and "not exist" in _message(exc).lower())


def _bucket_region(checker: Checker, bucket: str) -> str | None:
    try:
        location = checker.client("s3").get_bucket_location(Bucket=bucket).get("LocationConstraint")
    except ClientError:
        return None
    # Buckets in us-east-1 answer None (or "" from some clients); "EU" is the legacy name of eu-west-1.
    return {None: "us-east-1", "": "us-east-1", "EU": "eu-west-1"}.get(location, location)


def _s3_arn(bucket: str, key: str | None = None) -> str:
    return f"arn:aws:s3:::{bucket}" if key is None else f"arn:aws:s3:::{bucket}/{key}"


# ----------------------------------------------------------------------------------------- config

def check_settings(checker: Checker) -> None:
    """What can be seen without AWS: the shared validation of turn_config, one finding per setting."""
    try:
        turn_config.validate(checker.config)
    except turn_config.TurnConfigError as exc:
        for line in str(exc).splitlines():
            text = line.lstrip("- ").strip()
            if not text:
                continue
            name = next((s.name for s in turn_config.SETTINGS if text.startswith(s.name)), "settings")
            checker.bad_settings.add(name)
            checker.report.error("config", name, text,
                                 f"set {name} in the Trigger form, the Variable `rekfeedback_{name}` "
                                 f"or env `REKFEEDBACK_{name.upper()}`")


# ------------------------------------------------------------------------------------------ model

def check_model(checker: Checker) -> None:
    if not checker.usable("project_version_arn"):
        return
    report, arn = checker.report, checker.config["project_version_arn"]
    parts = VERSION_ARN_PARTS_RE.match(arn)
    if parts["region"] != checker.region:
        report.error("model", arn, f"the model version is in region {parts['region']} but the AWS connection uses "
                                   f"{checker.region}",
                     f"set region_name={parts['region']} in the AWS connection's extra, or use a model version "
                     f"trained in {checker.region}")
        return
    rek = checker.client("rekognition")
    project_name, version_name = parts["project"], parts["version"]
    projects = rek.describe_projects(ProjectNames=[project_name]).get("ProjectDescriptions", [])
    if not projects:
        report.error("model", arn, f"project {project_name!r} does not exist in {checker.region}",
                     "copy the model ARN again from the Rekognition Custom Labels console (Projects > your project "
                     "> Models)")
        return
    project_arn = projects[0]["ProjectArn"]
    versions = rek.describe_project_versions(ProjectArn=project_arn, VersionNames=[version_name]) \
        .get("ProjectVersionDescriptions", [])
    exact = [v for v in versions if v["ProjectVersionArn"] == arn]
    if not exact:
        elsewhere = _find_version_elsewhere(rek, arn, project_name, version_name, parts["stamp"])
        if elsewhere:
            report.error("model", arn, f"the model version belongs to project {elsewhere['project']!r}, not to "
                                       f"{project_name!r} named in the ARN",
                         f"use the version's real ARN {elsewhere['arn']}, or pick a version of {project_name!r}")
        elif versions:
            report.error("model", arn, f"project {project_name!r} has a version named {version_name!r} but with ARN "
                                       f"{versions[0]['ProjectVersionArn']}",
                         "copy the model ARN again from the Rekognition console; the number at the end must match")
        else:
            report.error("model", arn, f"project {project_name!r} has no model version named {version_name!r}",
                         "train a version first, or copy an existing version's ARN from the Rekognition console")
        return
    version = exact[0]
    status = version.get("Status", "?")
    checker.report.facts["model_status"] = status
    if version.get("EvaluationResult", {}).get("F1Score") is not None:
        checker.report.facts["model_f1"] = round(float(version["EvaluationResult"]["F1Score"]), 4)
    if version.get("Feature", "CUSTOM_LABELS") != "CUSTOM_LABELS":
        report.error("model", arn, f"this is a {version['Feature']} model, not a Custom Labels model",
                     "use a Custom Labels model version (DetectCustomLabels only runs those)")
        return
    problem = _status_problem(status, version.get("StatusMessage"))
    if problem:
        severity, text, advice = problem
        report.add("model", arn, text, advice, severity)
        if severity == "error":
            return
    checker.labels, checker.model_kind = _labels_of(checker, version)
    if status != "RUNNING" and not checker.config.get("start_model", True):
        report.error("model", arn, f"the model is {status} and start_model is false, so inference would fail",
                     "start it first (StartProjectVersion) or set start_model to true")
        return
    if status == "RUNNING":
        running_units = version.get("MinInferenceUnits")
        wanted = checker.config.get("min_inference_units")
        if running_units is not None and wanted is not None and int(running_units) != int(wanted):
            report.warning("model", arn, f"the model already runs with {running_units} inference units; "
                                         f"min_inference_units={wanted} will not be applied",
                           "stop the model first if the run must use a different number of inference units")
    report.ok("model", arn)


def _status_problem(status: str, message: str | None) -> tuple[str, str, str] | None:
    detail = f" ({message})" if message else ""
    if status in USABLE_STATUSES:
        return None
    if status == "TRAINING_IN_PROGRESS":
        return ("error", f"the model version is still training{detail}",
                "wait until its status is TRAINING_COMPLETED, then trigger the run again")
    if status in ("TRAINING_FAILED", "COPYING_FAILED"):
        return ("error", f"the model version is {status} and cannot be started{detail}",
                "pick a version whose training completed, or fix the dataset and train again")
    if status in TRANSIENT_STATUSES:
        return ("warning", f"the model is {status}{detail}",
                "the start task waits for it; make sure no one else stops or starts it meanwhile")
    if status == "FAILED":
        return ("warning", f"the model's last start failed{detail}",
                "the start task will try again; check the inference unit quota if it fails again")
    if status == "COPYING_IN_PROGRESS":
        return ("error", "the model version is still being copied", "wait for COPYING_COMPLETED")
    return ("error", f"the model version is {status} and cannot be used{detail}",
            "pick another model version (DELETING, DEPRECATED and EXPIRED versions cannot be started)")


def _find_version_elsewhere(rek, arn: str, project_name: str, version_name: str, stamp: str) -> dict | None:
    """A version with this name and number in another project: the ARN was edited or assembled by hand."""
    try:
        for page in rek.get_paginator("describe_projects").paginate():
            for project in page.get("ProjectDescriptions", []):
                other = project["ProjectArn"].split(":project/")[1].split("/")[0]
                if other == project_name:
                    continue
                found = rek.describe_project_versions(ProjectArn=project["ProjectArn"], VersionNames=[version_name])
                for v in found.get("ProjectVersionDescriptions", []):
                    if v["ProjectVersionArn"].endswith(f"/version/{version_name}/{stamp}"):
                        return {"project": other, "arn": v["ProjectVersionArn"]}
    except ClientError:
        return None
    return None


def _labels_of(checker: Checker, version: dict) -> tuple[list | None, str | None]:
    """The model's label set (evaluation summary) and whether it detects boxes (its training manifest)."""
    labels, kind = None, None
    s3 = checker.client("s3")
    summary = version.get("EvaluationResult", {}).get("Summary", {}).get("S3Object")
    if summary:
        try:
            body = s3.get_object(Bucket=summary["Bucket"], Key=summary["Name"])["Body"].read()
            labels = list(json.loads(body).get("EvaluationDetails", {}).get("Labels") or []) or None
        except (ClientError, ValueError):
            labels = None
    assets = (version.get("TrainingDataResult", {}).get("Output") or version.get("TrainingDataResult", {})
              .get("Input") or {}).get("Assets") or []
    for asset in assets[:1]:
        obj = asset.get("GroundTruthManifest", {}).get("S3Object")
        if not obj:
            continue
        try:
            text = s3.get_object(Bucket=obj["Bucket"], Key=obj["Name"], Range="bytes=0-65535")["Body"].read()
            first = json.loads(text.decode("utf-8", "replace").splitlines()[0])
        except (ClientError, ValueError, IndexError):
            continue
        kind = "boxes" if any(isinstance(v, dict) and "annotations" in v for v in first.values()) else "classification"
    return labels, kind


# ------------------------------------------------------------------------------------------ input

def check_input(checker: Checker) -> None:
    if not checker.usable("input_uri"):
        return
    report, uri = checker.report, checker.config["input_uri"]
    loc = parse_s3_uri(uri, "input_uri")
    s3 = checker.client("s3")
    is_manifest = loc.key.lower().endswith(MANIFEST_SUFFIXES)
    try:
        if is_manifest:
            text = s3.get_object(Bucket=loc.bucket, Key=loc.key)["Body"].read()
            refs = source_refs_from_manifest(text, what=f"input manifest {uri}")
            candidates = [r for r in refs if has_image_extension(r)]
            ignored = len(refs) - len(candidates)
        else:
            candidates, ignored = _list_images(s3, loc.bucket, loc.key)
    except ClientError as exc:
        if _code(exc) == "NoSuchBucket":
            report.error("input", uri, f"bucket {loc.bucket} does not exist (or not in this account)",
                         "fix input_uri, or create the bucket and upload the images")
        elif _code(exc) in ("NoSuchKey", "404"):
            report.error("input", uri, "the input manifest does not exist", "fix input_uri or upload the manifest")
        elif _denied(exc):
            report.error("input", uri, f"access denied listing/reading the input ({_message(exc)})",
                         "give the Airflow AWS connection s3:ListBucket and s3:GetObject on the input bucket")
        else:
            report.error("input", uri, f"cannot read the input: {_message(exc)}", "check input_uri and the bucket")
        return
    except ValueError as exc:
        report.error("input", uri, str(exc), "fix the manifest: one JSON object per line with an s3:// source-ref")
        return
    report.facts["candidates"] = len(candidates)
    if ignored:
        report.facts["ignored_objects"] = ignored
    checker.image_uris = candidates
    region = _bucket_region(checker, loc.bucket)
    if region and region != checker.region:
        report.error("input", f"s3://{loc.bucket}", f"the input bucket is in {region}, the turn runs in {checker.region}",
                     "DetectCustomLabels and Ground Truth need the images in the model's region: copy them to a "
                     f"bucket in {checker.region}")
    if not candidates:
        report.warning("input", uri, "no candidate images (.jpg, .jpeg, .png) found", "check input_uri; the run "
                                                                                       "will skip until images arrive")
        checker.new_uris = []
        report.facts["new_images"] = 0
        return
    first = parse_s3_uri(candidates[0])
    try:
        s3.get_object(Bucket=first.bucket, Key=first.key, Range="bytes=0-0")["Body"].read()
    except ClientError as exc:
        report.error("input", candidates[0], f"an input image cannot be read ({_message(exc)})",
                     "give the Airflow AWS connection s3:GetObject on the input images")
        return
    _count_new(checker, candidates)
    report.ok("input", uri)


def _list_images(s3, bucket: str, prefix: str) -> tuple[list[str], int]:
    images, ignored = [], 0
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        for obj in page.get("Contents", []):
            if obj["Key"].endswith("/"):
                continue
            if has_image_extension(obj["Key"]):
                images.append(f"s3://{bucket}/{obj['Key']}")
            else:
                ignored += 1
        if len(images) >= MAX_LISTED:
            break
    return images, ignored


def _count_new(checker: Checker, candidates: list[str]) -> None:
    """New = not in the cumulative manifest, not known to be unusable, or this run's own (a rerun)."""
    report = checker.report
    done: set[str] = set()
    if checker.usable("output_uri"):
        for uri, what in ((turn_config.cumulative_manifest_uri(checker.config, checker.dag_id), "cumulative manifest"),
                          (turn_config.unusable_images_uri(checker.config, checker.dag_id), "list of unusable images")):
            refs = _refs_of(checker, uri, what)
            if refs is None:
                return
            done |= refs
    if done and checker.turn_prefix:
        done -= _predicted_by_this_run(checker)
    checker.new_uris = [u for u in candidates if u not in done]
    report.facts["already_labelled"] = len(candidates) - len(checker.new_uris)
    report.facts["new_images"] = len(checker.new_uris)
    if not checker.new_uris:
        report.warning("input", checker.config["input_uri"],
                       f"nothing new to label: all {len(candidates)} images are already in the cumulative manifest "
                       f"(or known to be unusable, e.g. corrupt)",
                       "add new images under input_uri; this run skips without starting the model")


def _refs_of(checker: Checker, uri: str, what: str) -> set[str] | None:
    """The source-refs of a loop file (empty when it does not exist yet); None after reporting an error."""
    loc = parse_s3_uri(uri)
    try:
        text = checker.client("s3").get_object(Bucket=loc.bucket, Key=loc.key)["Body"].read()
        return exclusion_set([(uri, text)])
    except ClientError as exc:
        if _not_found(exc):
            return set()
        checker.report.error("input", uri, f"the {what} exists but cannot be read ({_message(exc)})",
                             "give the connection s3:GetObject on the output prefix; without it every image "
                             "would be labelled again")
    except ValueError as exc:
        checker.report.error("input", uri, f"the {what} is not valid: {exc}",
                             "repair or remove the bad lines (the merge writes rejects to manifest/rejects.jsonl)")
    return None


def _predicted_by_this_run(checker: Checker) -> set[str]:
    """Images in this run's prediction files: an earlier try of the run took them, so they are still its own."""
    loc = parse_s3_uri(checker.turn_prefix).join("predictions")
    s3, refs = checker.client("s3"), set()
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=loc.bucket, Prefix=loc.key + "/"):
        for obj in page.get("Contents", []):
            if obj["Key"].endswith(".jsonl"):
                text = s3.get_object(Bucket=loc.bucket, Key=obj["Key"])["Body"].read()
                refs.update(line["source-ref"] for line in iter_jsonl(text, f"s3://{loc.bucket}/{obj['Key']}")
                            if isinstance(line.get("source-ref"), str))
    return refs


# ----------------------------------------------------------------------------------------- output

def check_output(checker: Checker) -> None:
    if not checker.usable("output_uri"):
        return
    report, uri = checker.report, checker.config["output_uri"]
    loc = parse_s3_uri(uri, "output_uri")
    s3 = checker.client("s3")
    region = _bucket_region(checker, loc.bucket)
    if region and region != checker.region:
        report.error("output", f"s3://{loc.bucket}", f"the output bucket is in {region}, the turn runs in "
                                                     f"{checker.region}",
                     f"Ground Truth and Rekognition training need it in {checker.region}: use a bucket there")
    # One marker per attempt: two preflights at once must not delete each other's marker.
    marker = loc.join(checker.dag_id, f"{MARKER_NAME}-{uuid.uuid4().hex[:12]}")
    try:
        s3.put_object(Bucket=marker.bucket, Key=marker.key, Body=b"rekfeedback preflight: safe to delete\n")
    except ClientError as exc:
        if _code(exc) == "NoSuchBucket":
            report.error("output", uri, f"bucket {loc.bucket} does not exist", "create it or fix output_uri")
        else:
            report.error("output", uri, f"cannot write under the output prefix ({_message(exc)})",
                         "give the Airflow AWS connection s3:PutObject and s3:DeleteObject on the output prefix")
        return
    try:
        s3.delete_object(Bucket=marker.bucket, Key=marker.key)
    except ClientError as exc:
        report.warning("output", str(marker), f"the preflight marker could not be removed ({_message(exc)})",
                       "delete it by hand, and give the connection s3:DeleteObject on the output prefix")
    report.ok("output", uri)


# ------------------------------------------------------------------------------------------- CORS

def cors_problem(rules: list[dict]) -> tuple[str, str] | None:
    """(severity, problem) when no CORS rule lets the Ground Truth worker UI GET the images, else None."""
    fits = [r for r in rules if "GET" in [m.upper() for m in r.get("AllowedMethods", [])]
            and any(o == "*" or "sagemaker.aws" in o for o in r.get("AllowedOrigins", []))]
    if not fits:
        return ("error", "no CORS rule allows GET from any origin, so Ground Truth's worker UI cannot load the "
                         "images and the tasks fail")
    if not any("access-control-allow-origin" in [h.lower() for h in r.get("ExposeHeaders", [])] for r in fits):
        return ("warning", "the CORS rule allowing GET does not expose Access-Control-Allow-Origin as Ground "
                           "Truth's documented rule does")
    return None


def check_cors(checker: Checker) -> None:
    if not checker.ground_truth:
        return
    buckets = sorted({parse_s3_uri(u).bucket for u in checker.image_uris})
    if not buckets and checker.usable("input_uri"):
        loc = parse_s3_uri(checker.config["input_uri"])
        if not loc.key.lower().endswith(MANIFEST_SUFFIXES):
            buckets = [loc.bucket]
    rule = json.dumps(GT_CORS_RULE)

    def advice(bucket: str) -> str:
        return (f"add the rule {rule} (S3 console > bucket > Permissions > CORS, or `aws s3api put-bucket-cors "
                f"--bucket {bucket} --cors-configuration '{{\"CORSRules\": [{rule}]}}'`)")
    for bucket in buckets:
        resource = f"s3://{bucket}"
        try:
            rules = checker.client("s3").get_bucket_cors(Bucket=bucket).get("CORSRules", [])
        except ClientError as exc:
            if _code(exc) == "NoSuchCORSConfiguration":
                checker.report.error("cors", resource, "the bucket has no CORS configuration, so Ground Truth's "
                                                       "worker UI cannot show its images and the tasks fail",
                                     advice(bucket))
            elif _code(exc) == "NoSuchBucket":
                continue  # the input check reports it
            else:
                checker.report.warning("cors", resource, f"the CORS configuration cannot be read ({_message(exc)})",
                                       "check by hand that it has " + json.dumps(GT_CORS_RULE))
            continue
        problem = cors_problem(rules)
        if problem:
            checker.report.add("cors", resource, problem[1], advice(bucket), problem[0])
        else:
            checker.report.ok("cors", resource)


# --------------------------------------------------------------------------------------- workteam

def check_workteam(checker: Checker) -> None:
    if not checker.ground_truth or not checker.usable("workteam_arn"):
        return
    report, arn = checker.report, checker.config["workteam_arn"]
    m = WORKTEAM_ARN_RE.match(arn)
    if not m:
        report.error("workteam", arn, "not a work team ARN",
                     "use arn:aws:sagemaker:<region>:<account>:workteam/private-crowd/<team> (SageMaker console > "
                     "Ground Truth > Labeling workforces > Private)")
        return
    if m["region"] != checker.region:
        report.error("workteam", arn, f"the work team is in {m['region']}, but labeling jobs run in {checker.region}",
                     f"create a private work team in {checker.region} and use its ARN; a labeling job can only "
                     "use a team of its own region")
        return
    if m["kind"] == "public-crowd":
        report.warning("workteam", arn, "this is the Mechanical Turk public workforce: anyone may see the images",
                       "use a private team for private images")
        report.ok("workteam", arn)
        return
    if m["kind"] == "vendor-crowd":
        report.ok("workteam", arn)  # subscribed vendor teams are not described by DescribeWorkteam
        return
    try:
        team = checker.client("sagemaker").describe_workteam(WorkteamName=m["name"])["Workteam"]
    except ClientError as exc:
        if _not_found(exc):
            report.error("workteam", arn, f"no private work team named {m['name']!r} in {checker.region}",
                         "create it (SageMaker console > Labeling workforces > Private > Create private team) or fix "
                         "workteam_arn")
        else:
            report.error("workteam", arn, f"cannot describe the work team ({_message(exc)})",
                         "give the connection sagemaker:DescribeWorkteam, or check the ARN")
        return
    if team.get("WorkteamArn") != arn:
        report.error("workteam", arn, f"the work team {m['name']!r} here has ARN {team.get('WorkteamArn')}",
                     "use that ARN (the account in workteam_arn is not this account)")
        return
    report.ok("workteam", arn)


# ------------------------------------------------------------------------------------------- role

def _read_role_policies(iam, role_name: str) -> tuple[list, list[str]]:
    documents, unreadable = [], []
    try:
        for page in iam.get_paginator("list_role_policies").paginate(RoleName=role_name):
            for name in page.get("PolicyNames", []):
                try:
                    documents.append(iam.get_role_policy(RoleName=role_name, PolicyName=name)["PolicyDocument"])
                except ClientError:
                    unreadable.append(f"inline policy {name}")
    except ClientError:
        unreadable.append("inline policies")
    try:
        for page in iam.get_paginator("list_attached_role_policies").paginate(RoleName=role_name):
            for attached in page.get("AttachedPolicies", []):
                policy_arn = attached["PolicyArn"]
                try:
                    version = iam.get_policy(PolicyArn=policy_arn)["Policy"]["DefaultVersionId"]
                    documents.append(iam.get_policy_version(PolicyArn=policy_arn, VersionId=version)
                                     ["PolicyVersion"]["Document"])
                except ClientError:
                    unreadable.append(policy_arn)
    except ClientError:
        unreadable.append("attached policies")
    return documents, unreadable


def check_role(checker: Checker) -> None:
    if not checker.ground_truth or not checker.usable("role_arn"):
        return
    report, arn = checker.report, checker.config["role_arn"]
    m = ROLE_ARN_RE.match(arn)
    if not m:
        report.error("role", arn, "not an IAM role ARN",
                     "use arn:aws:iam::<account>:role/<name> (infra output GroundTruthRoleArn)")
        return
    iam = checker.client("iam")
    try:
        role = iam.get_role(RoleName=m["name"])["Role"]
    except ClientError as exc:
        if _not_found(exc):
            report.error("role", arn, "the role does not exist", "deploy infra/ (output GroundTruthRoleArn) or fix role_arn")
        else:
            report.warning("role", arn, f"the role cannot be read ({_message(exc)})",
                           "give the connection iam:GetRole, or check the role by hand")
        return
    if role.get("Arn") and role["Arn"] != arn:
        report.error("role", arn, f"the role named {m['name']!r} has ARN {role['Arn']}", "use that ARN")
        return
    failed = False
    trust = role.get("AssumeRolePolicyDocument") or {}
    verdict = iam_policy.principal_allowed(trust, "sts:AssumeRole", service=SAGEMAKER)
    if verdict in (iam_policy.NOT_ALLOWED, iam_policy.DENIED):
        failed = True
        report.error("role", arn, "the role's trust policy does not let SageMaker (sagemaker.amazonaws.com) assume it, "
                                  "so Ground Truth cannot start the job",
                     "set its trust policy to " + json.dumps(SAGEMAKER_TRUST_POLICY))
    elif verdict == iam_policy.CONDITIONAL:
        report.warning("role", arn, "SageMaker may assume the role only under a condition",
                       "check that the condition holds for Ground Truth labeling jobs")
    documents, unreadable = _read_role_policies(iam, m["name"])
    checker.role_documents, checker.role_unreadable = documents, unreadable
    for action, resource, what in _role_needs(checker):
        verdict = iam_policy.evaluate(documents, action, resource)
        if verdict == iam_policy.ALLOWED:
            continue
        failed = True if verdict != iam_policy.CONDITIONAL and not unreadable else failed
        _role_finding(checker, arn, action, resource, what, verdict, unreadable)
    if not failed:
        report.ok("role", arn)


def _role_needs(checker: Checker) -> list[tuple[str, str, str]]:
    needs = []
    if checker.usable("input_uri"):
        loc = parse_s3_uri(checker.config["input_uri"])
        sample = parse_s3_uri(checker.image_uris[0]) if checker.image_uris else loc.join("image.jpg")
        needs.append(("s3:GetObject", _s3_arn(sample.bucket, sample.key), "read the input images"))
    if checker.usable("output_uri"):
        turn = parse_s3_uri(checker.config["output_uri"]).join(checker.dag_id, "run", "review", "ground-truth", "x")
        needs.append(("s3:GetObject", _s3_arn(turn.bucket, turn.key), "read the input manifests under the output prefix"))
        needs.append(("s3:PutObject", _s3_arn(turn.bucket, turn.key), "write the labeling job's output"))
    return needs


def _role_finding(checker: Checker, arn: str, action: str, resource: str, what: str, verdict: str,
                  unreadable: list[str]) -> None:
    advice = f"add {action} on {resource.rsplit('/', 1)[0]}/* to the role's policy"
    if verdict == iam_policy.CONDITIONAL:
        checker.report.warning("role", arn, f"the role may {what} ({action}) only under a condition", advice)
    elif unreadable:
        checker.report.warning("role", arn, f"could not confirm the role may {what} ({action} on {resource}): "
                                            f"{', '.join(unreadable)} could not be read", advice + " if it lacks it")
    elif verdict == iam_policy.DENIED:
        checker.report.error("role", arn, f"the role's policy explicitly denies {action} on {resource}, so "
                                          f"Ground Truth cannot {what}", "remove the Deny statement")
    else:
        checker.report.error("role", arn, f"no policy of the role allows {action} on {resource}, so Ground Truth "
                                          f"cannot {what}", advice)


# ---------------------------------------------------------------------------------------- lambdas

def check_lambdas(checker: Checker) -> None:
    if not checker.ground_truth:
        return
    for setting in ("pre_annotation_lambda_arn", "consolidation_lambda_arn"):
        if checker.usable(setting):
            _check_lambda(checker, setting, checker.config[setting])
    if checker.model_kind == "boxes" and checker.region not in gt.AWS_LAMBDA_ACCOUNTS:
        checker.report.error("lambda", f"region {checker.region}", "the model detects boxes and the built-in Ground "
                                                                 "Truth bounding-box tasks do not exist in this region",
                             f"use the label-studio backend, or a region among {', '.join(sorted(gt.AWS_LAMBDA_ACCOUNTS))}")


def _check_lambda(checker: Checker, setting: str, arn: str) -> None:
    report = checker.report
    m = LAMBDA_ARN_RE.match(arn)
    if not m:
        report.error("lambda", arn, f"{setting} is not a Lambda function ARN",
                     "use arn:aws:lambda:<region>:<account>:function:<name> (infra outputs PreAnnotationLambdaArn "
                     "and AnnotationConsolidationLambdaArn)")
        return
    if m["region"] != checker.region:
        report.error("lambda", arn, f"the function is in {m['region']}, the labeling job runs in {checker.region}",
                     f"deploy the function in {checker.region} (infra/) and use that ARN")
        return
    if gt.AWS_LAMBDA_ACCOUNTS.get(m["region"]) == m["account"] and m["name"].startswith(("PRE-", "ACS-")):
        report.ok("lambda", arn)  # an AWS-owned Ground Truth function: always invocable by Ground Truth
        return
    lam = checker.client("lambda")
    try:
        config = lam.get_function(FunctionName=arn)["Configuration"]
    except ClientError as exc:
        if _not_found(exc):
            report.error("lambda", arn, f"the function {m['name']} ({setting}) does not exist",
                         "deploy infra/ (functions rekfeedback-pre-annotation and rekfeedback-annotation-consolidation) "
                         f"or fix {setting}")
        else:
            report.warning("lambda", arn, f"the function cannot be read ({_message(exc)})",
                           "give the connection lambda:GetFunction, or check the function by hand")
        return
    state = config.get("State")
    if state in ("Failed", "Inactive"):
        report.error("lambda", arn, f"the function is {state} ({config.get('StateReason', 'no reason given')})",
                     "redeploy it (infra/)")
        return
    if _lambda_invocable(checker, lam, arn, m):
        report.ok("lambda", arn)


def _lambda_invocable(checker: Checker, lam, arn: str, m) -> bool:
    role_arn = checker.config.get("role_arn") or ""
    try:
        policy = lam.get_policy(FunctionName=arn)["Policy"]
        verdict = iam_policy.principal_allowed(policy, "lambda:InvokeFunction", service=SAGEMAKER, arns=[role_arn])
    except ClientError as exc:
        if not _not_found(exc):
            checker.report.warning("lambda", arn, f"the function's resource policy cannot be read ({_message(exc)})",
                                   "check by hand that Ground Truth may invoke it")
            return False
        verdict = iam_policy.NOT_ALLOWED
    if verdict == iam_policy.ALLOWED:
        return True
    role_verdict = (iam_policy.evaluate(checker.role_documents, "lambda:InvokeFunction", arn)
                    if checker.role_documents is not None else None)
    if role_verdict == iam_policy.ALLOWED:
        return True
    advice = (f"allow it: `aws lambda add-permission --function-name {m['name']} --statement-id sagemaker-gt "
              f"--action lambda:InvokeFunction --principal {SAGEMAKER}`, or add lambda:InvokeFunction on {arn} "
              "to the Ground Truth role's policy")
    if verdict == iam_policy.CONDITIONAL or role_verdict == iam_policy.CONDITIONAL:
        checker.report.warning("lambda", arn, "Ground Truth may invoke the function only under a condition", advice)
    elif checker.role_documents is None or checker.role_unreadable:
        checker.report.warning("lambda", arn, "could not confirm that Ground Truth may invoke the function: its "
                                              "resource policy does not allow it and the role's policies could not "
                                              "all be read", advice)
    else:
        checker.report.error("lambda", arn, "neither the function's resource policy nor the Ground Truth role's "
                                            "policies allow lambda:InvokeFunction, so the labeling job fails", advice)
    return False


# ----------------------------------------------------------------------------------- label studio

def check_labelstudio(checker: Checker) -> None:
    if checker.ground_truth:
        return
    target, report = checker.labelstudio, checker.report
    conn_id = (target.conn_id if target else None) or checker.config.get("labelstudio_conn_id") or "label_studio_default"
    if target is None or target.error:
        report.error("labelstudio", f"connection {conn_id}",
                     (target.error if target else None) or "no Label Studio connection was given",
                     f"create the Airflow connection {conn_id!r} (conn_type labelstudio, host = URL, password = "
                     "API token)")
        return
    if not target.url:
        report.error("labelstudio", f"connection {conn_id}", "the connection has no URL",
                     "set its host to the Label Studio URL, e.g. http://127.0.0.1:8080")
        return
    url = target.url.rstrip("/")
    session = requests.Session()
    try:
        r = session.get(f"{url}/api/version", timeout=target.timeout)
    except requests.RequestException as exc:
        report.error("labelstudio", url, f"Label Studio cannot be reached ({type(exc).__name__}: {exc})",
                     f"check the host of connection {conn_id!r} and that Label Studio is running "
                     "(bash scripts/labelstudio.sh status)")
        return
    version = None
    try:
        body = r.json() if r.ok else {}
        version = body.get("release") or body.get("version") or (body.get("label-studio-os-package") or {}).get("version")
    except ValueError:
        body = None
    if not r.ok or body is None:
        report.error("labelstudio", url, f"{url}/api/version answered {r.status_code}; this does not look like Label "
                                         "Studio", f"check the host (and path) of connection {conn_id!r}")
        return
    report.facts["labelstudio_version"] = version
    if not target.token:
        report.error("labelstudio", url, "the connection has no API token",
                     f"put the token in the password of connection {conn_id!r} (Label Studio > Account & Settings)")
        return
    problem = _labelstudio_auth_problem(session, url, target)
    if problem and problem[1]:
        report.error("labelstudio", url, problem[0],
                     f"put a valid token in the password of connection {conn_id!r} (Label Studio > Account & "
                     "Settings > Access Token; legacy tokens need LABEL_STUDIO_ENABLE_LEGACY_API_TOKEN=true)")
        return
    if problem:
        report.error("labelstudio", url, problem[0], f"check the host (and path) of connection {conn_id!r}: it must "
                                                     "be the Label Studio base URL")
        return
    report.ok("labelstudio", url)


def _labelstudio_auth_problem(session, url: str, target: LabelStudioTarget) -> tuple[str, bool] | None:
    """(problem, whether the token is to blame) or None when the token is accepted."""
    token = target.token.strip()
    kind = target.auth or ("pat" if token.startswith("eyJ") and token.count(".") == 2 else "token")
    try:
        if kind == "pat":
            r = session.post(f"{url}/api/token/refresh", json={"refresh": token}, timeout=target.timeout)
            if r.status_code != 200:
                return f"the personal access token was refused ({r.status_code} from /api/token/refresh)", True
            header = {"Authorization": f"Bearer {r.json()['access']}"}
        else:
            header = {"Authorization": f"Token {token}"}
        r = session.get(f"{url}/api/current-user/whoami", headers=header, timeout=target.timeout)
    except (requests.RequestException, ValueError, KeyError) as exc:
        return f"the token could not be checked ({exc})", False
    if r.status_code in (401, 403):
        return f"the API token was refused ({r.status_code}: {r.text[:160]})", True
    if not r.ok:
        return f"{url}/api/current-user/whoami answered {r.status_code}; this is not Label Studio's API", False
    return None


# -------------------------------------------------------------------------------- templates, labels

def check_templates_and_labels(checker: Checker) -> None:
    report = checker.report
    if checker.ground_truth:
        kinds = {gt.VERIFY_LABELS}
        if checker.model_kind != "classification":
            kinds.add(gt.ADJUST_BOXES if checker.config.get("box_task", "adjustment") == "adjustment" else gt.VERIFY_BOXES)
        if checker.config.get("label_unpredicted", True):
            kinds.add(gt.LABEL_CLASSES if checker.model_kind == "classification" else gt.LABEL_BOXES)
        if checker.model_kind is None:
            kinds.add(gt.LABEL_CLASSES)
        for name in sorted({gt.TEMPLATE[k] for k in kinds}):
            _check_template(checker, name)
    labels = checker.labels
    if labels is None:
        if checker.report.facts.get("model_status") and not report.has("model", severity="error"):
            report.warning("labels", checker.config.get("project_version_arn") or "model",
                           "the model's label set could not be read from its evaluation summary",
                           "the review task will offer only the labels it predicts; check the version's evaluation "
                           "results in the console")
        return
    report.facts["labels"] = list(labels)
    if not labels:
        report.error("labels", checker.config["project_version_arn"], "the model has no labels",
                     "train a version on a dataset with at least one label")
        return
    dupes = sorted({x for x in labels if labels.count(x) > 1})
    if dupes:
        report.error("labels", checker.config["project_version_arn"], f"duplicate labels {dupes}",
                     "labels must be unique in a label-category file")
    if checker.ground_truth and checker.model_kind == "boxes" and len(labels) > gt.MAX_BOX_LABELS:
        report.error("labels", checker.config["project_version_arn"],
                     f"{len(labels)} labels, but Ground Truth bounding-box tasks allow at most {gt.MAX_BOX_LABELS}",
                     "use the label-studio backend for this model")
    bad = [x for x in labels if not x.strip() or len(x) > 256]
    if bad:
        report.error("labels", checker.config["project_version_arn"], f"invalid label names {bad[:5]}",
                     "labels must be 1 to 256 characters")
    if not dupes and not bad:
        report.ok("labels", ", ".join(labels))


def _check_template(checker: Checker, name: str) -> None:
    try:
        text = resources.files("rekfeedback").joinpath("templates", name).read_text(encoding="utf-8")
    except (FileNotFoundError, OSError) as exc:
        checker.report.error("template", name, f"the Ground Truth worker template is missing ({exc})",
                             "reinstall the rekfeedback package (templates/ ships with it)")
        return
    if "<crowd-form" not in text or "crowd-html-elements.js" not in text:
        checker.report.error("template", name, "the template has no <crowd-form> or does not load the crowd HTML "
                                               "elements, so workers could not submit",
                             "restore the template shipped with rekfeedback")
        return
    checker.report.ok("template", name)


# -------------------------------------------------------------------------------------------- run

CHECKS: tuple[Callable[[Checker], None], ...] = (
    check_settings, check_model, check_input, check_output, check_cors, check_workteam, check_role,
    check_lambdas, check_labelstudio, check_templates_and_labels,
)


def run_checks(config: dict, *, clients: Callable[[str], Any], region: str, dag_id: str,
               labelstudio: LabelStudioTarget | None = None,
               checks: Iterable[Callable[[Checker], None]] = CHECKS, turn_prefix: str | None = None) -> Report:
    """Run every check on a resolved turn config; return the report (never raises for a problem found).

    clients: service name ("s3", "iam", "lambda", "sagemaker", "rekognition") -> boto3 client in `region`.
    turn_prefix: the run's own prefix; images an earlier try of this run predicted count as new again
    (a rerun redoes its own turn, reusing what it finds, instead of skipping it as "already labelled").
    """
    checker = Checker(dict(config), clients, region, dag_id, labelstudio, turn_prefix=turn_prefix)
    checker.report.facts.update({"review_backend": checker.config.get("review_backend"), "region": region})
    for check in checks:
        try:
            check(checker)
        except (ClientError, BotoCoreError) as exc:
            name = check.__name__.removeprefix("check_")
            checker.report.error(name, _resource_of(check, checker.config), f"the check could not finish: "
                                                                           f"{_message(exc)}",
                                 "check the AWS connection (credentials, region, endpoint) and the permissions to "
                                 "describe this resource")
    checker.report.facts.setdefault("candidates", 0 if not checker.usable("input_uri") else
                                    checker.report.facts.get("candidates", 0))
    checker.report.facts.setdefault("new_images", len(checker.new_uris))
    return checker.report


def _resource_of(check, config: dict) -> str:
    setting = {"check_model": "project_version_arn", "check_input": "input_uri", "check_output": "output_uri",
               "check_cors": "input_uri", "check_workteam": "workteam_arn", "check_role": "role_arn"}.get(check.__name__)
    return str(config.get(setting) or setting or check.__name__)
