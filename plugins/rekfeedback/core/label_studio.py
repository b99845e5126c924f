"""Label Studio formats: labelling config, tasks with predictions, exported annotations -> normalized answers.

Pure (no Airflow, no HTTP). Label Studio's rectangle values are percentages of the image; the
conversions go through `core.boxes`. Several annotations of one task are consolidated with the
same function as Ground Truth's (`core.consensus.consolidate`).
"""

from __future__ import annotations

import hashlib
from typing import Iterable
from xml.sax.saxutils import quoteattr

from rekfeedback.core import arns
from rekfeedback.core import answers as answerlib
from rekfeedback.core import boxes as boxlib
from rekfeedback.core import consensus as consensuslib

BACKEND = "label-studio"
IMAGE = "image"        # the <Image> object tag
CHOICES = "labels"     # the <Choices> control (image-level labels)
RECTANGLES = "boxes"   # the <RectangleLabels> control
SOURCE_KEY = "source_ref"  # task data key holding the image's s3:// URI: the dedupe key of a retried import
TITLE_MAX = 50  # Label Studio refuses project titles longer than 50 characters


def project_title(dag_id: str, run_key: str, *, turn: str) -> str:
    """A deterministic project title for a turn (the reuse key of a retried operator), at most 50 characters.

    It ends with 6 hex digits of a hash of the title and the turn's S3 prefix (`turn`): two loops sharing a
    Label Studio server and a DAG schedule have the same dag_id and run ids, and must never reuse each
    other's project. Long ids keep their start and end.
    """
    title = f"rekfeedback {dag_id} {run_key}"
    digest = hashlib.sha1(f"{title}\x00{turn}".encode("utf-8", "surrogatepass")).hexdigest()[:6]
    if len(title) + 1 + len(digest) <= TITLE_MAX:
        return f"{title} {digest}"
    head = TITLE_MAX - len(digest) - 2
    return f"{title[:head - 12]}~{title[-12:]}~{digest}"[:TITLE_MAX]


def labeling_config(label_set: Iterable[str], kind: str) -> str:
    """The project's XML: the image with RectangleLabels (boxes) or multiple Choices (classification).

    Choices lets an annotator untick every label: "no label applies" is a valid verified answer.
    """
    labels = list(dict.fromkeys(label_set))
    if not labels:
        raise ValueError("the label set is empty: pass `labels` or predictions with at least one label")
    bad = [n for n in labels if not isinstance(n, str) or not n.strip()]
    if bad:
        raise ValueError(f"label names must be non-empty strings, got {bad!r}")
    if kind == "boxes":
        control = (f'  <RectangleLabels name="{RECTANGLES}" toName="{IMAGE}" strokeWidth="3">\n'
                   + "".join(f"    <Label value={quoteattr(n)}/>\n" for n in labels)
                   + "  </RectangleLabels>\n")
        hint = "Check each box: fix its label or position, delete wrong boxes, draw missing ones."
    elif kind == "classification":
        control = (f'  <Choices name="{CHOICES}" toName="{IMAGE}" choice="multiple" showInline="true">\n'
                   + "".join(f"    <Choice value={quoteattr(n)}/>\n" for n in labels)
                   + "  </Choices>\n")
        hint = "Keep the labels that apply to the image, untick the wrong ones, tick missing ones."
    else:
        raise ValueError(f"kind must be 'classification' or 'boxes', got {kind!r}")
    return (f"<View>\n  <Header value={quoteattr(hint)}/>\n"
            f'  <Image name="{IMAGE}" value="${IMAGE}" zoom="true"/>\n{control}</View>\n')


def _score(confidence) -> float:
    return round(float(confidence) / 100.0, 4)


def prediction_result(item: dict) -> list[dict]:
    """The model's labels/boxes of a review item as a Label Studio result list."""
    width, height = item.get("width"), item.get("height")
    result = []
    if item["kind"] == "boxes":
        for n, lab in enumerate(item["predicted"]):
            if not lab.get("box"):
                continue
            px = boxlib.ratio_to_pixels(lab["box"], width, height)
            value = boxlib.pixels_to_percent(px, width, height)
            result.append({
                "id": f"p{n}", "from_name": RECTANGLES, "to_name": IMAGE, "type": "rectanglelabels",
                "original_width": width, "original_height": height, "image_rotation": 0,
                "value": {**{k: round(v, 4) for k, v in value.items()}, "rotation": 0,
                          "rectanglelabels": [lab["name"]]},
                "score": _score(lab["confidence"]),
            })
    else:
        names = list(dict.fromkeys(lab["name"] for lab in item["predicted"]))
        if names:
            result.append({"id": "p0", "from_name": CHOICES, "to_name": IMAGE, "type": "choices",
                           "value": {"choices": names},
                           "score": _score(min(lab["confidence"] for lab in item["predicted"]))})
    return result


def task_for_item(item: dict, image_url: str) -> dict:
    """One Label Studio import task: the image URL, the source-ref (dedupe key), and the model's prediction."""
    data = {
        IMAGE: image_url,
        SOURCE_KEY: item["source-ref"],
        "width": item.get("width"), "height": item.get("height"),
        "kind": item["kind"], "route": item["route"],
        "predicted": [{"name": lab["name"], "confidence": lab["confidence"], "box": lab.get("box")}
                      for lab in item["predicted"]],
    }
    task = {"data": data}
    result = prediction_result(item)
    if result or item["predicted"]:
        confidences = [lab["confidence"] for lab in item["predicted"]]
        task["predictions"] = [{
            "model_version": model_version(item.get("model")),
            "score": _score(min(confidences)) if confidences else 0.0,
            "result": result,
        }]
    # The review round: every worker's answer as a prediction of its own, to compare and pick from.
    for k, candidate in enumerate(item.get("candidates") or [], start=1):
        task.setdefault("predictions", []).append({
            "model_version": f"worker {k}", "score": 0.0,
            "result": answer_result(candidate, item["width"], item["height"], item["kind"])})
    return task


def model_version(model: str | None) -> str:
    """A short model version for Label Studio's UI: the version name of a project-version ARN."""
    if not model:
        return "unknown"
    return arns.version_name(model) or model[-100:]


def task_ref(task: dict) -> str:
    """The image a task is about: the join key between Label Studio and the turn's review items."""
    ref = (task.get("data") or {}).get(SOURCE_KEY)
    if not isinstance(ref, str) or not ref.startswith("s3://"):
        raise ValueError(f"Label Studio task {task.get('id')}: data.{SOURCE_KEY} is missing; "
                         "it was not created by LabelStudioReviewOperator")
    return ref


def worker_answer(result: list[dict], width: int | None, height: int | None) -> dict:
    """One annotation's result list as `{"labels", "boxes"}` in pixels (the policy/vote shape)."""
    labels, boxes = set(), []
    for r in result or []:
        value = r.get("value") or {}
        if r.get("type") == "rectanglelabels":
            w = r.get("original_width") or width
            h = r.get("original_height") or height
            if not w or not h:
                raise ValueError("a rectangle annotation needs the image size (original_width/height)")
            px = boxlib.percent_to_pixels(value, w, h)
            for name in value.get("rectanglelabels") or []:
                boxes.append({"label": name, **px})
                labels.add(name)
        elif r.get("type") == "choices":
            labels.update(value.get("choices") or [])
    return {"labels": sorted(labels), "boxes": boxes}


def answer_result(answer: dict, width: int, height: int, kind: str) -> list[dict]:
    """A `{"labels", "boxes"}` answer (pixels) as a Label Studio result list (the simulated annotator posts it).

    A boxes project has only the rectangle control, so there labels come only with boxes.
    """
    result = []
    for n, box in enumerate(answer.get("boxes") or []):
        value = boxlib.pixels_to_percent(box, width, height)
        result.append({"id": f"a{n}", "from_name": RECTANGLES, "to_name": IMAGE, "type": "rectanglelabels",
                       "original_width": width, "original_height": height, "image_rotation": 0,
                       "value": {**value, "rotation": 0, "rectanglelabels": [box["label"]]}})
    box_labels = {b["label"] for b in answer.get("boxes") or []}
    image_labels = [n for n in answer.get("labels") or [] if n not in box_labels]
    if image_labels and kind != "boxes":
        result.append({"id": "a-labels", "from_name": CHOICES, "to_name": IMAGE, "type": "choices",
                       "value": {"choices": image_labels}})
    return result


def valid_annotations(task: dict) -> list[dict]:
    """A task's submitted annotations: skipped ("cancelled") ones and drafts are not answers."""
    return [a for a in task.get("annotations") or [] if not a.get("was_cancelled")]


def normalized_answer(task: dict, item: dict, source: str, iou_threshold: float = 0.5,
                      agreement_threshold: float = consensuslib.DEFAULT_THRESHOLD) -> dict | None:
    """The normalized answer of one exported task joined to its review item, or None when nobody answered it yet.

    Several annotations are consolidated by `core.consensus`; below `agreement_threshold` the
    answer is recorded as pending (not merged as verified).
    """
    annotations = valid_annotations(task)
    if not annotations:
        return None
    width, height = item["width"], item["height"]
    workers = [worker_answer(a.get("result") or [], width, height) for a in annotations]
    predicted_names = [p["name"] for p in item["predicted"]]
    predicted_boxes = answerlib.predicted_pixel_boxes(item)
    voted = consensuslib.consolidate(workers, kind=item["kind"], predicted_labels=predicted_names,
                                     predicted_boxes=predicted_boxes, iou_threshold=iou_threshold)
    if item["kind"] == "boxes":
        diff = answerlib.diff_boxes(predicted_boxes, voted["boxes"], iou_threshold)
        labels, boxes = diff["labels"], diff["boxes"]
        shares = consensuslib.box_shares(boxes, voted["boxes"], voted["consensus"]["box_agreement"])
    else:
        diff = answerlib.diff_labels(predicted_names, voted["labels"])
        labels, boxes, shares = voted["labels"], [], []
    answered_at = max(answerlib.iso_utc(a.get("updated_at") or a.get("created_at")) for a in annotations)
    return answerlib.make_answer(
        source_ref=item["source-ref"], width=width, height=height, kind=item["kind"],
        labels=labels, boxes=boxes, confirmed=diff["confirmed"], rejected=diff["rejected"],
        added=diff["added"], adjusted=diff["adjusted"], workers=voted["workers"],
        agreement=voted["agreement"], human=True, backend=BACKEND, source=source, answered_at=answered_at,
        consensus=consensuslib.record(voted["consensus"], voted["workers"], voted["agreement"],
                                      agreement_threshold, shares))


def normalized_answers(tasks: Iterable[dict], items: dict[str, dict], source: str, iou_threshold: float = 0.5,
                       agreement_threshold: float = consensuslib.DEFAULT_THRESHOLD) -> tuple[list[dict], list[str]]:
    """(answers, source-refs of tasks nobody answered yet). A source-ref imported twice counts once.

    `items` are the turn's review items (review/items.jsonl): each task is joined to its item by
    source-ref; a task for an image that is not a review item of the turn is an error.
    """
    answers: dict[str, dict] = {}
    unanswered: list[str] = []
    for task in tasks:
        ref = task_ref(task)
        if ref not in items:
            raise ValueError(f"Label Studio task {task.get('id')} is about {ref}, which is not a review item of this "
                             "turn (review/items.jsonl): the project holds tasks of another turn")
        answer = normalized_answer(task, items[ref], source, iou_threshold, agreement_threshold)
        if answer is None:
            unanswered.append(ref)
        elif ref not in answers:
            answers[ref] = answer
    unanswered = sorted(set(unanswered) - set(answers))
    return [answers[k] for k in sorted(answers)], unanswered


def progress(tasks_total: int, tasks_annotated: int, min_share: float | None, deadline_passed: bool) -> tuple[bool, str]:
    """Whether the review is done, and why: every task annotated, or `min_share` of them once the deadline passed."""
    if tasks_total <= 0:
        return True, "the project has no tasks"
    share = tasks_annotated / tasks_total
    if tasks_annotated >= tasks_total:
        return True, f"all {tasks_total} tasks annotated"
    if min_share is not None and deadline_passed and share >= min_share:
        return True, f"deadline passed with {tasks_annotated}/{tasks_total} tasks annotated (>= {min_share:.0%})"
    return False, f"{tasks_annotated}/{tasks_total} tasks annotated ({share:.0%})"
