"""The normalized answer record: what every review backend produces and the merge consumes.

Format: docs/data-formats.md, "Normalized answer line". Also the pieces every backend needs to
build one: diffing the model's prediction against the final answer. Several workers are
consolidated by `core.consensus` (one function for Ground Truth and Label Studio).
"""

from __future__ import annotations

import hashlib
import json
import re
from datetime import datetime, timezone
from typing import Iterable

from rekfeedback.core import boxes as boxlib
from rekfeedback.core import consensus as consensuslib

BACKENDS = ("ground-truth", "label-studio", "auto-accept")
KINDS = ("classification", "boxes")
BOX_STATUSES = ("unchanged", "adjusted", "added")
_REQUIRED = ("source-ref", "width", "height", "kind", "labels", "boxes", "confirmed", "rejected", "added",
             "adjusted", "workers", "agreement", "human", "backend", "source", "answered_at", "answer_id")

# A pre-filled box moved by at most this many pixels on every side counts as unchanged: workers
# nudge boxes by a pixel or two when they merely click on them.
UNCHANGED_TOLERANCE_PX = 2


def answer_id(backend: str, source: str, source_ref: str) -> str:
    return hashlib.sha1(f"{backend}\x00{source}\x00{source_ref}".encode()).hexdigest()


def iso_utc(value) -> str:
    """A backend's date (ISO string, naive = UTC, or datetime) as `YYYY-MM-DDTHH:MM:SSZ`."""
    if isinstance(value, datetime):
        dt = value
    elif isinstance(value, str) and value.strip():
        text = value.strip().replace("Z", "+00:00")
        # Ground Truth writes microseconds, some samples more digits; fromisoformat wants at most six.
        text = re.sub(r"(\.\d{6})\d+", r"\1", text)
        try:
            dt = datetime.fromisoformat(text)
        except ValueError as exc:
            raise ValueError(f"not an ISO-8601 date: {value!r}") from exc
    else:
        raise ValueError(f"not a date: {value!r}")
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=timezone.utc)
    return dt.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def make_answer(*, source_ref: str, width, height, kind: str, labels: list[str], boxes: list[dict] | None = None,
                confirmed: list[str] = (), rejected: list[str] = (), added: list[str] = (), adjusted: list[str] = (),
                workers: int, agreement: float, human: bool, backend: str, source: str, answered_at,
                consensus: dict | None = None) -> dict:
    answer = {
        "source-ref": source_ref, "width": width, "height": height, "kind": kind,
        "labels": sorted(set(labels)),
        "boxes": [dict(b) for b in (boxes or [])],
        "confirmed": list(confirmed), "rejected": list(rejected), "added": list(added), "adjusted": list(adjusted),
        "workers": int(workers), "agreement": round(float(agreement), 4),
        "human": bool(human), "backend": backend, "source": source,
        "answered_at": iso_utc(answered_at),
        "answer_id": answer_id(backend, source, source_ref),
    }
    if consensus is not None:
        answer["consensus"] = consensus  # status against agreement_threshold, shares per label/box (core.consensus)
    validate_answer(answer)
    return answer


def validate_answer(answer: dict, where: str = "answer") -> dict:
    """Raise ValueError naming the field when `answer` is not a normalized answer line."""
    if not isinstance(answer, dict):
        raise ValueError(f"{where}: expected a JSON object")
    missing = [k for k in _REQUIRED if k not in answer]
    if missing:
        raise ValueError(f"{where}: missing fields {missing}")
    if not isinstance(answer["source-ref"], str) or not answer["source-ref"].startswith("s3://"):
        raise ValueError(f"{where}: 'source-ref' must be an s3:// URI")
    if answer["kind"] not in KINDS:
        raise ValueError(f"{where}: 'kind' must be one of {KINDS}")
    if answer["backend"] not in BACKENDS:
        raise ValueError(f"{where}: 'backend' must be one of {BACKENDS}")
    for key in ("labels", "confirmed", "rejected", "added", "adjusted"):
        if not isinstance(answer[key], list) or not all(isinstance(n, str) and n for n in answer[key]):
            raise ValueError(f"{where}: '{key}' must be a list of label names")
    if not isinstance(answer["boxes"], list):
        raise ValueError(f"{where}: 'boxes' must be a list")
    if answer["kind"] == "classification" and answer["boxes"]:
        raise ValueError(f"{where}: a classification answer has no boxes")
    for box in answer["boxes"]:
        if not {"label", "left", "top", "width", "height", "status"} <= set(box):
            raise ValueError(f"{where}: box {box!r} needs label, left, top, width, height, status")
        if box["status"] not in BOX_STATUSES:
            raise ValueError(f"{where}: box status must be one of {BOX_STATUSES}, got {box['status']!r}")
    if answer["kind"] == "boxes" and sorted({b["label"] for b in answer["boxes"]}) != sorted(set(answer["labels"])):
        raise ValueError(f"{where}: for boxes, 'labels' must be the distinct labels of the final boxes")
    if not isinstance(answer["workers"], int) or answer["workers"] < 0:
        raise ValueError(f"{where}: 'workers' must be a non-negative integer")
    if answer["human"] and answer["workers"] < 1:
        raise ValueError(f"{where}: a human answer needs at least one worker")
    if not isinstance(answer["agreement"], (int, float)) or not 0 <= answer["agreement"] <= 1:
        raise ValueError(f"{where}: 'agreement' must be between 0 and 1")
    if "consensus" in answer:
        consensuslib.validate(answer["consensus"], where)
    if answer["answer_id"] != answer_id(answer["backend"], answer["source"], answer["source-ref"]):
        raise ValueError(f"{where}: 'answer_id' does not match backend, source and source-ref")
    return answer


def dumps_jsonl(answers: Iterable[dict]) -> str:
    """Answers as JSON lines in a fixed order and key order, so a rerun writes the same bytes."""
    rows = sorted(answers, key=lambda a: (a["source-ref"], a.get("answer_id", "")))
    return "".join(json.dumps(a, sort_keys=True, separators=(",", ":")) + "\n" for a in rows)


def loads_jsonl(text: str, where: str = "answers") -> list[dict]:
    from rekfeedback.core.predictions import iter_jsonl

    return list(iter_jsonl(text, where, validate=validate_answer))


# --- diffing the model's prediction against the final answer ------------------------------------

def diff_labels(predicted: Iterable[str], final: Iterable[str]) -> dict[str, list[str]]:
    """Image-level diff: one entry per predicted label (confirmed or rejected), plus the added ones."""
    predicted = list(dict.fromkeys(predicted))
    final_set = set(final)
    return {
        "confirmed": [n for n in predicted if n in final_set],
        "rejected": [n for n in predicted if n not in final_set],
        "added": sorted(final_set - set(predicted)),
        "adjusted": [],
    }


def _same_box(a: dict, b: dict, tolerance: int) -> bool:
    return all(abs(int(a[k]) - int(b[k])) <= tolerance for k in ("left", "top", "width", "height"))


def match_boxes(predicted: list[dict], final: list[dict], iou_threshold: float) -> list[tuple[int, int]]:
    """Greedy one-to-one matching of same-label boxes by descending IoU (ties by index: deterministic)."""
    pairs = []
    for i, p in enumerate(predicted):
        for j, f in enumerate(final):
            if p["label"] == f["label"]:
                score = boxlib.iou(p, f)
                if score >= iou_threshold and score > 0:
                    pairs.append((-score, i, j))
    used_p, used_f, out = set(), set(), []
    for _, i, j in sorted(pairs):
        if i not in used_p and j not in used_f:
            used_p.add(i)
            used_f.add(j)
            out.append((i, j))
    return out


def diff_boxes(predicted: list[dict], final: list[dict], iou_threshold: float = 0.5,
               tolerance: int = UNCHANGED_TOLERANCE_PX) -> dict:
    """Box-level diff (pixels). Returns final boxes with a status plus confirmed/rejected/added/adjusted names.

    A predicted box matched by a final box of the same label (IoU >= threshold) is confirmed, and
    also adjusted when it moved by more than `tolerance` pixels. Unmatched predicted boxes are
    rejected; unmatched final boxes are added.
    """
    if not 0 < iou_threshold <= 1:
        raise ValueError(f"iou_threshold must be in (0, 1], got {iou_threshold!r}")
    matches = dict((j, i) for i, j in match_boxes(predicted, final, iou_threshold))
    matched_p = set(matches.values())
    out_boxes, confirmed, adjusted, added = [], [], [], []
    for j, f in enumerate(final):
        box = {k: int(f[k]) for k in ("left", "top", "width", "height")}
        box["label"] = f["label"]
        if j in matches:
            moved = not _same_box(predicted[matches[j]], f, tolerance)
            box["status"] = "adjusted" if moved else "unchanged"
        else:
            box["status"] = "added"
            added.append(f["label"])
        out_boxes.append(box)
    for i, p in enumerate(predicted):
        if i in matched_p:
            confirmed.append(p["label"])
            j = next(j for j, ii in matches.items() if ii == i)
            if out_boxes[j]["status"] == "adjusted":
                adjusted.append(p["label"])
    rejected = [p["label"] for i, p in enumerate(predicted) if i not in matched_p]
    return {"boxes": out_boxes, "labels": sorted({b["label"] for b in out_boxes}),
            "confirmed": confirmed, "rejected": rejected, "added": added, "adjusted": adjusted}


def predicted_pixel_boxes(item: dict) -> list[dict]:
    """The model's boxes of a review item/prediction line, in pixels with their label."""
    out = []
    for lab in item.get("predicted", item.get("labels")) or []:
        if lab.get("box"):
            out.append({"label": lab["name"], **boxlib.ratio_to_pixels(lab["box"], item["width"], item["height"])})
    return out


def auto_accepted_answer(item: dict, source: str, answered_at_fallback=None) -> dict:
    """The normalized answer of an item that skipped humans: the model's prediction, as is.

    `answered_at` is when the model predicted (`predicted_at`); `answered_at_fallback` only
    covers prediction lines written without it.
    """
    answered_at = item.get("predicted_at") or answered_at_fallback
    if not answered_at:
        raise ValueError(f"{item['source-ref']}: no 'predicted_at' to date the auto-accepted answer")
    names = [p["name"] for p in item["predicted"]]
    if item["kind"] == "boxes":
        boxes = [{**b, "status": "unchanged"} for b in predicted_pixel_boxes(item)]
        labels = sorted({b["label"] for b in boxes})
        confirmed = [b["label"] for b in boxes]
    else:
        boxes, labels, confirmed = [], sorted(set(names)), list(dict.fromkeys(names))
    return make_answer(source_ref=item["source-ref"], width=item["width"], height=item["height"], kind=item["kind"],
                       labels=labels, boxes=boxes, confirmed=confirmed, workers=0, agreement=1.0, human=False,
                       backend="auto-accept", source=source,
                       answered_at=answered_at)
