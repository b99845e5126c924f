"""SageMaker Ground Truth labeling-job API: CreateLabelingJob, DescribeLabelingJob, ListLabelingJobs, StopLabelingJob.

The server has validated each request against botocore's model; these handlers add the checks AWS makes
beyond the model (unique names, attribute-name rules, Lambda ARNs) and hand each job to the simulated
workforce. Timestamps are epoch seconds, the JSON protocol's wire form. The server counts the calls
(env.calls["SageMaker.CreateLabelingJob"], ...).
"""

from __future__ import annotations

import base64
import datetime as dt
import json
from typing import Callable

from rekfeedback_local.emulator import gt_builtin, workforce
from rekfeedback_local.emulator.base import EmulatorEnv
from rekfeedback_local.emulator.errors import ApiError
from rekfeedback_local.emulator.labeling_job import TERMINAL, LabelingJob
from rekfeedback_local.emulator.lambda_registry import REGISTRY, LambdaRegistry

_SORT_KEYS = {
    "Name": lambda j: j.name.lower(),
    "CreationTime": lambda j: j.created,
    "Status": lambda j: j.status,
}


def handlers(env: EmulatorEnv, registry: LambdaRegistry = REGISTRY) -> dict[str, Callable[[dict], dict]]:
    jobs: dict[str, LabelingJob] = {}  # lower-case name -> job: names are unique case-insensitively

    def find(name: str) -> LabelingJob:
        with env.lock:
            job = jobs.get(name.lower())
        if job is None:
            raise ApiError("ResourceNotFound", f"Could not find labeling job {name!r}.")
        return job

    def create_labeling_job(params: dict) -> dict:
        name = params["LabelingJobName"]
        _check_request(params, env.region)
        arn = f"arn:aws:sagemaker:{env.region}:{env.account_id}:labeling-job/{name.lower()}"
        with env.lock:
            existing = jobs.get(name.lower())
            if existing is not None:
                raise ApiError("ResourceInUse", "Job name must be unique within an AWS account and region, "
                                                f"and a job with this name already exists ({existing.arn})")
            active = sum(j.status not in TERMINAL for j in jobs.values())
            limit = int(env.config.max_active_labeling_jobs)
            if active >= limit:
                raise ApiError("ResourceLimitExceeded", f"The account-level service limit 'Maximum number of "
                                                        f"active labeling jobs' is {limit} jobs, with current "
                                                        f"utilization of {active} jobs. Stop or wait for a job.")
            job = LabelingJob(params, arn, env.clock(), env.account_id)
            job.fail_injected = bool(env.config.fail_labeling_jobs)
            jobs[name.lower()] = job
        workforce.start(env, job, registry)
        return {"LabelingJobArn": arn}

    def describe_labeling_job(params: dict) -> dict:
        return find(params["LabelingJobName"]).describe()

    def list_labeling_jobs(params: dict) -> dict:
        with env.lock:
            selected = [j for j in jobs.values() if _matches(j, params)]
        sort_by = params.get("SortBy", "CreationTime")
        descending = params.get("SortOrder", "Descending") == "Descending"
        key = lambda j: (_SORT_KEYS[sort_by](j), j.name.lower())  # noqa: E731 - name breaks ties, stably
        selected.sort(key=key, reverse=descending)
        if params.get("NextToken"):
            after = _decode_token(params["NextToken"], sort_by, descending)
            selected = [j for j in selected if (key(j) < after if descending else key(j) > after)]
        size = int(params.get("MaxResults", 10))
        page = selected[:size]
        out = {"LabelingJobSummaryList": [j.summary() for j in page]}
        if len(selected) > size:
            out["NextToken"] = _encode_token(key(page[-1]), sort_by, descending)
        return out

    def stop_labeling_job(params: dict) -> dict:
        job = find(params["LabelingJobName"])
        with job.lock:
            status = job.status
        if status in TERMINAL:
            raise ApiError("ValidationException",
                           f"Labeling job {job.name} is {status}; only an Initializing or InProgress job can be stopped.")
        if status != "Stopping":
            job.request_stop(env.clock())
        return {}

    return {
        "CreateLabelingJob": create_labeling_job,
        "DescribeLabelingJob": describe_labeling_job,
        "ListLabelingJobs": list_labeling_jobs,
        "StopLabelingJob": stop_labeling_job,
    }


def _check_request(params: dict, region: str) -> None:
    """What AWS rejects at CreateLabelingJob beyond botocore's model."""
    attribute = params["LabelAttributeName"]
    if attribute.endswith("-metadata"):
        raise ApiError("ValidationException", f"LabelAttributeName {attribute!r} must not end with '-metadata'.")
    if attribute.endswith("-ref"):
        raise ApiError("ValidationException", f"LabelAttributeName {attribute!r} must not end with '-ref' for this "
                                              "task type; '-ref' is only for semantic segmentation, video frame "
                                              "and 3D point cloud jobs.")
    source = params["InputConfig"].get("DataSource") or {}
    if not (source.get("S3DataSource") or {}).get("ManifestS3Uri"):
        raise ApiError("ValidationException", "InputConfig.DataSource.S3DataSource.ManifestS3Uri is required "
                                              "(the emulator does not emulate streaming SnsDataSource jobs).")
    task = params["HumanTaskConfig"]
    ui = task["UiConfig"]
    if bool(ui.get("UiTemplateS3Uri")) == bool(ui.get("HumanTaskUiArn")):
        raise ApiError("ValidationException", "HumanTaskConfig.UiConfig needs exactly one of UiTemplateS3Uri "
                                              "and HumanTaskUiArn.")
    pre = task.get("PreHumanTaskLambdaArn")
    post = (task.get("AnnotationConsolidationConfig") or {}).get("AnnotationConsolidationLambdaArn")
    try:
        pre_type, post_type = gt_builtin.builtin_task(pre, region), gt_builtin.builtin_task(post, region)
    except ValueError as err:
        raise ApiError("ValidationException", str(err))
    if (pre_type or post_type) and pre_type != post_type:
        raise ApiError("ValidationException",
                       f"PreHumanTaskLambdaArn ({pre}) and AnnotationConsolidationLambdaArn ({post}) must be the "
                       "PRE- and ACS- functions of the same built-in task type.")
    if pre_type and not params.get("LabelCategoryConfigS3Uri"):
        raise ApiError("ValidationException", f"LabelCategoryConfigS3Uri is required for the built-in task "
                                              f"type {pre_type}.")
    if params.get("LabelingJobAlgorithmsConfig"):
        _refuse_automated_labeling(pre_type)
    uris = [params["InputConfig"]["DataSource"]["S3DataSource"]["ManifestS3Uri"],
            params["OutputConfig"]["S3OutputPath"]]
    for uri in uris:
        if not uri.startswith("s3://"):
            raise ApiError("ValidationException", f"{uri!r} is not supported by the emulator; use an s3:// URI.")


# sms-automated-labeling: "Automated data labeling is available for the following Ground Truth built-in task
# types: image classification (single label), image semantic segmentation, object detection (bounding box)
# and text classification (single label)." Custom tasks and adjustment/verification jobs have none.
AUTOMATED_LABELING_TASKS = (gt_builtin.BOUNDING_BOX, gt_builtin.SINGLE_LABEL, "SemanticSegmentation", "TextMultiClass")


def _refuse_automated_labeling(task: str | None) -> None:
    """Automated labeling is refused: with AWS's rule where AWS has none for the task, and as not emulated
    where AWS has it (it needs 1,250+ objects and a trained SageMaker model; the emulator would have to
    invent MachineLabeled answers, which would make a green test a lie)."""
    if task not in AUTOMATED_LABELING_TASKS:
        raise ApiError("ValidationException", f"LabelingJobAlgorithmsConfig (automated data labeling) is not "
                                              f"supported for {'custom' if task is None else task} labeling jobs; "
                                              "remove it.")
    raise ApiError("ValidationException", f"The emulator does not emulate automated data labeling for {task} "
                                          "jobs; remove LabelingJobAlgorithmsConfig to run the job with human "
                                          "workers only.")


def _matches(job: LabelingJob, params: dict) -> bool:
    if params.get("NameContains") and params["NameContains"].lower() not in job.name.lower():
        return False
    if params.get("StatusEquals") and job.status != params["StatusEquals"]:
        return False
    checks = (("CreationTimeAfter", job.created, 1), ("CreationTimeBefore", job.created, -1),
              ("LastModifiedTimeAfter", job.modified, 1), ("LastModifiedTimeBefore", job.modified, -1))
    for field, value, sign in checks:
        if params.get(field) is not None:
            bound = _timestamp(params[field], field)
            if (value - bound) * sign <= 0:
                return False
    return True


def _timestamp(value, field: str) -> float:
    if isinstance(value, (int, float)):
        return float(value)
    try:
        return float(value)
    except ValueError:
        pass
    try:
        parsed = dt.datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError:
        raise ApiError("ValidationException", f"{field} must be a timestamp, got {value!r}.")
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=dt.timezone.utc)
    return parsed.timestamp()


def _encode_token(after: tuple, sort_by: str, descending: bool) -> str:
    raw = json.dumps({"after": list(after), "sort": sort_by, "desc": descending}).encode()
    return base64.urlsafe_b64encode(raw).decode()


def _decode_token(token: str, sort_by: str, descending: bool) -> tuple:
    try:
        doc = json.loads(base64.urlsafe_b64decode(token.encode()))
        after = tuple(doc["after"])
        same = doc["sort"] == sort_by and doc["desc"] == descending
    except (ValueError, KeyError, TypeError):
        raise ApiError("ValidationException", "Invalid pagination token (NextToken); pass the token of the "
                                              "previous ListLabelingJobs response unchanged.")
    if not same:
        raise ApiError("ValidationException", "NextToken belongs to a listing with another SortBy/SortOrder; "
                                              "keep the same sorting while paginating.")
    return after
