"""The label-noise check before the merge: which human answers are probably wrong, and why.

Pure (no Airflow, no boto3). An answer is flagged for any of these reasons, each recorded:

- `reviewers-disagreed`: several workers answered and the agreement is below `agreement_threshold`
  (the consolidated answer is pending, see `core.consensus`);
- `model-disagrees`: the model is confidently of another opinion: a label or box the model gave with
  at least `confidence` percent is missing from the answer (removed, or relabelled);
- `far-box`: a box of the answer overlaps no predicted box (IoU below `far_iou`) and was drawn by no
  other worker (with one worker: none to back it);
- `cleanlab`: for boxes, cleanlab's `object_detection.filter.find_label_issues` (overlooked,
  swapped and badly located boxes, scored against the model's boxes over the whole turn).

Image-level labels use the rules only: measured with `bench/answer_quality.py`, cleanlab's
multi-label confident learning flagged nearly every image there, because the humans' job in this loop
is to correct the model, so "the model disagrees with the label" is mostly the model's own mistake
(confident learning assumes a model better than the labels), and Rekognition returns nothing below
MinConfidence to tell "unsure" from "absent".

cleanlab is an optional dependency, imported only when used, and needs enough answers for its
estimates (`cleanlab_min_answers`); without it, below that, or when it refuses the data, the rules
still apply and `check` says why cleanlab was not used. Nothing is dropped here: the caller routes the
flagged answers to the review round or holds them out of training, and lists them in the report.
"""

from __future__ import annotations

from typing import Iterable

from rekfeedback.core import boxes as boxlib

REASONS = ("reviewers-disagreed", "model-disagrees", "far-box", "cleanlab")
DEFAULT_CONFIDENCE = 90.0
FAR_IOU = 0.1
CLEANLAB_MIN_ANSWERS = 30


def check(answers: Iterable[dict], predictions: dict[str, dict], *, confidence: float = DEFAULT_CONFIDENCE,
          agreement_threshold: float = 0.6, far_iou: float = FAR_IOU, use_cleanlab: bool = True,
          cleanlab_min_answers: int = CLEANLAB_MIN_ANSWERS) -> dict:
    """Flags for the human answers: `{"flags": [{"source-ref", "reasons": [{"code", "detail"}]}], "cleanlab": str}`.

    `predictions` maps source-ref to its prediction line (docs/data-formats.md). Answers that are
    not human (auto-accepted: the model's own) are never flagged.
    """
    if not 0 <= confidence <= 100:
        raise ValueError(f"noise_confidence must be between 0 and 100, got {confidence!r}")
    human = [a for a in answers if a.get("human")]
    reasons: dict[str, list[dict]] = {a["source-ref"]: [] for a in human}
    for a in human:
        line = predictions.get(a["source-ref"]) or {}
        reasons[a["source-ref"]].extend(_rules(a, line, confidence, agreement_threshold, far_iou))
    note = "not used (use_cleanlab is off)"
    if use_cleanlab:
        note = _cleanlab(human, predictions, reasons, cleanlab_min_answers)
    flags = [{"source-ref": ref, "reasons": found} for ref, found in sorted(reasons.items()) if found]
    return {"flags": flags, "cleanlab": note, "checked": len(human)}


def _rules(answer: dict, line: dict, confidence: float, threshold: float, far_iou: float) -> list[dict]:
    out = []
    if answer.get("workers", 1) > 1 and answer.get("agreement", 1.0) < threshold:
        out.append({"code": "reviewers-disagreed",
                    "detail": f"{answer['workers']} workers, agreement {answer['agreement']:.0%} < {threshold:.0%}"})
    predicted = [p for p in line.get("labels") or [] if isinstance(p.get("confidence"), (int, float))]
    if answer["kind"] == "boxes":
        final = answer.get("boxes") or []
        pboxes = _predicted_boxes(line, answer.get("width"), answer.get("height"))
        for p in pboxes:
            if p["confidence"] < confidence:
                continue
            same = [b for b in final if b["label"] == p["label"] and boxlib.iou(b, p) >= 0.5]
            if not same:
                other = [b["label"] for b in final if boxlib.iou(b, p) >= 0.5]
                what = f"relabelled {other[0]!r}" if other else "removed"
                out.append({"code": "model-disagrees",
                            "detail": f"{p['label']!r} box at {p['confidence']:.0f}% {what}"})
        shares = (answer.get("consensus") or {}).get("box_agreement") or []
        for i, b in enumerate(final):
            backed = answer.get("workers", 1) > 1 and i < len(shares) and shares[i] * answer["workers"] >= 2
            if not backed and all(boxlib.iou(b, p) < far_iou for p in pboxes):
                out.append({"code": "far-box", "detail": f"{b['label']!r} box far from every prediction"
                                                         + ("" if answer.get("workers", 1) <= 1 else
                                                            " and every other worker")})
    else:
        final = set(answer.get("labels") or [])
        for p in predicted:
            if p["confidence"] >= confidence and p["name"] not in final:
                out.append({"code": "model-disagrees", "detail": f"{p['name']!r} at {p['confidence']:.0f}% removed"})
    return out


def _cleanlab(human: list[dict], predictions: dict[str, dict], reasons: dict[str, list[dict]],
              min_answers: int) -> str:
    notes = []
    for kind in ("boxes",):
        group = [a for a in human if a["kind"] == kind and predictions.get(a["source-ref"])]
        if not group:
            continue
        if len(group) < min_answers:
            notes.append(f"{kind}: not used ({len(group)} answers, needs {min_answers})")
            continue
        try:
            issues = _cleanlab_boxes(group, predictions)
        except ImportError:
            return "not installed (pip install cleanlab)"
        except (ValueError, IndexError, ZeroDivisionError) as exc:  # too little signal for its estimates
            notes.append(f"{kind}: not used ({type(exc).__name__}: {exc})"[:200])
            continue
        for a, bad in zip(group, issues):
            if bad:
                reasons[a["source-ref"]].append({"code": "cleanlab", "detail": f"confident learning ({kind})"})
        notes.append(f"{kind}: used on {len(group)} answers, {int(sum(bool(x) for x in issues))} issues")
    return "; ".join(notes) or "not used (no box answer with a prediction)"


def _classes(group: list[dict], predictions: dict[str, dict]) -> list[str]:
    names = set()
    for a in group:
        names |= set(a.get("labels") or [])
        names |= {p["name"] for p in predictions[a["source-ref"]].get("labels") or []}
    return sorted(names)


def _cleanlab_boxes(group, predictions):
    from multiprocessing.pool import ThreadPool

    import numpy as np
    from cleanlab.object_detection import filter as cleanlab_filter

    # cleanlab computes average precision per class in a multiprocessing Pool, a forked process even with
    # num_procs=1. Inside an Airflow task that is wrong twice: a Celery prefork worker is daemonic and may not
    # have children, and a fork beside other threads (dag.test, the triggerer's loop) can deadlock on a lock
    # held at fork time (seen: a pool worker waiting forever). Its per-image work is plain numpy, so a thread
    # pool of the same interface does it in this process.
    cleanlab_filter.Pool = ThreadPool
    find_label_issues = cleanlab_filter.find_label_issues

    classes = _classes(group, predictions)
    index = {n: i for i, n in enumerate(classes)}
    labels, preds = [], []
    for a in group:
        boxes = a.get("boxes") or []
        labels.append({"bboxes": np.array([_xyxy(b) for b in boxes], dtype=float).reshape(-1, 4),
                       "labels": np.array([index[b["label"]] for b in boxes], dtype=int)})
        line = predictions[a["source-ref"]]
        per_class = [[] for _ in classes]
        for p in _predicted_boxes(line):
            per_class[index[p["label"]]].append([*_xyxy(p), p["confidence"] / 100.0])
        preds.append([np.array(rows, dtype=float).reshape(-1, 5) for rows in per_class])
    return list(find_label_issues(labels, preds))


def _predicted_boxes(line: dict, width=None, height=None) -> list[dict]:
    """The prediction line's boxes in pixels, with their confidence."""
    width, height = width or line.get("width"), height or line.get("height")
    out = []
    for p in line.get("labels") or []:
        if p.get("box") and width and height and isinstance(p.get("confidence"), (int, float)):
            out.append({"label": p["name"], "confidence": float(p["confidence"]),
                        **boxlib.ratio_to_pixels(p["box"], int(width), int(height))})
    return out


def _xyxy(b: dict) -> list[float]:
    return [float(b["left"]), float(b["top"]), float(b["left"] + b["width"]), float(b["top"] + b["height"])]

