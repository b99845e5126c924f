"""Ground Truth jobs (pure: no boto3, no Airflow): their names, the jobs a review set needs, and the review's
parameters checked before any job exists.

`validate_parameters` turns the operator's arguments into what CreateLabelingJob needs, or raises
ValueError naming the parameter and what to do; `require_custom_lambdas` asks for our Lambdas when a
custom task needs them. The file formats of the jobs are in `ground_truth.py`.
"""

from __future__ import annotations

import hashlib
import re

from rekfeedback.core import arns
from rekfeedback.core.ground_truth import (
    ADJUST_BOXES, BUILTIN_TASK, CUSTOM_KINDS, JOB_KINDS, LABEL_ATTRIBUTE, LABEL_BOXES, LABEL_CLASSES, MAX_BOX_LABELS,
    VERIFY_BOXES, VERIFY_LABELS, box_label_line, box_review_line, verification_lines)
from rekfeedback.core.paths import run_key

# Accounts owning the AWS PRE-/ACS- functions per region (aws-formats.md 3.7).
AWS_LAMBDA_ACCOUNTS = {
    "us-east-1": "432418664414", "us-east-2": "266458841044", "us-west-2": "081040173940",
    "ca-central-1": "918755190332", "eu-west-1": "568282634449", "eu-west-2": "487402164563",
    "eu-central-1": "203001061592", "ap-northeast-1": "477331159723", "ap-northeast-2": "845288260483",
    "ap-south-1": "565803892007", "ap-southeast-1": "377565633583", "ap-southeast-2": "454466003867",
}

JOB_NAME_RE = re.compile(r"[a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}")


# --- names ---------------------------------------------------------------------------------------

def _slug(text: str) -> str:
    return re.sub(r"-{2,}", "-", re.sub(r"[^a-z0-9]+", "-", text.lower())).strip("-")


def job_name(dag_id: str, run_id: str, kind: str, part: int, attempt: int = 1, *, turn: str) -> str:
    """A LabelingJobName fixed by the turn, the job kind, the part number and the attempt.

    Names are unique in the account and region, not per loop: two loops (a dev and a prod Airflow, two
    datasets) running the same DAG on the same schedule have the same dag_id and run_id. So every name
    carries 8 hex digits of a hash of the dag_id, the run_id and the turn's S3 prefix (`turn`), and a job
    is only ever reused by the turn whose prefix it writes to.

    `attempt` > 1 names the redo of a job that failed (`-a2`, `-a3`, ...): the same items under a
    new name, since a name can never be used again, not even after a failure.

    Lower case because names are unique case-insensitively. When the name is longer than 63 characters
    the dag/run part is cut; the hash keeps two long run ids that share a prefix apart.
    """
    if kind not in JOB_KINDS:
        raise ValueError(f"job kind must be one of {JOB_KINDS}, got {kind!r}")
    suffix = f"{kind}-p{int(part):02d}" + (f"-a{int(attempt)}" if int(attempt) > 1 else "")
    head = _slug(f"{dag_id}-{run_key(run_id, lower=True)}") or "rekfeedback"  # run_key: `turn:1` != `turn-1`
    digest = hashlib.sha1(f"{dag_id}\x00{run_id}\x00{turn}".encode("utf-8", "surrogatepass")).hexdigest()[:8]
    keep = 63 - len(suffix) - len(digest) - 2
    name = f"{head[:keep].rstrip('-')}-{digest}-{suffix}"
    if not JOB_NAME_RE.fullmatch(name):
        raise AssertionError(f"bug: invalid job name {name!r}")
    return name


def job_name_prefix(dag_id: str, run_id: str, *, turn: str) -> str:
    """The part of every job name of this run that comes before the kind (for listing by prefix)."""
    return job_name(dag_id, run_id, VERIFY_LABELS, 0, turn=turn)[: -len(f"{VERIFY_LABELS}-p00")]


def builtin_lambda_arn(region: str, prefix: str, kind: str, partition: str = "aws") -> str:
    """The AWS-owned PRE-/ACS- function of a built-in box task in `region`."""
    account = AWS_LAMBDA_ACCOUNTS.get(region)
    if account is None:
        raise ValueError(f"built-in Ground Truth bounding-box tasks are not available in region {region!r}; "
                         f"use one of {sorted(AWS_LAMBDA_ACCOUNTS)}")
    return f"arn:{partition}:lambda:{region}:{account}:function:{prefix}-{BUILTIN_TASK[kind]}"


def is_lambda_arn(value) -> bool:
    return isinstance(value, str) and bool(arns.match(arns.LAMBDA, value))


# --- planning the jobs of one review set ------------------------------------------------------------

def plan_jobs(review_set, *, labels: list[str] | None = None, batch_size: int = 5, box_task: str = "adjustment",
              max_box_labels: int = MAX_BOX_LABELS) -> tuple[list[dict], list[dict]]:
    """Which jobs a review set needs: `[{"kind", "part", "labels", "items", "lines"}]`, plus items
    that no job can take (with a `reason`), which the operator lists as unlabelled.

    Classification: one custom job for human + audit items (`batch_size` images per task) and one
    for `to-label` items. Boxes: built-in adjustment or verification jobs, split so each job's
    label set fits in `max_box_labels`, and built-in labelling jobs for `to-label` items.
    """
    from rekfeedback.core.review import pack_by_labels

    if box_task not in ("adjustment", "verification"):
        raise ValueError(f"box_task must be 'adjustment' or 'verification', got {box_task!r}")
    label_set = list(dict.fromkeys(list(labels or []) + review_set.label_set()))
    review = review_set.by_route("human", "audit")
    to_label = review_set.by_route("to-label")
    jobs: list[dict] = []
    leftovers: list[dict] = []
    if review_set.kind == "classification":
        if review:
            jobs.append({"kind": VERIFY_LABELS, "part": 0, "labels": label_set, "items": review,
                         "lines": verification_lines(review, batch_size, label_set)})
        if to_label:
            if not label_set:
                leftovers += [dict(i, reason="no label set to label from") for i in to_label]
            else:
                jobs.append({"kind": LABEL_CLASSES, "part": 0, "labels": label_set, "items": to_label,
                             "lines": verification_lines(to_label, batch_size, label_set)})
        return jobs, leftovers
    kind = ADJUST_BOXES if box_task == "adjustment" else VERIFY_BOXES
    groups, too_many = pack_by_labels(review, max_box_labels)
    leftovers += [dict(i, reason=f"more than {max_box_labels} labels for one bounding-box task") for i in too_many]
    for part, (group_labels, items) in enumerate(groups):
        # Fill the category file up to the cap with the rest of the label set so workers can fix a wrong label.
        job_labels = list(group_labels) + [x for x in label_set if x not in group_labels]
        job_labels = job_labels[:max(max_box_labels, len(group_labels))]
        jobs.append({"kind": kind, "part": part, "labels": job_labels, "items": items,
                     "lines": [box_review_line(i, job_labels) for i in items]})
    if to_label:
        if not label_set:
            leftovers += [dict(i, reason="no label set to label from") for i in to_label]
        else:
            # One labelling job: beyond the cap, extra labels cannot be offered (built-in box task limit).
            jobs.append({"kind": LABEL_BOXES, "part": 0, "labels": label_set[:max_box_labels], "items": to_label,
                         "lines": [box_label_line(i) for i in to_label]})
    return jobs, leftovers



# --- parameters ----------------------------------------------------------------------------------------

_KEYWORD_RE = re.compile(r"[A-Za-z0-9]+( [A-Za-z0-9]+)*")
_TAG_RE = re.compile(r"[\w\s.:/=+\-@]*", re.UNICODE)


def _int_in(name, value, low, high):
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise ValueError(f"{name} must be an integer from {low} to {high}, got {value!r}")
    return value


def _text(name, value, low, high):
    if not isinstance(value, str) or not low <= len(value.strip()) <= high:
        raise ValueError(f"{name} must be a text of {low} to {high} characters, got {value!r}")
    return value.strip()


def validate_parameters(p: dict) -> dict:
    """Check the operator's job parameters; raise ValueError naming the first bad one and what to do."""
    if not isinstance(p.get("workteam_arn"), str) or not arns.match(arns.WORKTEAM, p["workteam_arn"]):
        raise ValueError("workteam_arn must be a SageMaker workteam ARN like "
                         f"arn:aws:sagemaker:<region>:<account>:workteam/private-crowd/<team>, got {p.get('workteam_arn')!r}")
    if not isinstance(p.get("role_arn"), str) or not arns.match(arns.ROLE, p["role_arn"]):
        raise ValueError("role_arn must be an IAM role ARN (the GroundTruthRoleArn output of infra/ground-truth.yaml), "
                         f"got {p.get('role_arn')!r}")
    for name in ("pre_annotation_lambda_arn", "annotation_consolidation_lambda_arn"):
        value = p.get(name)
        if value is not None and not is_lambda_arn(value):
            raise ValueError(f"{name} must be a Lambda function ARN (an output of infra/ground-truth.yaml) or None, "
                             f"got {value!r}")
    labels = p.get("labels")
    if labels is not None:
        if isinstance(labels, str) or not isinstance(labels, (list, tuple)) or not all(
                isinstance(x, str) and 0 < len(x) <= 256 for x in labels):
            raise ValueError(f"labels must be a list of label names (1 to 256 characters each), got {labels!r}")
        if len(set(labels)) != len(labels):
            raise ValueError(f"labels must not repeat a name, got {labels!r}")
    _text("task_title", p.get("task_title"), 1, 128)
    _text("task_description", p.get("task_description"), 1, 255)
    keywords = p.get("task_keywords")
    if keywords is not None:
        if isinstance(keywords, str) or not 1 <= len(keywords) <= 5 or not all(
                isinstance(k, str) and 1 <= len(k) <= 30 and _KEYWORD_RE.fullmatch(k) for k in keywords):
            raise ValueError("task_keywords must be 1 to 5 words of letters and digits (at most 30 characters each), "
                             f"got {keywords!r}")
    _int_in("task_time_limit_seconds", p.get("task_time_limit_seconds"), 30, 28800)
    public = ":394669845002:workteam/public-crowd/" in p["workteam_arn"]
    _int_in("task_availability_lifetime_seconds", p.get("task_availability_lifetime_seconds"), 60,
            43200 if public else 2592000)
    _int_in("workers_per_object", p.get("workers_per_object"), 1, 9)
    if p.get("max_concurrent_tasks") is not None:
        _int_in("max_concurrent_tasks", p["max_concurrent_tasks"], 1, 5000)
    kms = p.get("kms_key_id")
    if kms is not None and (not isinstance(kms, str) or not 0 < len(kms) <= 2048 or " " in kms):
        raise ValueError(f"kms_key_id must be a KMS key id, alias or ARN, got {kms!r}")
    tags = p.get("tags")
    if tags is not None:
        if not isinstance(tags, dict) or len(tags) > 45:
            raise ValueError(f"tags must be a dict of at most 45 tags (5 are added by the operator), got {tags!r}")
        for k, v in tags.items():
            if not (isinstance(k, str) and 0 < len(k) <= 128 and _TAG_RE.fullmatch(k) and not k.startswith("aws:")):
                raise ValueError(f"tags: bad tag key {k!r} (1 to 128 characters, not starting with 'aws:')")
            if not (isinstance(v, str) and len(v) <= 256 and _TAG_RE.fullmatch(v)):
                raise ValueError(f"tags: bad value for tag {k!r}: {v!r} (a text of at most 256 characters)")
    _int_in("batch_size", p.get("batch_size"), 1, 100)
    if p.get("box_task") not in ("adjustment", "verification"):
        raise ValueError(f"box_task must be 'adjustment' or 'verification', got {p.get('box_task')!r}")
    _int_in("max_box_labels", p.get("max_box_labels"), 1, 50)
    if p.get("kind") not in (None, "classification", "boxes"):
        raise ValueError(f"kind must be 'classification', 'boxes' or None (detect), got {p.get('kind')!r}")
    if not isinstance(p.get("label_unpredicted"), bool):
        raise ValueError(f"label_unpredicted must be true or false, got {p.get('label_unpredicted')!r}")
    classifiers = p.get("content_classifiers")
    allowed = {"FreeOfPersonallyIdentifiableInformation", "FreeOfAdultContent"}
    if classifiers is not None and (isinstance(classifiers, str) or not set(classifiers) <= allowed):
        raise ValueError(f"content_classifiers must be a list drawn from {sorted(allowed)}, got {classifiers!r}")
    return p


def require_custom_lambdas(p: dict) -> None:
    """The custom verification task needs both of our Lambdas; checked once the job kinds are known."""
    for name in ("pre_annotation_lambda_arn", "annotation_consolidation_lambda_arn"):
        if not p.get(name):
            raise ValueError(f"{name} is required for image-level (classification) verification: "
                             "deploy infra/ground-truth.yaml and pass its output of that name")


def labeling_job_request(p: dict, *, kind: str, name: str, manifest: str, categories: str, template: str, output: str,
                         region: str, partition: str, tags: dict) -> dict:
    """CreateLabelingJob's request for one planned job, from the operator's validated parameters `p`: our
    Lambdas for the custom kinds, the built-in ones (by region) for the box tasks."""
    if kind in CUSTOM_KINDS:
        pre, acs = p["pre_annotation_lambda_arn"], p["annotation_consolidation_lambda_arn"]
    else:
        pre = builtin_lambda_arn(region, "PRE", kind, partition)
        acs = builtin_lambda_arn(region, "ACS", kind, partition)
    task = {
        "WorkteamArn": p["workteam_arn"],
        "UiConfig": {"UiTemplateS3Uri": template},
        "PreHumanTaskLambdaArn": pre,
        "TaskTitle": p["task_title"].strip(),
        "TaskDescription": p["task_description"].strip(),
        "NumberOfHumanWorkersPerDataObject": p["workers_per_object"],
        "TaskTimeLimitInSeconds": p["task_time_limit_seconds"],
        "TaskAvailabilityLifetimeInSeconds": p["task_availability_lifetime_seconds"],
        "AnnotationConsolidationConfig": {"AnnotationConsolidationLambdaArn": acs},
    }
    if p["task_keywords"]:
        task["TaskKeywords"] = list(p["task_keywords"])
    if p["max_concurrent_tasks"]:
        task["MaxConcurrentTaskCount"] = p["max_concurrent_tasks"]
    output_config = {"S3OutputPath": output + "/"}
    if p["kms_key_id"]:
        output_config["KmsKeyId"] = p["kms_key_id"]
    input_config: dict = {"DataSource": {"S3DataSource": {"ManifestS3Uri": manifest}}}
    if p["content_classifiers"]:
        input_config["DataAttributes"] = {"ContentClassifiers": list(p["content_classifiers"])}
    return {
        "LabelingJobName": name,
        "LabelAttributeName": LABEL_ATTRIBUTE[kind],
        "InputConfig": input_config,
        "OutputConfig": output_config,
        "RoleArn": p["role_arn"],
        "LabelCategoryConfigS3Uri": categories,
        "HumanTaskConfig": task,
        "Tags": [{"Key": k, "Value": str(v)} for k, v in tags.items()],
    }
