"""Preflight: the model version (exists, in this region, startable) and its labels."""

from __future__ import annotations

import json

from botocore.exceptions import ClientError

from rekfeedback.core import arns
from rekfeedback.preflight.checker import Checker, TRANSIENT_STATUSES, USABLE_STATUSES

def check_model(checker: Checker) -> None:
    if not checker.usable("project_version_arn"):
        return
    report, arn = checker.report, checker.config["project_version_arn"]
    parts = arns.match(arns.PROJECT_VERSION, arn)
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
        elsewhere = _find_version_elsewhere(rek, arn, project_name, version_name, parts["created"])
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
