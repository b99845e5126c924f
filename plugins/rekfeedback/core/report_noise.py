"""The report's list of doubted answers: each with a thumbnail (the answer's boxes drawn on it) and the reason.

Pure (Pillow, no Airflow or boto3): the report operator reads the images and passes their bytes.
Thumbnails are embedded as data URIs, so the report stays one self-contained file that does not
depend on presigned URLs (which expire) or on the reader's access to the bucket.
"""

from __future__ import annotations

import base64
import io
from typing import Iterable

MAX_LISTED = 60  # the report lists at most this many; flags.jsonl has them all
THUMB_PX = 128


def thumbnail(image_bytes: bytes | None, boxes: Iterable[dict] = (), max_side: int = THUMB_PX) -> str | None:
    """A JPEG data URI of the image scaled to `max_side`, with the answer's boxes (pixels) drawn; None if unreadable."""
    if not image_bytes:
        return None
    from PIL import Image, ImageDraw

    try:
        with Image.open(io.BytesIO(image_bytes)) as img:
            img = img.convert("RGB")
            scale = max_side / max(img.width, img.height)
            draw = ImageDraw.Draw(img)
            for b in boxes:
                draw.rectangle([b["left"], b["top"], b["left"] + b["width"], b["top"] + b["height"]],
                               outline=(220, 30, 30), width=max(2, int(2 / scale)))
            img.thumbnail((max_side, max_side))
            out = io.BytesIO()
            img.save(out, "JPEG", quality=80)
    except Exception:  # noqa: BLE001 - a corrupt image gets no thumbnail, the row stays
        return None
    return "data:image/jpeg;base64," + base64.b64encode(out.getvalue()).decode()


def noise_rows(flags: list[dict], thumbnails: dict[str, str | None]) -> list[dict]:
    """The figures of the section: one row per doubted answer (at most MAX_LISTED), reasons in words."""
    rows = []
    for f in flags[:MAX_LISTED]:
        rows.append({"source-ref": f["source-ref"], "action": f["action"], "labels": f.get("labels") or [],
                     "reasons": [r["detail"] if r.get("detail") else r["code"] for r in f.get("reasons") or []],
                     "codes": [r["code"] for r in f.get("reasons") or []],
                     "thumbnail": thumbnails.get(f["source-ref"])})
    return rows
