"""Ground Truth's built-in image task types: AWS-owned PRE-/ACS- Lambdas, worker answers and consolidation.

Pure (no boto3). Produces what AWS's built-in consolidation writes into the output manifest
(aws-formats.md 5.3, 5.4): the label attribute and its ``-metadata``.
AWS does not publish its consolidation algorithms; these follow their documented behaviour:
boxes are matched across workers by IoU (Jaccard) >= 0.5 and kept when at least half the workers drew them,
labels are majority votes, and confidence is the share of agreeing workers (0.00 with one worker).
"""

from __future__ import annotations

import math
import random
import re
from typing import Sequence

from rekfeedback.core import arns
from rekfeedback.core.boxes import iou
from rekfeedback_local.emulator import policy

# Account that owns the built-in PRE-/ACS- functions in each region (botocore's model, aws-formats.md 3.7).
AWS_LAMBDA_ACCOUNTS = {
    "us-east-1": "432418664414", "us-east-2": "266458841044", "us-west-2": "081040173940",
    "ca-central-1": "918755190332", "eu-west-1": "568282634449", "eu-west-2": "487402164563",
    "eu-central-1": "203001061592", "ap-northeast-1": "477331159723", "ap-northeast-2": "845288260483",
    "ap-south-1": "565803892007", "ap-southeast-1": "377565633583", "ap-southeast-2": "454466003867",
}
BOUNDING_BOX = "BoundingBox"
ADJUSTMENT = "AdjustmentBoundingBox"
VERIFICATION = "VerificationBoundingBox"
SINGLE_LABEL = "ImageMultiClass"
MULTI_LABEL = "ImageMultiClassMultiLabel"
SUPPORTED = (BOUNDING_BOX, ADJUSTMENT, VERIFICATION, SINGLE_LABEL, MULTI_LABEL)
BOX_TASKS = (BOUNDING_BOX, ADJUSTMENT, VERIFICATION)

# Names of the crowd elements in AWS's own templates for these tasks: the keys of answerContent.
ELEMENT = {
    BOUNDING_BOX: "boundingBox", ADJUSTMENT: "boundingBox",
    VERIFICATION: "crowd-image-classifier", SINGLE_LABEL: "crowd-image-classifier",
    MULTI_LABEL: "crowd-image-classifier-multi-select",
}
DEFAULT_VERDICTS = ("good", "bad")


def function_name(arn: str) -> str:
    match = arns.match(arns.LAMBDA, arn)
    return match.group("name") if match else arn


def builtin_task(arn: str | None, region: str) -> str | None:
    """The task type of an AWS-owned PRE-/ACS- ARN ("AdjustmentBoundingBox"...), None for any other function.

    Raises ValueError for a PRE-/ACS- name that is not AWS's in this region, or a type the emulator lacks.
    """
    match = arns.match(arns.LAMBDA, arn)
    if not match or not re.match(r"^(PRE|ACS)-", match.group("name")):
        return None
    expected = AWS_LAMBDA_ACCOUNTS.get(region)
    if match.group("account") not in AWS_LAMBDA_ACCOUNTS.values():
        return None  # the user's own function that happens to be named PRE-...
    if match.group("region") != region or match.group("account") != expected:
        raise ValueError(
            f"{arn} is not the built-in Ground Truth function of region {region}; use "
            f"arn:aws:lambda:{region}:{expected}:function:{match.group('name')}")
    task = match.group("name")[4:]
    if task not in SUPPORTED:
        raise ValueError(f"built-in task type {task} is not emulated; emulated: {', '.join(SUPPORTED)}")
    return task


def find_prior_attribute(line: dict, own_attribute: str, audit_attribute: str | None = None) -> str | None:
    """The bounding-box attribute a verification/adjustment task reviews: the label category file's
    ``auditLabelAttributeName`` when given, else the line's object-detection attribute other than the job's own."""
    if audit_attribute:
        return audit_attribute if isinstance(line.get(audit_attribute), dict) else None
    for key, value in line.items():
        meta = line.get(f"{key}-metadata")
        if key == own_attribute or not isinstance(value, dict) or not isinstance(meta, dict):
            continue
        if "annotations" in value and str(meta.get("type", "")).lower() == "groundtruth/object-detection":
            return key
    return None


def prior_boxes(line: dict, attribute: str) -> list[dict]:
    """Pixel boxes {label, left, top, width, height} of a Ground Truth object-detection attribute."""
    value, meta = line[attribute], line.get(f"{attribute}-metadata") or {}
    class_map = meta.get("class-map") or {}
    return [{"label": class_map.get(str(a["class_id"]), str(a["class_id"])),
             **{k: int(a[k]) for k in policy.BOX_KEYS}} for a in value.get("annotations") or []]


def task_input(task: str, data_object: dict, labels: Sequence[str]) -> dict:
    """What AWS's PRE- function gives the template (names used by AWS templates: taskObject, labels, manifestLine)."""
    out = {"taskObject": data_object.get("source-ref") or data_object.get("source"), "labels": list(labels)}
    if task in (ADJUSTMENT, VERIFICATION):
        out["manifestLine"] = data_object
    return out


def worker_content(task: str, answer: dict, labels: Sequence[str], rng: random.Random, *,
                   size: tuple[int, int] = (0, 0), initial: list[dict] | None = None,
                   verdicts: Sequence[str] = DEFAULT_VERDICTS) -> dict:
    """One worker's answerContent for a built-in task, keyed by the crowd element's name.

    A worker can only pick labels the task offers, so labels outside ``labels`` are dropped.
    """
    answer = policy.normalize(answer)
    offered = [x for x in answer["labels"] if x in labels]
    if task in (BOUNDING_BOX, ADJUSTMENT):
        kept = {"labels": offered, "boxes": [b for b in answer["boxes"] if b["label"] in labels]}
        return {ELEMENT[task]: policy.bounding_box_answer(kept, size[0], size[1],
                                                           initial if task == ADJUSTMENT else None)}
    if task == VERIFICATION:
        good = _boxes_match(initial or [], answer["boxes"])
        content = {"label": verdicts[0] if good else verdicts[min(1, len(verdicts) - 1)]}
        if not good:
            content["workerComment"] = _difference(initial or [], answer["boxes"])
        return {ELEMENT[task]: content}
    if task == SINGLE_LABEL:
        # The classifier forces one choice: a worker seeing none of the labels picks a catch-all if offered.
        choice = rng.choice(offered) if offered else _catch_all(labels, rng)
        return {ELEMENT[task]: {"label": choice}}
    return {ELEMENT[task]: {"labels": offered}}


def consolidate(task: str, contents: list[dict], labels: Sequence[str], *, job_name: str, creation_date: str,
                size: tuple[int, int, int] = (0, 0, 3), initial: list[dict] | None = None,
                verdicts: Sequence[str] = DEFAULT_VERDICTS) -> tuple[object, dict]:
    """(label attribute value, its -metadata) for one data object from its workers' answerContents."""
    n = len(contents)
    answers = [c.get(ELEMENT[task]) or {} for c in contents]
    common = {"human-annotated": "yes", "creation-date": creation_date, "job-name": f"labeling-job/{job_name}"}
    if task in (BOUNDING_BOX, ADJUSTMENT):
        clusters = consolidate_boxes([a.get("boundingBoxes") or [] for a in answers])
        ids = {name: labels.index(name) for name in labels}
        value = {"image_size": [{"width": size[0], "height": size[1], "depth": size[2]}],
                 "annotations": [{"class_id": ids[b["label"]], **{k: b[k] for k in policy.BOX_KEYS}}
                                 for b, _ in clusters]}
        meta = {"objects": [{"confidence": _confidence(c, n)} for _, c in clusters],
                "class-map": {str(ids[b["label"]]): b["label"] for b, _ in clusters},
                "type": "groundtruth/object-detection", **common}
        if task == ADJUSTMENT:
            changed = any(not policy.same_boxes(a.get("boundingBoxes") or [], initial or []) for a in answers)
            meta["adjustment-status"] = "adjusted" if changed else "unadjusted"
        return value, meta
    if task in (VERIFICATION, SINGLE_LABEL):
        options = list(verdicts) if task == VERIFICATION else list(labels)
        votes = [options.index(a["label"]) for a in answers if a.get("label") in options]
        if not votes:
            raise ValueError(f"no worker chose one of {options}")
        winner = min(set(votes), key=lambda i: (-votes.count(i), i))
        meta = {"class-name": options[winner], "confidence": _confidence(votes.count(winner), n)}
        if task == VERIFICATION:
            meta["type"] = "groundtruth/label-verification"
            comments = [{"comment": a["workerComment"]} for a in answers if a.get("workerComment")]
            meta.update(common)
            if comments:
                meta["worker-feedback"] = comments
            return str(winner), meta
        meta["type"] = "groundtruth/image-classification"
        meta.update(common)
        return winner, meta
    chosen = [i for i, name in enumerate(labels)
              if 2 * sum(name in (a.get("labels") or []) for a in answers) >= n]
    counts = {i: sum(labels[i] in (a.get("labels") or []) for a in answers) for i in chosen}
    meta = {"class-map": {str(i): labels[i] for i in chosen},
            "confidence-map": {str(i): _confidence(counts[i], n) for i in chosen},
            "type": "groundtruth/image-classification-multilabel", **common}
    return chosen, meta


def consolidate_boxes(per_worker: list[list[dict]]) -> list[tuple[dict, int]]:
    """Boxes matched across workers (same label, IoU >= 0.5), kept when at least half of the workers drew them.
    Returns (mean box, number of workers that drew it)."""
    clusters: list[dict] = []
    for worker, boxes in enumerate(per_worker):
        for box in boxes:
            best, best_iou = None, 0.5
            for cluster in clusters:
                if cluster["label"] != box["label"] or worker in cluster["workers"]:
                    continue
                overlap = iou(_mean(cluster["boxes"]), box)
                if overlap >= best_iou:
                    best, best_iou = cluster, overlap
            if best is None:
                best = {"label": box["label"], "boxes": [], "workers": set()}
                clusters.append(best)
            best["boxes"].append(box)
            best["workers"].add(worker)
    needed = math.ceil(len(per_worker) / 2)
    return [({"label": c["label"], **_mean(c["boxes"])}, len(c["workers"]))
            for c in clusters if len(c["workers"]) >= needed]


def verdict_options(template: str | None) -> tuple[str, ...]:
    """The verdicts a verification template offers (``categories`` of crowd-image-classifier), else good/bad."""
    match = re.search(r"categories\s*=\s*(\"[^\"]*\"|'[^']*')", template or "")
    if match:
        names = re.findall(r"['\"]([^'\",\[\]]+)['\"]", match.group(1)[1:-1].replace("&quot;", '"'))
        if len(names) >= 2:
            return tuple(n.strip() for n in names)
    return DEFAULT_VERDICTS


def _mean(boxes: list[dict]) -> dict:
    return {k: int(round(sum(b[k] for b in boxes) / len(boxes))) for k in policy.BOX_KEYS}


def _confidence(agreeing: int, workers: int) -> float:
    # Documented: built-in confidence is 0.00 with one worker per object.
    return 0.0 if workers <= 1 else round(agreeing / workers, 2)


def _boxes_match(prior: list[dict], answer: list[dict]) -> bool:
    if len(prior) != len(answer):
        return False
    left = list(answer)
    for box in prior:
        match = next((b for b in left if b["label"] == box["label"] and iou(b, box) >= 0.5), None)
        if match is None:
            return False
        left.remove(match)
    return True


def _difference(prior: list[dict], answer: list[dict]) -> str:
    missing = sorted({b["label"] for b in answer} - {b["label"] for b in prior})
    wrong = sorted({b["label"] for b in prior} - {b["label"] for b in answer})
    parts = ([f"missing: {', '.join(missing)}"] if missing else []) + ([f"wrong: {', '.join(wrong)}"] if wrong else [])
    return "; ".join(parts) or "boxes are misplaced"


def _catch_all(labels: Sequence[str], rng: random.Random) -> str:
    fallback = [x for x in labels if re.search(r"none|other|background", x, re.I)]
    return (fallback or list(labels))[0] if fallback else rng.choice(list(labels))
