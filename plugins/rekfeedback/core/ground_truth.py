"""Ground Truth formats: job names, input manifests, label-category files, worker answers, output manifests.

Job names, the jobs a review set needs and the review's parameters are in `ground_truth_jobs.py`.

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

import json
from typing import Iterable

from rekfeedback.core import answers as ans
from rekfeedback.core import consensus as consensuslib
from rekfeedback.core.records import iter_jsonl

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
# The verdicts of the bounding-box verification template: the first one means "the boxes are right".
VERDICTS = ("correct", "incorrect")
_POSITIVE_VERDICTS = {"correct", "good", "yes", "right", "accept", "accepted", "valid", "approve", "approved"}
MAX_BOX_LABELS = 10  # crowd-bounding-box and the API doc cap built-in box jobs at 10 labels
MAX_LINE_CHARS = 100_000
MAX_ATTRIBUTE_CHARS = 20_000


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
            f"{PRIOR_ATTRIBUTE}-metadata": meta}


def box_label_line(item: dict) -> dict:
    """Input line of a bounding-box labelling job (an image with no prediction). The collect step joins the
    answer to its review item (review/items.jsonl), so the line carries nothing else."""
    return {"source-ref": item["source-ref"]}


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


def parse_output_manifest(text: str, *, job_name: str, label_attribute: str, items: dict[str, dict],
                          workers: int = 1, answered_at_fallback=None,
                          iou_threshold: float = 0.5, agreement_threshold: float = consensuslib.DEFAULT_THRESHOLD,
                          worker_answers: dict[str, list[dict]] | None = None) -> tuple[list[dict], list[dict]]:
    """Normalized answers of one job's output manifest, and the objects that got no usable answer.

    `worker_answers` (source-ref -> each worker's `{"labels", "boxes"}`, from the job's worker
    responses) lets box answers be consolidated by `core.consensus` like every other backend's;
    without it the built-in consolidation's boxes and confidences are used. Answers whose agreement
    is below `agreement_threshold` are recorded as pending.

    `items` are the turn's review items (`core.review.read_items` of review/items.jsonl): every
    answer is joined to its item for the image's size and the model's prediction, which the answer
    is diffed against; an answered image that is not a review item of the turn is an error.
    `answered_at` comes from each line's `creation-date`, else `answered_at_fallback` (the job's
    own end time).
    """
    answers, unresolved = [], []
    for number, line in enumerate(iter_jsonl(text, f"{job_name} output manifest"), start=1):
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
            a, u = _custom_answers(line[label_attribute], items, common, where, agreement_threshold)
        elif kind == "classification":
            a, u = _classification_answers(line, line[label_attribute], meta, _item(items, line, where), workers,
                                           common, agreement_threshold)
        else:
            a, u = _box_answers(kind, line, line[label_attribute], meta, _item(items, line, where), workers, common,
                                iou_threshold, agreement_threshold, (worker_answers or {}).get(line.get("source-ref")))
        answers.extend(a)
        unresolved.extend(dict(x, job=job_name) for x in u)
    return answers, unresolved


def _item(items: dict[str, dict], line_or_ref, where: str) -> dict:
    ref = line_or_ref.get("source-ref") if isinstance(line_or_ref, dict) else line_or_ref
    if ref not in items:
        raise ValueError(f"{where}: {ref!r} is not a review item of this turn (review/items.jsonl); the job was "
                         "not created from these items")
    return items[ref]


def _size(item: dict) -> tuple[int | None, int | None]:
    if item.get("width") and item.get("height"):
        return int(item["width"]), int(item["height"])
    return None, None


def _custom_answers(value, items, common, where, threshold):
    if isinstance(value, str):
        value = json.loads(value)
    answers, unresolved = [], []
    for image in value.get("images") or []:
        ref = image["source-ref"]
        workers = int(image.get("workers", value.get("workers", 0)) or 0)
        if workers < 1:
            unresolved.append({"source-ref": ref, "reason": "no worker answered this image"})
            continue
        item = _item(items, ref, where)
        width, height = _size(item)
        predicted = [p["name"] for p in item.get("predicted") or []]
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


def _classification_answers(line, value, meta, item, workers, common, threshold):
    ref = line["source-ref"]
    if "class-map" in meta:  # multi-label: value is a list of class ids
        labels = [meta["class-map"][str(i)] for i in value if str(i) in meta["class-map"]]
    else:
        labels = [meta["class-name"]] if meta.get("class-name") else []
    predicted = [p["name"] for p in item.get("predicted") or []]
    diff = ans.diff_labels(predicted, labels)
    width, height = _size(item)
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


def _box_answers(kind, line, value, meta, item, workers, common, iou_threshold, threshold, worker_answers):
    ref = line["source-ref"]
    width, height = _size(item)
    if width is None and isinstance(value, dict) and value.get("image_size"):
        width, height = int(value["image_size"][0]["width"]), int(value["image_size"][0]["height"])
    predicted = ans.predicted_pixel_boxes({**item, "width": width, "height": height}) if width else []
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


