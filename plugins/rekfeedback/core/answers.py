"""The normalized answer record (`Answer`): what every review backend produces and the merge consumes.

Format: docs/data-formats.md, "Normalized answer line". Also the pieces every backend needs to
build one: diffing the model's prediction against the final answer (the one label diff, made
by the collect steps). Several workers are consolidated by `core.consensus` (one function for
Ground Truth and Label Studio).
"""

from __future__ import annotations

import hashlib
import re
from datetime import datetime, timezone
from typing import Iterable, Literal

from pydantic import Field, model_validator

from rekfeedback.core import boxes as boxlib
from rekfeedback.core import consensus as consensuslib
from rekfeedback.core import records
from rekfeedback.core.records import LabelName, Record, SourceRef


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


class AnswerBox(Record):
    """A final box in pixels, with how it relates to the model's boxes."""

    label: LabelName
    left: float
    top: float
    width: float
    height: float
    status: Literal["unchanged", "adjusted", "added"]


class Answer(Record):
    """One image's verified (or auto-accepted) labels: the merge's only input (docs/data-formats.md)."""

    source_ref: SourceRef = Field(alias="source-ref")
    width: int | None
    height: int | None
    kind: Literal["classification", "boxes"]
    labels: list[LabelName]
    boxes: list[AnswerBox]
    confirmed: list[LabelName]
    rejected: list[LabelName]
    added: list[LabelName]
    adjusted: list[LabelName]
    workers: int = Field(ge=0)
    agreement: float = Field(ge=0, le=1)
    human: bool
    backend: Literal["ground-truth", "label-studio", "auto-accept"]
    source: str
    answered_at: str
    answer_id: str
    consensus: dict | None = None

    @model_validator(mode="after")
    def _consistent(self):
        if self.kind == "classification" and self.boxes:
            raise ValueError("a classification answer has no boxes")
        if self.kind == "boxes" and sorted({b.label for b in self.boxes}) != sorted(set(self.labels)):
            raise ValueError("for boxes, 'labels' must be the distinct labels of the final boxes")
        if self.human and self.workers < 1:
            raise ValueError("a human answer needs at least one worker")
        if self.consensus is not None:
            consensuslib.validate(self.consensus, "consensus")
        if self.answer_id != answer_id(self.backend, self.source, self.source_ref):
            raise ValueError("'answer_id' does not match backend, source and source-ref")
        return self


def validate_answer(answer: dict, where: str = "answer") -> dict:
    """Raise ValueError naming the field when `answer` is not a normalized answer line."""
    return records.check(Answer, answer, where)


def dumps_jsonl(answers: Iterable[dict]) -> str:
    """The one writer of answer files: fixed line and key order, so a rerun writes the same bytes."""
    return records.dumps(Answer, answers, "answer")


def loads_jsonl(text: str, where: str = "answers") -> list[dict]:
    """The one reader of answer files."""
    return list(records.read(Answer, text, where))


class UnresolvedImage(Record):
    """A line of `answers/<backend>.unresolved.jsonl`: an image the backend gave no usable answer for, and why."""

    source_ref: SourceRef = Field(alias="source-ref")
    reason: str
    job: str | None = None  # the Ground Truth job, when there is one


def unresolved_uri(answers_uri: str) -> str:
    """Where a collect step lists its unresolved images: beside its answers file, for either backend."""
    stem = answers_uri[: -len(".jsonl")] if answers_uri.endswith(".jsonl") else answers_uri
    return f"{stem}.unresolved.jsonl"


def dumps_unresolved(rows: Iterable[dict]) -> str:
    """The one writer of unresolved lists (both collect steps)."""
    rows = sorted(rows, key=lambda u: (u["source-ref"], u.get("job") or ""))
    return records.dumps(UnresolvedImage, rows, "unresolved image")


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
