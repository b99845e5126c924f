"""Box unit conversions, in one place.

Rekognition answers in ratios of the image (0..1), Ground Truth and the Rekognition manifest use
integer pixels, Label Studio uses percentages (0..100).
"""

from __future__ import annotations


def ratio_to_pixels(box: dict, width: int, height: int) -> dict:
    """Rekognition ratios ({left, top, width, height}, any key case) to integer pixels, clamped to the image."""
    b = {k.lower(): float(v) for k, v in box.items()}
    left = max(0, min(width, round(b["left"] * width)))
    top = max(0, min(height, round(b["top"] * height)))
    w = max(0, min(width - left, round(b["width"] * width)))
    h = max(0, min(height - top, round(b["height"] * height)))
    return {"left": left, "top": top, "width": w, "height": h}


def pixels_to_ratio(box: dict, width: int, height: int) -> dict:
    return {
        "left": box["left"] / width,
        "top": box["top"] / height,
        "width": box["width"] / width,
        "height": box["height"] / height,
    }


def pixels_to_percent(box: dict, width: int, height: int) -> dict:
    """Pixels to Label Studio's rectangle value (x, y, width, height in percent)."""
    return {
        "x": 100.0 * box["left"] / width,
        "y": 100.0 * box["top"] / height,
        "width": 100.0 * box["width"] / width,
        "height": 100.0 * box["height"] / height,
    }


def percent_to_pixels(value: dict, width: int, height: int) -> dict:
    """Label Studio's rectangle value to integer pixels, clamped to the image."""
    return ratio_to_pixels(
        {"left": value["x"] / 100.0, "top": value["y"] / 100.0,
         "width": value["width"] / 100.0, "height": value["height"] / 100.0},
        width, height,
    )


def iou(a: dict, b: dict) -> float:
    """Intersection over union of two pixel boxes; 0.0 when either is empty."""
    x1, y1 = max(a["left"], b["left"]), max(a["top"], b["top"])
    x2 = min(a["left"] + a["width"], b["left"] + b["width"])
    y2 = min(a["top"] + a["height"], b["top"] + b["height"])
    inter = max(0, x2 - x1) * max(0, y2 - y1)
    union = a["width"] * a["height"] + b["width"] * b["height"] - inter
    return inter / union if union > 0 else 0.0
