"""What selection needs from each DetectCustomLabels answer, kept at inference time.

When selection is on, inference asks the model for labels down to `floor(min_confidence)` and then
applies the user's `min_confidence` (and `max_results`) itself, so the labels humans see are exactly
those a call with the user's own MinConfidence returns; what lies below is kept apart, as signals:

    "signals": {"floor": 25.0, "threshold": 50.0, "margin": 12.5, "near_threshold": 2,
                "below": [{"name", "confidence", "box"}, ...], "descriptor": "<hex>", "descriptor_bytes": 5120}

- `margin`: the smallest gap, over the shown labels, between a label and its best rival (another
  label for the same box, or the next label of the image for classification); 100 when nothing rivals.
- `near_threshold`: labels within `NEAR_THRESHOLD` points of the threshold, on either side.
- `below`: the candidates under the threshold (at most `MAX_BELOW`, highest first): possible misses.
- `descriptor`: a 64-bit difference hash of a grey 9x8 thumbnail plus the mean colours of a 2x2
  thumbnail, for diversity; `descriptor_bytes`: what reading the image for it cost.

No Airflow or boto3 import: the operator injects the bytes.
"""

from __future__ import annotations

import io

from PIL import Image

from rekfeedback.core.boxes import iou

# How far below the user's threshold labels are asked for: enough to see the rival of a shown label
# and the near misses, not so low that every speck the model considers comes back.
SIGNAL_BAND = 25.0
NEAR_THRESHOLD = 10.0
MAX_BELOW = 20
SAME_BOX_IOU = 0.5


def detect_floor(min_confidence: float | None) -> float | None:
    """MinConfidence to call with when signals are wanted; None when the user leaves the threshold to the
    model (its per-label thresholds cannot be re-applied here, so the call stays as the user set it)."""
    if min_confidence is None:
        return None
    return max(0.0, float(min_confidence) - SIGNAL_BAND)


def split_response(response: dict, min_confidence: float | None, max_results: int | None,
                   floor: float | None) -> tuple[dict, dict]:
    """(the answer as the user's own call would give it, the signals).

    The service ranks labels by confidence, highest first, and MaxResults keeps the first ones: so
    filtering on `min_confidence` and keeping the first `max_results` of a call made with a lower
    MinConfidence and no MaxResults gives the same labels in the same order.
    """
    labels = list(response.get("CustomLabels") or [])
    if min_confidence is None:
        shown, below = labels, []
    else:
        shown = [lab for lab in labels if float(lab["Confidence"]) >= min_confidence]
        below = [lab for lab in labels if float(lab["Confidence"]) < min_confidence]
    if max_results is not None:
        shown = sorted(shown, key=lambda lab: -float(lab["Confidence"]))[:max_results]
    signals = {
        "floor": floor,
        "threshold": min_confidence,
        "margin": round(_margin(shown, labels), 3),
        "near_threshold": (0 if min_confidence is None else
                           sum(1 for lab in labels if abs(float(lab["Confidence"]) - min_confidence) <= NEAR_THRESHOLD)),
        "below": [_label(lab) for lab in sorted(below, key=lambda lab: -float(lab["Confidence"]))[:MAX_BELOW]],
    }
    return {**response, "CustomLabels": shown}, signals


def _ratio_box(label: dict) -> dict | None:
    box = (label.get("Geometry") or {}).get("BoundingBox")
    if not box:
        return None
    return {k: float(box[K]) for k, K in (("left", "Left"), ("top", "Top"), ("width", "Width"), ("height", "Height"))}


def _label(label: dict) -> dict:
    return {"name": label["Name"], "confidence": round(float(label["Confidence"]), 3), "box": _ratio_box(label)}


def _margin(shown: list[dict], candidates: list[dict]) -> float:
    """Smallest gap between a shown label and its best rival (100 when no label has a rival or nothing is shown)."""
    gaps = []
    for lab in shown:
        box = _ratio_box(lab)
        rivals = []
        for other in candidates:
            if other is lab or other["Name"] == lab["Name"]:
                continue
            other_box = _ratio_box(other)
            if box is None and other_box is None:
                rivals.append(float(other["Confidence"]))
            elif box is not None and other_box is not None and iou(box, other_box) >= SAME_BOX_IOU:
                rivals.append(float(other["Confidence"]))
        gaps.append(abs(float(lab["Confidence"]) - max(rivals, default=0.0)))
    return min(gaps, default=100.0)


# --- the per-image descriptor -------------------------------------------------------------------

def image_descriptor(data: bytes) -> str:
    """Hex: 16 digits of difference hash, then 12 bytes of 2x2 mean colour (24 digits)."""
    img = Image.open(io.BytesIO(data))
    img.draft("RGB", (64, 64))  # a JPEG decodes at 1/8 scale: a thumbnail costs a fraction of a full decode
    img = img.convert("RGB")
    grey = img.convert("L").resize((9, 8), Image.Resampling.BOX).tobytes()
    bits = 0
    for y in range(8):
        for x in range(8):
            bits = (bits << 1) | (grey[y * 9 + x] > grey[y * 9 + x + 1])
    colour = img.resize((2, 2), Image.Resampling.BOX).tobytes()
    return f"{bits:016x}" + colour.hex()


def descriptor_distance(a: str | None, b: str | None) -> float:
    """0 (the same picture) .. 1 (nothing alike): half the hash's Hamming share, half the colour difference."""
    if not a or not b or len(a) != len(b) or len(a) < 16:
        return 1.0
    hamming = (int(a[:16], 16) ^ int(b[:16], 16)).bit_count() / 64.0
    ca, cb = bytes.fromhex(a[16:]), bytes.fromhex(b[16:])
    colour = sum(abs(x - y) for x, y in zip(ca, cb)) / (255.0 * len(ca)) if ca else 0.0
    return 0.5 * hamming + 0.5 * colour
