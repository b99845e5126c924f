"""What the report measures from a turn's answers: per-image verdicts (boxes matched by IoU), the
reliability curve with its suggested auto-accept threshold, inter-worker agreement, and the cost.

Pure; ``core.report.compute_figures`` puts them together.
"""

from __future__ import annotations

import math
import statistics
from collections import defaultdict
from typing import Iterable, Mapping, Sequence

from rekfeedback.core.boxes import iou, ratio_to_pixels

# Recalled us-east-1 list prices (docs: ../shared/reference/aws-formats.md section 6, unverified);
# they are parameters precisely because they differ by region, tier and workforce.
DEFAULT_PRICE_PER_IU_HOUR = 4.0
DEFAULT_PRICE_PER_OBJECT = 0.08
DEFAULT_PRICE_PER_TRAINING_HOUR = 1.0

AGREEMENT_BINS = 5


def compare_image(prediction: Mapping, answer: Mapping, *, match_iou: float = 0.1) -> list[dict]:
    """What the humans did to each predicted label of one image.

    Returns one entry per predicted label (`outcome` confirmed or rejected, with `confidence`;
    matched boxes carry `iou` and `adjusted`) and one per final label or box no prediction
    accounts for (`outcome` added).
    """
    pred_labels = list(prediction.get("labels") or [])
    ref = prediction.get("source-ref") or answer.get("source-ref")
    boxes_mode = answer.get("kind") == "boxes"
    final_names = list(answer.get("labels") or [])
    final_boxes = list(answer.get("boxes") or []) if boxes_mode else []
    boxed = [p for p in pred_labels if p.get("box")] if boxes_mode else []
    unboxed = [p for p in pred_labels if not (boxes_mode and p.get("box"))]
    results: list[dict] = []

    used_f: set[int] = set()
    if boxed:
        width = answer.get("width") or prediction.get("width")
        height = answer.get("height") or prediction.get("height")
        if not width or not height:
            raise ValueError(
                f"answer for {ref!r} has boxes but neither it nor its prediction line gives the image "
                "width/height; re-run the review step so the answer carries them")
        pred_px = [ratio_to_pixels(p["box"], int(width), int(height)) for p in boxed]
        # Greedy by IoU, best pairs first: the usual one-to-one matching for detection.
        pairs = sorted(
            ((iou(pb, _px(fb)), i, j) for i, pb in enumerate(pred_px)
             for j, fb in enumerate(final_boxes) if fb.get("label") == boxed[i]["name"]),
            key=lambda t: (-t[0], t[1], t[2]),
        )
        matched: dict[int, tuple[int, float]] = {}
        for score, i, j in pairs:
            if score < match_iou or score <= 0.0 or i in matched or j in used_f:
                continue
            used_f.add(j)
            matched[i] = (j, score)
        for i, p in enumerate(boxed):
            base = {"name": p["name"], "confidence": float(p.get("confidence") or 0.0)}
            if i in matched:
                j, score = matched[i]
                fb = final_boxes[j]
                adjusted = fb.get("status") == "adjusted" or _px(fb) != pred_px[i]
                results.append({**base, "outcome": "confirmed", "iou": score, "adjusted": adjusted})
            else:
                results.append({**base, "outcome": "rejected", "iou": None, "adjusted": False})
    for j, fb in enumerate(final_boxes):
        if j not in used_f:
            results.append({"name": fb["label"], "outcome": "added", "confidence": None})

    accounted = {fb.get("label") for fb in final_boxes}
    for p in unboxed:
        outcome = "confirmed" if p["name"] in final_names else "rejected"
        results.append({"name": p["name"], "confidence": float(p.get("confidence") or 0.0),
                        "outcome": outcome, "iou": None, "adjusted": False})
        accounted.add(p["name"])
    for name in dict.fromkeys(final_names):
        if name not in accounted:
            results.append({"name": name, "outcome": "added", "confidence": None})
    return results


# --- calibration -------------------------------------------------------------------------------

def reliability_curve(
    outcomes: Iterable[tuple[float, bool]],
    edges: Sequence[float],
    *,
    target_error: float,
    min_support: int,
) -> dict:
    """Confirmation rate per confidence bucket and the lowest safe auto-accept threshold.

    A candidate threshold is a bucket's lower edge; its expected error is 1 - the confirmation
    rate of every reviewed prediction at or above it (so buckets weigh by their counts). The
    suggested threshold is the lowest candidate with at least `min_support` predictions above it
    and an expected error at most `target_error`.
    """
    n = len(edges) - 1
    count = [0] * n
    confirmed = [0] * n
    conf_sum = [0.0] * n
    outside = 0
    for confidence, ok in outcomes:
        k = _bucket_index(confidence, edges)
        if k is None:
            outside += 1
            continue
        count[k] += 1
        confirmed[k] += int(ok)
        conf_sum[k] += confidence
    rows = [
        {"lower": edges[k], "upper": edges[k + 1], "count": count[k], "confirmed": confirmed[k],
         "rate": _ratio(confirmed[k], count[k]),
         "mean_confidence": (conf_sum[k] / count[k]) if count[k] else None}
        for k in range(n)
    ]
    candidates = []
    for k in range(n):
        support = sum(count[k:])
        ok = sum(confirmed[k:])
        candidates.append({"threshold": edges[k], "support": support,
                           "expected_error": (1.0 - ok / support) if support else None})
    choice = next((c for c in candidates if c["support"] >= max(1, min_support)
                   and c["expected_error"] is not None and c["expected_error"] <= target_error + 1e-12),
                  None)
    total = sum(count)
    if choice:
        reason = (f"lowest threshold whose expected error ({choice['expected_error']:.1%}) is at most "
                  f"the target ({target_error:.1%}) over {choice['support']} reviewed predictions")
    elif total == 0:
        reason = "no human-reviewed predictions in this turn"
    elif total < min_support:
        reason = f"only {total} reviewed predictions; at least {min_support} are needed"
    else:
        reason = f"no threshold keeps the expected error at most {target_error:.1%}"
    return {
        "buckets": rows,
        "candidates": candidates,
        "reviewed": total,
        "outside_buckets": outside,
        "target_error": target_error,
        "min_support": min_support,
        "threshold": choice["threshold"] if choice else None,
        "threshold_error": choice["expected_error"] if choice else None,
        "threshold_support": choice["support"] if choice else None,
        "reason": reason,
    }


# --- agreement ---------------------------------------------------------------------------------

def agreement_figures(answers: Iterable[tuple[float, set[str]]], bins: int = AGREEMENT_BINS) -> dict:
    """Distribution of inter-worker agreement over answers several workers gave."""
    values: list[float] = []
    per_label: dict[str, list[float]] = defaultdict(list)
    for value, names in answers:
        if not 0.0 <= value <= 1.0:
            raise ValueError(f"agreement must be between 0 and 1, got {value!r}")
        values.append(value)
        for name in names:
            per_label[name].append(value)
    hist = [0] * bins
    for v in values:
        hist[min(bins - 1, int(round(v * bins, 9)))] += 1
    return {
        "answers": len(values),
        "mean": statistics.fmean(values) if values else None,
        "median": statistics.median(values) if values else None,
        "min": min(values) if values else None,
        "unanimous": sum(1 for v in values if v >= 1.0 - 1e-9),
        "histogram": [{"lower": k / bins, "upper": (k + 1) / bins, "count": hist[k]} for k in range(bins)],
        "by_label": {name: statistics.fmean(v) for name, v in sorted(per_label.items())},
    }


# --- cost --------------------------------------------------------------------------------------

def cost_figures(
    *,
    inference_unit_hours: float,
    price_per_iu_hour: float,
    human_objects: int,
    price_per_object: float,
    workforce_price_per_object: float = 0.0,
    training_hours: float = 0.0,
    price_per_training_hour: float = DEFAULT_PRICE_PER_TRAINING_HOUR,
    human_images: int | None = None,
) -> dict:
    for name, value in (("price_per_iu_hour", price_per_iu_hour), ("price_per_object", price_per_object),
                        ("workforce_price_per_object", workforce_price_per_object),
                        ("price_per_training_hour", price_per_training_hour), ("human_objects", human_objects)):
        if value is None or value < 0 or not math.isfinite(value):
            raise ValueError(f"{name} must be a finite number >= 0, got {value!r}")
    inference = inference_unit_hours * price_per_iu_hour
    review = human_objects * (price_per_object + workforce_price_per_object)
    training = training_hours * price_per_training_hour
    total = inference + review + training
    images = human_objects if human_images is None else human_images
    return {
        "currency": "USD",
        "inference_unit_hours": inference_unit_hours,
        "price_per_iu_hour": price_per_iu_hour,
        "inference": round(inference, 4),
        "human_objects": human_objects,
        "price_per_object": price_per_object,
        "workforce_price_per_object": workforce_price_per_object,
        "human_review": round(review, 4),
        "training_hours": training_hours,
        "price_per_training_hour": price_per_training_hour,
        "training": round(training, 4),
        "total": round(total, 4),
        "per_human_image": round(total / images, 4) if images else None,
    }


# --- across turns ------------------------------------------------------------------------------

def _bucket_index(confidence: float, edges: Sequence[float]) -> int | None:
    if confidence < edges[0] or confidence > edges[-1]:
        return None
    for k in range(len(edges) - 1):
        if confidence < edges[k + 1]:
            return k
    return len(edges) - 2  # the top edge belongs to the last bucket


def _px(box: Mapping) -> dict:
    return {k: box[k] for k in ("left", "top", "width", "height")}


def _ratio(a: int, b: int) -> float | None:
    return a / b if b else None
