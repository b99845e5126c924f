"""Ground Truth formats: job names, input manifests, label-category files, worker answers, output manifests.

Pure (no boto3, no Airflow). The custom verification task contract is in docs/contracts.md;
the built-in formats are in aws-formats.md sections 3 to 5.

Job kinds (each with its own LabelAttributeName, which is how an output is recognised later):

| kind             | task                                   | label attribute    |
| ---------------- | -------------------------------------- | ------------------ |
| `verify-labels`  | custom verification (our Lambdas)      | `verified-labels`  |
| `label-classes`  | custom task, nothing pre-filled        | `labelled-classes` |
| `adjust-boxes`   | built-in bounding-box adjustment       | `adjusted-boxes`   |
| `verify-boxes`   | built-in bounding-box verification     | `verified-boxes`   |
| `label-boxes`    | built-in bounding box                  | `labelled-boxes`   |
"""

from __future__ import annotations

import hashlib
import json
import re
from typing import Iterable

from rekfeedback.core import arns
from rekfeedback.core import answers as ans
from rekfeedback.core import boxes as boxlib
from rekfeedback.core import consensus as consensuslib
from rekfeedback.core.paths import run_key

VERIFY_LABELS, LABEL_CLASSES = "verify-labels", "label-classes"
ADJUST_BOXES, VERIFY_BOXES, LABEL_BOXES = "adjust-boxes", "verify-boxes", "label-boxes"
JOB_KINDS = (VERIFY_LABELS, LABEL_CLASSES, ADJUST_BOXES, VERIFY_BOXES, LABEL_BOXES)
CUSTOM_KINDS = (VERIFY_LABELS, LABEL_CLASSES)
LABEL_ATTRIBUTE = {
    VERIFY_LABELS: "verified-labels", LABEL_CLASSES: "labelled-classes",
    ADJUST_BOXES: "adjusted-boxes", VERIFY_BOXES: "verified-boxes", LABEL_BOXES: "labelled-boxes",
}
KIND_OF_ATTRIBUTE = {v: k for k, v in LABEL_ATTRIBUTE.items()}
BUILTIN_TASK = {ADJUST_BOXES: "AdjustmentBoundingBox", VERIFY_BOXES: "VerificationBoundingBox",
                LABEL_BOXES: "BoundingBox"}
TEMPLATE = {VERIFY_LABELS: "verification.liquid.html", LABEL_CLASSES: "verification.liquid.html",
            ADJUST_BOXES: "bounding-box-adjustment.liquid.html",
            VERIFY_BOXES: "bounding-box-verification.liquid.html", LABEL_BOXES: "bounding-box.liquid.html"}
# The prior attribute carrying the model's boxes in box-task input lines (Rekognition/GT object-detection format).
PRIOR_ATTRIBUTE = "prediction"
# Review data carried through every box-task line (Ground Truth copies unknown keys to the output).
ITEM_KEY = "review-item"
# The verdicts of the bounding-box verification template: the first one means "the boxes are right".
VERDICTS = ("correct", "incorrect")
_POSITIVE_VERDICTS = {"correct", "good", "yes", "right", "accept", "accepted", "valid", "approve", "approved"}
MAX_BOX_LABELS = 10  # crowd-bounding-box and the API doc cap built-in box jobs at 10 labels
MAX_LINE_CHARS = 100_000
MAX_ATTRIBUTE_CHARS = 20_000

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


# --- input files ---------------------------------------------------------------------------------

def label_category_config(labels: Iterable[str], instructions: dict | None = None) -> dict:
    labels = list(dict.fromkeys(labels))
    if not labels:
        raise ValueError("a label-category file needs at least one label")
    out = {"document-version": "2018-11-28", "labels": [{"label": name} for name in labels]}
    if instructions:
        out["instructions"] = instructions
    return out


def verification_lines(items: list[dict], batch_size: int, labels: list[str]) -> list[dict]:
    """Custom-task input lines: one data object per batch of `batch_size` images (team contract).

    `labels` (the label set a worker may add from) rides along on every line, because Ground
    Truth gives the pre-annotation Lambda only the line.
    """
    from rekfeedback.core.review import batch_id, batches

    lines = []
    for index, batch in enumerate(batches(items, batch_size)):
        lines.append({
            "source": batch_id("batch", index),
            "images": [{"source-ref": i["source-ref"], "width": i["width"], "height": i["height"],
                        "predicted": [{"name": p["name"], "confidence": p["confidence"]} for p in i["predicted"]]}
                       for i in batch],
            "labels": list(labels),
        })
    return lines


def _item_summary(item: dict) -> dict:
    return {"width": item["width"], "height": item["height"], "route": item["route"],
            "predicted": [{"name": p["name"], "confidence": p["confidence"], "box": p.get("box")}
                          for p in item["predicted"]]}


def box_review_line(item: dict, labels: list[str]) -> dict:
    """Input line of a box adjustment/verification job: the model's boxes as a prior object-detection attribute."""
    ids = {name: i for i, name in enumerate(labels)}
    boxes = ans.predicted_pixel_boxes(item)
    missing = sorted({b["label"] for b in boxes} - set(ids))
    if missing:
        raise ValueError(f"{item['source-ref']}: labels {missing} are not in the job's label set {labels}")
    meta = {"objects": [{"confidence": round(p["confidence"] / 100.0, 4)} for p in item["predicted"] if p.get("box")],
            "class-map": {str(ids[b["label"]]): b["label"] for b in boxes},
            "type": "groundtruth/object-detection", "human-annotated": "no",
            "creation-date": (item.get("predicted_at") or "").replace("Z", "") or "1970-01-01T00:00:00",
            "job-name": "rekognition-prediction"}
    return {"source-ref": item["source-ref"],
            PRIOR_ATTRIBUTE: {"image_size": [{"width": item["width"], "height": item["height"], "depth": 3}],
                              "annotations": [{"class_id": ids[b["label"]],
                                               **{k: b[k] for k in ("left", "top", "width", "height")}}
                                              for b in boxes]},
            f"{PRIOR_ATTRIBUTE}-metadata": meta,
            ITEM_KEY: _item_summary(item)}


def box_label_line(item: dict) -> dict:
    """Input line of a bounding-box labelling job (an image with no prediction)."""
    return {"source-ref": item["source-ref"], ITEM_KEY: _item_summary(item)}


def manifest_text(lines: list[dict], where: str = "input manifest") -> str:
    """JSON lines, checked against Ground Truth's size limits so a job never fails on a long line."""
    out = []
    for number, line in enumerate(lines, start=1):
        text = json.dumps(line, sort_keys=True, separators=(",", ":"))
        if len(text) > MAX_LINE_CHARS:
            raise ValueError(f"{where} line {number} has {len(text)} characters (max {MAX_LINE_CHARS}); "
                             "lower batch_size")
        for key, value in line.items():
            size = len(json.dumps(value, separators=(",", ":")))
            if size > MAX_ATTRIBUTE_CHARS:
                raise ValueError(f"{where} line {number}: attribute {key!r} has {size} characters "
                                 f"(max {MAX_ATTRIBUTE_CHARS}); lower batch_size")
        out.append(text + "\n")
    return "".join(out)


def parse_manifest(text: str, where: str = "manifest") -> list[dict]:
    lines = []
    for number, raw in enumerate(text.splitlines(), start=1):
        if raw.strip():
            try:
                lines.append(json.loads(raw))
            except json.JSONDecodeError as exc:
                raise ValueError(f"{where} line {number}: not JSON ({exc.msg})") from exc
    return lines


# --- output manifests -> normalized answers ----------------------------------------------------------

def _metadata(line: dict, attribute: str) -> dict:
    meta = line.get(f"{attribute}-metadata")
    return meta if isinstance(meta, dict) else {}


def _creation_date(meta: dict, fallback):
    return meta.get("creation-date") or meta.get("creation_date") or fallback


def _failed(line: dict, attribute: str) -> str | None:
    meta = _metadata(line, attribute)
    for key in meta:
        if "failure" in key.lower():
            return f"failed: {meta[key]}"
    value = line.get(attribute)
    if value is None or value == {} or value == "":
        return "no answer in the output (not labelled, expired or failed)"
    return None


def kind_of(attribute: str, meta: dict) -> str:
    if attribute in KIND_OF_ATTRIBUTE:
        return KIND_OF_ATTRIBUTE[attribute]
    kind = str(meta.get("type", "")).lower()
    if kind == "groundtruth/custom":
        return VERIFY_LABELS
    if kind == "groundtruth/label-verification":
        return VERIFY_BOXES
    if kind == "groundtruth/object-detection":
        return ADJUST_BOXES if "adjustment-status" in meta else LABEL_BOXES
    if kind.startswith("groundtruth/image-classification"):
        return "classification"
    raise ValueError(f"cannot tell the task type of label attribute {attribute!r} (metadata type {kind!r})")


def _annotation_boxes(value: dict, meta: dict) -> list[dict]:
    class_map = meta.get("class-map") or {}
    out = []
    for a in value.get("annotations") or []:
        out.append({"label": class_map.get(str(a["class_id"]), str(a["class_id"])),
                    **{k: int(a[k]) for k in ("left", "top", "width", "height")}})
    return out


def _box_agreement(meta: dict, workers: int) -> float:
    # Built-in tasks publish per-object confidence (share of agreeing workers), 0.00 with one worker.
    # Without worker responses and without a box to carry a confidence, agreement is unknown: 0.0,
    # so the answer is not merged as verified (three workers drawing different things consolidate to
    # no box at all; that is not unanimity).
    if workers <= 1:
        return 1.0
    values = [o.get("confidence") for o in meta.get("objects") or [] if isinstance(o.get("confidence"), (int, float))]
    return round(min(values), 4) if values else 0.0


def parse_output_manifest(text: str, *, job_name: str, label_attribute: str, workers: int = 1,
                          input_items: dict[str, dict] | None = None, answered_at_fallback=None,
                          iou_threshold: float = 0.5, agreement_threshold: float = consensuslib.DEFAULT_THRESHOLD,
                          worker_answers: dict[str, list[dict]] | None = None) -> tuple[list[dict], list[dict]]:
    """Normalized answers of one job's output manifest, and the objects that got no usable answer.

    `worker_answers` (source-ref -> each worker's `{"labels", "boxes"}`, from the job's worker
    responses) lets box answers be consolidated by `core.consensus` like every other backend's;
    without it the built-in consolidation's boxes and confidences are used. Answers whose agreement
    is below `agreement_threshold` are recorded as pending.

    `input_items` maps source-ref to the review summary (width, height, predicted) for lines that
    do not carry it themselves. `answered_at` comes from each line's `creation-date`, else
    `answered_at_fallback` (the job's own end time).
    """
    input_items = input_items or {}
    answers, unresolved = [], []
    for number, line in enumerate(parse_manifest(text, f"{job_name} output manifest"), start=1):
        where = f"{job_name} output line {number}"
        meta = _metadata(line, label_attribute)
        reason = _failed(line, label_attribute)
        refs = [i["source-ref"] for i in line.get("images") or []] or [line.get("source-ref")]
        if reason:
            unresolved.extend({"source-ref": r, "job": job_name, "reason": reason} for r in refs)
            continue
        kind = kind_of(label_attribute, meta)
        when = _creation_date(meta, answered_at_fallback)
        common = {"backend": "ground-truth", "source": job_name, "answered_at": when}
        if kind in CUSTOM_KINDS:
            a, u = _custom_answers(line, line[label_attribute], input_items, common, where, agreement_threshold)
        elif kind == "classification":
            a, u = _classification_answers(line, line[label_attribute], meta, input_items, workers, common,
                                           agreement_threshold)
        else:
            a, u = _box_answers(kind, line, line[label_attribute], meta, input_items, workers, common, iou_threshold,
                                agreement_threshold, (worker_answers or {}).get(line.get("source-ref")))
        answers.extend(a)
        unresolved.extend(dict(x, job=job_name) for x in u)
    return answers, unresolved


def _size(ref: str, *sources: dict | None) -> tuple[int | None, int | None]:
    for src in sources:
        if src and src.get("width") and src.get("height"):
            return int(src["width"]), int(src["height"])
    return None, None


def _custom_answers(line, value, input_items, common, where, threshold):
    if isinstance(value, str):
        value = json.loads(value)
    inputs = {i["source-ref"]: i for i in line.get("images") or []}
    answers, unresolved = [], []
    for image in value.get("images") or []:
        ref = image["source-ref"]
        workers = int(image.get("workers", value.get("workers", 0)) or 0)
        if workers < 1:
            unresolved.append({"source-ref": ref, "reason": "no worker answered this image"})
            continue
        width, height = _size(ref, inputs.get(ref), input_items.get(ref))
        predicted = [p["name"] for p in (inputs.get(ref) or input_items.get(ref) or {}).get("predicted") or []]
        labels = image.get("labels") or []
        # One worker agrees with themself; several without a figure (an old Lambda) are not unanimous.
        agreement = float(image.get("agreement", value.get("agreement", 1.0 if workers <= 1 else 0.0)))
        # The Lambda only votes; the diff against the model's prediction is made here, once.
        diff = ans.diff_labels(predicted, labels)
        answers.append(ans.make_answer(
            source_ref=ref, width=width, height=height, kind="classification", labels=labels,
            confirmed=diff["confirmed"], rejected=diff["rejected"],
            added=diff["added"], workers=workers, agreement=agreement, human=True,
            consensus=consensuslib.record(image, workers, agreement, threshold), **common))
    return answers, unresolved


def _classification_answers(line, value, meta, input_items, workers, common, threshold):
    ref = line["source-ref"]
    item = line.get(ITEM_KEY) or input_items.get(ref) or {}
    if "class-map" in meta:  # multi-label: value is a list of class ids
        labels = [meta["class-map"][str(i)] for i in value if str(i) in meta["class-map"]]
    else:
        labels = [meta["class-name"]] if meta.get("class-name") else []
    predicted = [p["name"] for p in item.get("predicted") or []]
    diff = ans.diff_labels(predicted, labels)
    width, height = _size(ref, item)
    confidence = meta.get("confidence")
    if workers <= 1:
        agreement = 1.0
    elif isinstance(confidence, (int, float)):
        agreement = float(confidence)
    else:  # multi-label: the least agreed chosen class; none chosen -> unknown, not unanimous
        values = [v for v in (meta.get("confidence-map") or {}).values() if isinstance(v, (int, float))]
        agreement = float(min(values)) if values else 0.0
    return [ans.make_answer(source_ref=ref, width=width, height=height, kind="classification", labels=labels,
                            confirmed=diff["confirmed"], rejected=diff["rejected"], added=diff["added"],
                            workers=workers, agreement=agreement, human=True,
                            consensus=consensuslib.record(None, workers, agreement, threshold), **common)], []


def _box_answers(kind, line, value, meta, input_items, workers, common, iou_threshold, threshold, worker_answers):
    ref = line["source-ref"]
    item = line.get(ITEM_KEY) or input_items.get(ref) or {}
    width, height = _size(ref, item)
    if width is None and isinstance(value, dict) and value.get("image_size"):
        width, height = int(value["image_size"][0]["width"]), int(value["image_size"][0]["height"])
    predicted = []
    if item.get("predicted") and width:
        predicted = ans.predicted_pixel_boxes({"predicted": item["predicted"], "width": width, "height": height})
    elif isinstance(line.get(PRIOR_ATTRIBUTE), dict):
        predicted = _annotation_boxes(line[PRIOR_ATTRIBUTE], _metadata(line, PRIOR_ATTRIBUTE))
    if kind == VERIFY_BOXES:
        verdict = str(meta.get("class-name", "")).strip().lower()
        if verdict not in _POSITIVE_VERDICTS:
            # "The boxes are wrong" says nothing about where the right ones are: not an answer to merge.
            return [], [{"source-ref": ref, "reason": f"verification verdict {meta.get('class-name')!r}: "
                                                      "boxes rejected, image needs labelling"}]
        final = [dict(b) for b in predicted]
        agreement = 1.0 if workers <= 1 else float(meta.get("confidence") or 0.0)
        voted, shares = None, None
    elif worker_answers:
        voted = consensuslib.consolidate(worker_answers, kind="boxes", predicted_boxes=predicted,
                                         iou_threshold=iou_threshold)
        final, agreement, workers = voted["boxes"], voted["agreement"], voted["workers"]
    else:
        final = _annotation_boxes(value, meta)
        agreement = _box_agreement(meta, workers)
        voted, shares = None, [o.get("confidence") for o in meta.get("objects") or []]
    diff = ans.diff_boxes(predicted, final, iou_threshold)
    if voted:
        shares = consensuslib.box_shares(diff["boxes"], voted["boxes"], voted["consensus"]["box_agreement"])
    elif workers <= 1:
        shares = [1.0] * len(diff["boxes"])
    return [ans.make_answer(source_ref=ref, width=width, height=height, kind="boxes", labels=diff["labels"],
                            boxes=diff["boxes"], confirmed=diff["confirmed"], rejected=diff["rejected"],
                            added=diff["added"], adjusted=diff["adjusted"], workers=workers,
                            agreement=agreement, human=True,
                            consensus=consensuslib.record(voted and voted["consensus"], workers, agreement, threshold,
                                                          [s for s in shares or [] if isinstance(s, (int, float))]
                                                          if not voted else shares), **common)], []


def input_items_from_manifest(text: str) -> dict[str, dict]:
    """source-ref -> {width, height, predicted} from one of our input manifests (any job kind)."""
    out = {}
    for line in parse_manifest(text, "input manifest"):
        for image in line.get("images") or []:
            out[image["source-ref"]] = image
        if line.get("source-ref") and isinstance(line.get(ITEM_KEY), dict):
            out[line["source-ref"]] = line[ITEM_KEY]
    return out


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
