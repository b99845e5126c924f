"""Synthetic images with known truth, for the emulator, the tests and the demo.

Each image is a plain, slightly noisy background with one to three shapes (circle, square, triangle,
star). The shape defines the label; colour, size, position, a small rotation and stretch vary at
random, so a model fitted on a few examples is mediocre and one fitted on many is good. Everything is
drawn from `random.Random(seed)`: the same seed gives byte-identical objects, so a rerun overwrites
the same keys with the same content (safe to retry).

Layout under `s3://<bucket>/<prefix>/`:
- `images/`  the unlabelled pool the loop runs inference on (JPEG and PNG of varied sizes), plus a few
  bad objects (corrupt .jpg, a .txt, a .png that is really text) for bad-input handling;
- `seed/`, `test/`  the images of the labelled seed manifest (version 1's training data) and the
  held-out test manifest;
- `manifests/seed.manifest`, `manifests/test.manifest`  Ground Truth format, `manifests/truth.jsonl` the
  pool's truth (one line per image, for scoring the loop).
Truth is also in each image object's user metadata `truth`:
`{"labels": [...], "boxes": [{"label", "left", "top", "width", "height"}]}` (pixels).
"""

from __future__ import annotations

import io
import json
import math
import random
from dataclasses import dataclass

from PIL import Image, ImageDraw

LABELS = ("circle", "square", "triangle", "star")
# Every shape the generator draws; the default label set is LABELS, the labeling-efficiency benchmark
# uses more classes (shapes that resemble each other: hexagon/circle, diamond/square, ellipse/rectangle).
SHAPES = (*LABELS, "diamond", "hexagon", "cross", "ellipse", "rectangle")
KINDS = ("detection", "classification")
SIZES = ((160, 120), (200, 200), (240, 180), (320, 240), (256, 320), (400, 300), (480, 360), (640, 480))
CREATION_DATE = "2026-01-01T00:00:00.000"  # fixed, so manifests are byte-identical across runs
DETECTION_ATTRIBUTE = "bbox"
CLASSIFICATION_ATTRIBUTE = "shape"


@dataclass
class SyntheticImage:
    key: str
    width: int
    height: int
    fmt: str  # "jpeg" | "png"
    body: bytes
    truth: dict  # {"labels": [...], "boxes": [...]}


def generate(s3_client, bucket: str, prefix: str, n: int = 60, seed: int = 7, *, n_seed: int = 8, n_test: int = 40,
             kind: str = "detection", labels: tuple[str, ...] = LABELS, bad_files: bool = True,
             create_bucket: bool = True) -> dict:
    """Make the images and manifests and upload them; return a JSON-able summary with every URI."""
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {KINDS}, got {kind!r}")
    unknown = set(labels) - set(SHAPES)
    if unknown or not labels:
        raise ValueError(f"labels must be a non-empty subset of {SHAPES}, got {labels!r}")
    if n < 0 or n_seed < 0 or n_test < 0:
        raise ValueError("n, n_seed and n_test must be >= 0")
    prefix = prefix.strip("/")
    base = f"{prefix}/" if prefix else ""
    rng = random.Random(seed)
    pool = [make_image(rng, f"{base}images/img-{i:05d}", labels) for i in range(1, n + 1)]
    # The seed set is balanced and single-object, like a small first labelling effort.
    seeds = [make_image(rng, f"{base}seed/seed-{i:05d}", labels, only=labels[(i - 1) % len(labels)])
             for i in range(1, n_seed + 1)]
    tests = [make_image(rng, f"{base}test/test-{i:05d}", labels) for i in range(1, n_test + 1)]
    bad = bad_objects(rng, f"{base}images/") if bad_files else []

    if create_bucket:
        _ensure_bucket(s3_client, bucket)
    for img in (*pool, *seeds, *tests):
        s3_client.put_object(Bucket=bucket, Key=img.key, Body=img.body, ContentType=f"image/{img.fmt}",
                             Metadata={"truth": json.dumps(img.truth, separators=(",", ":"))})
    for key, body, content_type in bad:
        s3_client.put_object(Bucket=bucket, Key=key, Body=body, ContentType=content_type)

    seed_key, test_key, truth_key = f"{base}manifests/seed.manifest", f"{base}manifests/test.manifest", f"{base}manifests/truth.jsonl"
    s3_client.put_object(Bucket=bucket, Key=seed_key, Body=manifest(bucket, seeds, kind).encode())
    s3_client.put_object(Bucket=bucket, Key=test_key, Body=manifest(bucket, tests, kind).encode())
    truth_lines = "".join(json.dumps({"source-ref": f"s3://{bucket}/{img.key}", "width": img.width, "height": img.height,
                                      **img.truth}) + "\n" for img in pool)
    s3_client.put_object(Bucket=bucket, Key=truth_key, Body=truth_lines.encode())
    counts: dict[str, int] = {}
    for img in pool:
        for label in img.truth["labels"]:
            counts[label] = counts.get(label, 0) + 1
    return {
        "bucket": bucket, "prefix": prefix, "seed": seed, "kind": kind, "labels": list(labels),
        "images_prefix_uri": f"s3://{bucket}/{base}images/",
        "images": len(pool), "image_keys": [img.key for img in pool],
        "bad_keys": [key for key, _, _ in bad],
        "seed_manifest_uri": f"s3://{bucket}/{seed_key}", "seed_images": len(seeds),
        "test_manifest_uri": f"s3://{bucket}/{test_key}", "test_images": len(tests),
        "truth_uri": f"s3://{bucket}/{truth_key}", "label_counts": counts,
        "formats": {"jpeg": sum(img.fmt == "jpeg" for img in pool), "png": sum(img.fmt == "png" for img in pool)},
    }


def make_image(rng: random.Random, stem: str, labels: tuple[str, ...] = LABELS, only: str | None = None,
               weights: tuple[float, ...] | None = None, hard: bool = False,
               sizes: tuple[tuple[int, int], ...] = SIZES) -> SyntheticImage:
    """One image; `weights` (one per label) skews how often each label is drawn; `hard` draws small,
    strongly stretched shapes, which sit near the boundary between similar classes."""
    width, height = rng.choice(sizes)
    background = _background_colour(rng)
    img = Image.new("RGB", (width, height), background)
    # Faint sensor-like noise, so the background is plain but not a single flat value.
    # (Drawn from rng, not Image.effect_noise, whose C-level generator would break determinism.)
    noise = Image.frombytes("L", (width, height), rng.randbytes(width * height)).convert("RGB")
    img = Image.blend(img, noise, 0.05)
    draw = ImageDraw.Draw(img)
    count = 1 if only else rng.choices((1, 2, 3), weights=(6, 3, 1))[0]
    boxes: list[dict] = []
    for _ in range(count):
        label = only or (rng.choices(labels, weights=weights)[0] if weights else rng.choice(labels))
        placed = _place(rng, width, height, boxes, small=hard)
        if placed is None:
            continue
        cx, cy, size = placed
        points = _shape(rng, label, cx, cy, size, stretch=0.3 if hard else 0.15)
        colour = _shape_colour(rng, background)
        if label in ("circle", "ellipse"):
            draw.ellipse(points, fill=colour)
            xs, ys = (points[0], points[2]), (points[1], points[3])
        else:
            draw.polygon(points, fill=colour)
            xs, ys = [p[0] for p in points], [p[1] for p in points]
        left, top = max(0, math.floor(min(xs))), max(0, math.floor(min(ys)))
        right, bottom = min(width, math.ceil(max(xs)) + 1), min(height, math.ceil(max(ys)) + 1)
        boxes.append({"label": label, "left": left, "top": top, "width": right - left, "height": bottom - top})
    for _ in range(rng.randint(0, 6)):  # specks: too small to be objects, there to be ignored
        x, y = rng.randrange(width), rng.randrange(height)
        draw.point((x, y), fill=_shape_colour(rng, background))
    fmt = "jpeg" if rng.random() < 0.7 else "png"
    out = io.BytesIO()
    if fmt == "jpeg":
        img.save(out, "JPEG", quality=rng.choice((75, 85, 92)))
    else:
        img.save(out, "PNG", compress_level=1)  # noise compresses badly anyway; favour speed
    truth = {"labels": sorted({b["label"] for b in boxes}), "boxes": boxes}
    return SyntheticImage(f"{stem}.{'jpg' if fmt == 'jpeg' else 'png'}", width, height, fmt, out.getvalue(), truth)


def bad_objects(rng: random.Random, base: str) -> list[tuple[str, bytes, str]]:
    """Objects a real bucket holds next to the images: truncated and garbage JPEGs, text, a mislabelled PNG."""
    good = io.BytesIO()
    Image.new("RGB", (200, 150), (200, 30, 30)).save(good, "JPEG")
    truncated = good.getvalue()[: len(good.getvalue()) // 3]
    garbage = b"\xff\xd8\xff\xe0" + bytes(rng.randrange(256) for _ in range(2048))
    return [
        (f"{base}corrupt-00001.jpg", truncated, "image/jpeg"),
        (f"{base}corrupt-00002.jpg", garbage, "image/jpeg"),
        (f"{base}notes.txt", b"These are notes, not an image.\n", "text/plain"),
        (f"{base}not-an-image.png", b"this file claims to be a PNG but is plain text\n", "image/png"),
    ]


def manifest(bucket: str, images: list[SyntheticImage], kind: str) -> str:
    """Ground Truth manifest lines in the format Rekognition imports (one JSON object per line)."""
    lines = []
    for img in images:
        line: dict = {"source-ref": f"s3://{bucket}/{img.key}"}
        meta = {"human-annotated": "yes", "creation-date": CREATION_DATE, "job-name": "labeling-job/synthetic-seed"}
        if kind == "detection":
            names = sorted({b["label"] for b in img.truth["boxes"]})
            ids = {name: i for i, name in enumerate(names)}
            line[DETECTION_ATTRIBUTE] = {
                "image_size": [{"width": img.width, "height": img.height, "depth": 3}],
                "annotations": [{"class_id": ids[b["label"]], **{k: b[k] for k in ("left", "top", "width", "height")}}
                                for b in img.truth["boxes"]],
            }
            line[f"{DETECTION_ATTRIBUTE}-metadata"] = {
                "objects": [{"confidence": 1} for _ in img.truth["boxes"]],
                "class-map": {str(i): name for name, i in ids.items()},
                "type": "groundtruth/object-detection", **meta,
            }
        else:
            # Several image-level labels are several attributes on the line (Rekognition's multi-label form).
            for i, name in enumerate(img.truth["labels"]):
                attr = CLASSIFICATION_ATTRIBUTE if i == 0 else f"{CLASSIFICATION_ATTRIBUTE}{i}"
                line[attr] = 0
                line[f"{attr}-metadata"] = {"class-name": name, "confidence": 1.0,
                                            "type": "groundtruth/image-classification", **meta}
        lines.append(json.dumps(line, separators=(",", ":")))
    return "\n".join(lines) + ("\n" if lines else "")


# ---------------------------------------------------------------------------------------------- drawing


def _background_colour(rng: random.Random) -> tuple[int, int, int]:
    if rng.random() < 0.75:
        v = rng.randint(200, 250)
        return (v + rng.randint(-8, 5), v + rng.randint(-8, 5), v + rng.randint(-8, 5))
    v = rng.randint(15, 50)
    return (v, v + rng.randint(0, 10), v + rng.randint(0, 15))


def _shape_colour(rng: random.Random, background: tuple[int, int, int]) -> tuple[int, int, int]:
    # Any hue, but always far from the background in at least one channel, so the shape stands out.
    while True:
        colour = tuple(rng.randint(0, 255) for _ in range(3))
        if max(abs(a - b) for a, b in zip(colour, background)) >= 110:
            return colour


def _place(rng: random.Random, width: int, height: int, taken: list[dict], small: bool = False):
    short = min(width, height)
    for _ in range(30):
        # the shape's radius-like half extent, doubled below
        size = (rng.uniform(0.09, 0.14) if small else rng.uniform(0.16, 0.38)) * short
        half = size / 2 * 1.25  # stretch and rotation can grow the extent
        cx, cy = rng.uniform(half + 2, width - half - 2), rng.uniform(half + 2, height - half - 2)
        box = {"left": cx - half - 4, "top": cy - half - 4, "width": 2 * half + 8, "height": 2 * half + 8}
        if all(not _overlap(box, other) for other in taken):
            return cx, cy, size
    return None


def _overlap(a: dict, b: dict) -> bool:
    return not (a["left"] + a["width"] <= b["left"] or b["left"] + b["width"] <= a["left"]
                or a["top"] + a["height"] <= b["top"] or b["top"] + b["height"] <= a["top"])


def _shape(rng: random.Random, label: str, cx: float, cy: float, size: float, stretch: float = 0.15):
    r = size / 2
    # mild stretch: shapes are not perfect
    sx, sy = rng.uniform(1 - stretch, 1 + stretch), rng.uniform(1 - stretch, 1 + stretch)
    if label == "circle":
        return (cx - r * sx, cy - r * sy, cx + r * sx, cy + r * sy)
    if label == "ellipse":  # a flat circle, lying along x or y
        flat = rng.uniform(0.45, 0.65)
        fx, fy = (1.0, flat) if rng.random() < 0.5 else (flat, 1.0)
        return (cx - r * sx * fx, cy - r * sy * fy, cx + r * sx * fx, cy + r * sy * fy)
    if label in ("diamond", "hexagon"):
        sides = 4 if label == "diamond" else 6
        angle = math.radians(rng.uniform(-10, 10))
        pts = [(r * math.cos(math.radians(-90 + 360 * k / sides)), r * math.sin(math.radians(-90 + 360 * k / sides)))
               for k in range(sides)]
    elif label == "rectangle":
        angle = math.radians(rng.uniform(-8, 8) + rng.choice((0, 90)))
        flat = rng.uniform(0.4, 0.6)
        pts = [(x * r * 0.95, y * r * 0.95 * flat) for x, y in [(-1, -1), (1, -1), (1, 1), (-1, 1)]]
    elif label == "cross":  # a plus sign: arms a third of its extent wide
        angle = math.radians(rng.uniform(-12, 12))
        a, w = r * 0.95, r * 0.32
        pts = [(-w, -a), (w, -a), (w, -w), (a, -w), (a, w), (w, w), (w, a), (-w, a), (-w, w), (-a, w), (-a, -w), (-w, -w)]
    elif label == "square":
        corners = [(-1, -1), (1, -1), (1, 1), (-1, 1)]
        angle = math.radians(rng.uniform(-12, 12))
        pts = [(x * r * 0.9, y * r * 0.9) for x, y in corners]
    elif label == "triangle":
        angle = math.radians(rng.uniform(-15, 15) + rng.choice((0, 180)))
        pts = [(r * math.cos(math.radians(a)), r * math.sin(math.radians(a))) for a in (-90, 30, 150)]
    else:  # star: five points, inner radius 0.45
        angle = math.radians(rng.uniform(0, 72))
        pts = [((r if k % 2 == 0 else r * 0.45) * math.cos(math.radians(-90 + 36 * k)),
                (r if k % 2 == 0 else r * 0.45) * math.sin(math.radians(-90 + 36 * k))) for k in range(10)]
    cos, sin = math.cos(angle), math.sin(angle)
    return [(cx + (x * cos - y * sin) * sx, cy + (x * sin + y * cos) * sy) for x, y in pts]


def _ensure_bucket(s3_client, bucket: str) -> None:
    from botocore.exceptions import ClientError

    try:
        s3_client.head_bucket(Bucket=bucket)
    except ClientError:
        s3_client.create_bucket(Bucket=bucket)
