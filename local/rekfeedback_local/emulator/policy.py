"""Simulated human annotators: what a worker answers, given the truth and the model's predictions.

Pure (no boto3, no I/O), shared by the Ground Truth workforce and the Label Studio simulated annotator.

Every answer has one shape, pixels throughout:

    {"labels": ["circle", ...],                       # image-level labels, distinct, sorted
     "boxes": [{"label": "circle", "left": 10, "top": 20, "width": 50, "height": 40}, ...]}

Policies:
- ``oracle``: answers the truth; each truth label/box is answered wrongly with probability ``error_rate``
  (dropped, given another label of the label set, or for a box moved off its object), and with the same
  probability a wrong label is added. Without truth (an image not made by the synthetic generator) the
  oracle cannot know better than the model and accepts the predictions as they are.
- ``accept-all``: accepts the predictions as they are.
- ``reject-all``: rejects every prediction and adds nothing.
- ``careless``: clicks through: with probability ``error_rate`` answers at random (a random subset
  of the label set; in a box task, random boxes), otherwise accepts the predictions as they are.

A crew of annotators of different quality (``crew``/``parse_crew``): each has its own policy and
error rate; the Ground Truth workforce and the Label Studio annotator draw the workers of an image
from it, so consensus, the review round and the noise check can be measured.

Helpers turn an answer into the two worker-response shapes the emulator writes:
``verification_answer`` (the custom verification task of docs/contracts.md) and
``bounding_box_answer`` (the output of the ``crowd-bounding-box`` element used by the built-in box tasks).
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Iterable, Sequence

POLICIES = ("oracle", "accept-all", "reject-all", "careless")
BOX_KEYS = ("left", "top", "width", "height")


def normalize(answer: dict | None) -> dict:
    """An answer (or truth, or prediction) in canonical form: distinct sorted labels, integer pixel boxes.

    Labels of boxes are image-level labels too, so they are folded into ``labels``.
    """
    answer = answer or {}
    boxes = [_box(b) for b in answer.get("boxes") or []]
    labels = set(answer.get("labels") or []) | {b["label"] for b in boxes}
    return {"labels": sorted(labels), "boxes": boxes}


def worker_answer(
    truth: dict | None,
    predicted: dict | None,
    policy: str,
    rng: random.Random,
    error_rate: float = 0.0,
    label_set: Sequence[str] = (),
    image_size: tuple[int, int] | None = None,
) -> dict:
    """The final answer of one worker for one image.

    truth / predicted: ``{"labels": [...], "boxes": [...]}`` in pixels (either key may be missing).
    label_set: the task's labels, used by the oracle to pick a wrong label.
    image_size: (width, height), keeps a wrong box inside the image.
    """
    if policy not in POLICIES:
        raise ValueError(f"unknown workforce policy {policy!r}; use one of {', '.join(POLICIES)}")
    if not 0.0 <= error_rate <= 1.0:
        raise ValueError(f"error_rate must be between 0 and 1, got {error_rate!r}")
    predicted = normalize(predicted)
    if policy == "reject-all":
        return {"labels": [], "boxes": []}
    if policy == "careless":
        return _careless(predicted, rng, error_rate, label_set, image_size, truth)
    if policy == "accept-all" or truth is None:
        return predicted
    return _oracle(normalize(truth), rng, error_rate, label_set, image_size, predicted["boxes"])


# A person leaves a predicted box alone when it already fits the object this well.
GOOD_ENOUGH_IOU = 0.9


def _oracle(truth: dict, rng: random.Random, error_rate: float, label_set: Sequence[str],
            image_size: tuple[int, int] | None, predicted_boxes: Sequence[dict] = ()) -> dict:
    from rekfeedback.core.boxes import iou

    others = lambda name: [x for x in label_set if x != name]  # noqa: E731
    boxes = []
    for box in truth["boxes"]:
        if rng.random() >= error_rate:
            fits = [p for p in predicted_boxes if p.get("label") == box["label"] and iou(p, box) >= GOOD_ENOUGH_IOU]
            boxes.append(dict(fits[0]) if fits else dict(box))
            continue
        mistake = rng.choice(("drop", "relabel", "misplace"))
        if mistake == "relabel" and others(box["label"]):
            boxes.append({**box, "label": rng.choice(others(box["label"]))})
        elif mistake == "misplace":
            boxes.append(_misplaced(box, image_size))
        # "drop" (or a relabel with no other label to choose): the worker misses the object.
    box_labels = {b["label"] for b in truth["boxes"]}
    labels = set()
    for name in truth["labels"]:
        if name in box_labels:
            continue  # follows its boxes
        if rng.random() >= error_rate:
            labels.add(name)
        elif others(name) and rng.random() < 0.5:
            labels.add(rng.choice(others(name)))
    labels |= {b["label"] for b in boxes}
    spare = [x for x in label_set if x not in labels]
    if spare and rng.random() < error_rate:
        extra = rng.choice(spare)
        labels.add(extra)
        if truth["boxes"]:
            # In a box task a wrongly seen object comes with a box.
            boxes.append({**_misplaced(rng.choice(truth["boxes"]), image_size), "label": extra})
    return {"labels": sorted(labels), "boxes": boxes}


def _careless(predicted: dict, rng: random.Random, error_rate: float, label_set: Sequence[str],
              image_size: tuple[int, int] | None, truth: dict | None) -> dict:
    if rng.random() >= error_rate or not label_set:
        return predicted
    names = sorted(rng.sample(list(label_set), rng.randint(0, min(2, len(label_set)))))
    boxed = bool(predicted["boxes"]) or bool(truth and normalize(truth)["boxes"])
    if not boxed:
        return {"labels": names, "boxes": []}
    width, height = image_size or (200, 200)
    boxes = []
    for name in names:
        w, h = rng.randint(8, max(8, width // 3)), rng.randint(8, max(8, height // 3))
        boxes.append({"label": name, "left": rng.randint(0, max(0, width - w)), "top": rng.randint(0, max(0, height - h)),
                      "width": w, "height": h})
    return {"labels": names, "boxes": boxes}


# --- a crew of annotators of different quality ------------------------------------------------------

@dataclass(frozen=True)
class Annotator:
    name: str
    policy: str = "oracle"
    error_rate: float = 0.0

    def answer(self, truth, predicted, rng, label_set=(), image_size=None) -> dict:
        return worker_answer(truth, predicted, self.policy, rng, self.error_rate, label_set, image_size)


# Two careful people, one average and one who clicks through (a third of their answers at random).
DEFAULT_CREW = "ann=oracle:0.02,ben=oracle:0.05,cem=oracle:0.12,dan=careless:0.35"


def parse_crew(text: str) -> list[Annotator]:
    """``name=policy:error_rate,...`` (e.g. DEFAULT_CREW) -> annotators; a bad entry names itself."""
    crew = []
    for entry in (e.strip() for e in (text or "").split(",")):
        if not entry:
            continue
        try:
            name, rest = entry.split("=", 1)
            policy, _, rate = rest.partition(":")
            annotator = Annotator(name.strip(), policy.strip(), float(rate or 0.0))
        except ValueError as exc:
            raise ValueError(f"annotator {entry!r}: expected name=policy:error_rate ({exc})") from exc
        if annotator.policy not in POLICIES or not 0 <= annotator.error_rate <= 1 or not annotator.name:
            raise ValueError(f"annotator {entry!r}: policy must be one of {', '.join(POLICIES)} and the error "
                             "rate between 0 and 1")
        crew.append(annotator)
    if len({a.name for a in crew}) != len(crew):
        raise ValueError(f"annotator names must be distinct: {text!r}")
    return crew


def assign(crew: Sequence[Annotator], workers: int, rng: random.Random) -> list[Annotator]:
    """The crew members who answer one image: distinct while the crew is large enough, drawn at random
    (whoever picks the task up first), so the careless one answers some images and not others."""
    if not crew:
        raise ValueError("the crew is empty")
    picked = rng.sample(list(crew), min(workers, len(crew)))
    while len(picked) < workers:
        picked.append(crew[len(picked) % len(crew)])
    return picked


def _misplaced(box: dict, image_size: tuple[int, int] | None) -> dict:
    """The same box moved by its own size so that it no longer overlaps its object, inside the image if known."""
    width, height = image_size or (box["left"] + 2 * box["width"], box["top"] + 2 * box["height"])
    moves = (
        {"left": box["left"] + box["width"]} if box["left"] + 2 * box["width"] <= width else None,
        {"left": box["left"] - box["width"]} if box["left"] - box["width"] >= 0 else None,
        {"top": box["top"] + box["height"]} if box["top"] + 2 * box["height"] <= height else None,
        {"top": box["top"] - box["height"]} if box["top"] - box["height"] >= 0 else None,
    )
    for move in moves:
        if move:
            return {**box, **move}
    # A box as large as the image cannot miss its object: shrink it to a corner instead.
    return {**box, "width": max(1, box["width"] // 4), "height": max(1, box["height"] // 4)}


def verification_answer(source_ref: str, predicted_names: Iterable[str], answer: dict) -> dict:
    """One image of the custom verification answer (docs/contracts.md):
    ``{"source-ref", "verdicts": [{"name", "present"}], "added": [...]}``, one verdict per distinct predicted name.
    """
    final = set(normalize(answer)["labels"])
    names = list(dict.fromkeys(predicted_names))
    return {
        "source-ref": source_ref,
        "verdicts": [{"name": n, "present": n in final} for n in names],
        "added": sorted(final - set(names)),
    }


def bounding_box_answer(answer: dict, width: int, height: int, initial: Sequence[dict] | None = None) -> dict:
    """The ``crowd-bounding-box`` element's output for this answer:
    ``{"boundingBoxes": [{label, left, top, width, height}], "inputImageProperties": {"height", "width"}}``,
    plus ``initialValueModified`` when the task was pre-filled (``initial`` given, adjustment tasks).
    """
    boxes = [_box(b) for b in normalize(answer)["boxes"]]
    out = {
        "boundingBoxes": [{"height": b["height"], "label": b["label"], "left": b["left"], "top": b["top"],
                           "width": b["width"]} for b in boxes],
        "inputImageProperties": {"height": int(height), "width": int(width)},
    }
    if initial is not None:
        out["initialValueModified"] = not same_boxes(boxes, initial)
    return out


def same_boxes(a: Iterable[dict], b: Iterable[dict]) -> bool:
    """True when both lists hold the same labelled boxes, in any order."""
    key = lambda box: (box["label"], *(int(round(box[k])) for k in BOX_KEYS))  # noqa: E731
    return sorted(map(key, a)) == sorted(map(key, b))


def _box(box: dict) -> dict:
    missing = [k for k in ("label", *BOX_KEYS) if k not in box]
    if missing:
        raise ValueError(f"box {box!r} lacks {', '.join(missing)} (pixel boxes need label, left, top, width, height)")
    return {"label": str(box["label"]), **{k: int(round(float(box[k]))) for k in BOX_KEYS}}
