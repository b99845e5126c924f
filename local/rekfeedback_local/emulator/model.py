"""The small, real model behind the emulated Custom Labels versions.

Synthetic images are plain backgrounds with a few shapes. We find the foreground's connected
components, describe each with a handful of features and classify it by its nearest labelled
neighbours. Shape features (fill ratio, compactness, aspect, centroid offset) carry the label; colour
and size are deliberately included too: they vary at random in the synthetic data, so a model fitted
on a few examples is misled by chance neighbours, while a model fitted on many (and on the ambiguous
ones) is not. That makes more and better labels measurably better, as the feedback loop expects. Pure Python plus Pillow (no numpy in the pinned set), so images are analysed
at a reduced size and the results are cached by the caller.
"""

from __future__ import annotations

import heapq
import io
import math
from collections import deque
from dataclasses import dataclass, field

from PIL import Image, ImageChops, UnidentifiedImageError

from rekfeedback.core.boxes import iou as _iou

from . import manifests

_WORK_SIZE = 128  # longest side analysed; enough for plain shapes, cheap on two cores
_FOREGROUND_DELTA = 40  # per-channel difference from the background that counts as foreground
_MIN_AREA_SHARE = 0.003  # components smaller than this share of the image are specks, not objects
_IOU_MATCH = 0.5
_NEIGHBOURS = 7
_OVERALL_SHARE = 1.0  # with 8 seed images of 4 shapes F1 ~0.8; it keeps growing with more, and with 9 shapes


class InvalidImage(Exception):
    """Not a PNG or JPEG image Rekognition could decode."""


@dataclass
class Component:
    box: dict  # pixels of the original image: left, top, width, height
    features: tuple[float, ...]


@dataclass
class ImageInfo:
    width: int
    height: int
    format: str  # "PNG" | "JPEG"
    components: list[Component]


def analyse_image(data: bytes) -> ImageInfo:
    try:
        img = Image.open(io.BytesIO(data))
        fmt = img.format
        if fmt not in ("PNG", "JPEG"):
            raise InvalidImage(f"unsupported image format {fmt}")
        img.load()
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        raise InvalidImage(str(exc)) from exc
    width, height = img.size
    return ImageInfo(width, height, fmt, _components(img.convert("RGB")))


def _components(img: Image.Image) -> list[Component]:
    width, height = img.size
    scale = min(1.0, _WORK_SIZE / max(width, height))
    sw, sh = max(1, round(width * scale)), max(1, round(height * scale))
    small = img.resize((sw, sh), Image.Resampling.BOX) if scale < 1.0 else img
    # get_flattened_data replaces getdata from Pillow 12 on; both yield (r, g, b) tuples.
    flat = getattr(small, "get_flattened_data", None)
    pixels = list(flat() if flat else small.getdata())
    background = _border_median(pixels, sw, sh)
    diff = ImageChops.difference(small, Image.new("RGB", (sw, sh), background))
    r, g, b = diff.split()
    strongest = ImageChops.lighter(ImageChops.lighter(r, g), b)
    mask = bytearray(strongest.point(lambda v: 1 if v > _FOREGROUND_DELTA else 0).tobytes())
    min_area = max(6, int(_MIN_AREA_SHARE * sw * sh))
    found = []
    for start in range(sw * sh):
        if mask[start] != 1:
            continue
        members = _flood(mask, start, sw, sh)
        if len(members) >= min_area:
            found.append(_describe(members, pixels, sw, sh, width, height))
    return found


def _border_median(pixels: list, w: int, h: int) -> tuple[int, int, int]:
    border = pixels[:w] + pixels[-w:] + [pixels[y * w] for y in range(h)] + [pixels[y * w + w - 1] for y in range(h)]
    return tuple(sorted(p[c] for p in border)[len(border) // 2] for c in range(3))


def _flood(mask: bytearray, start: int, w: int, h: int) -> list[int]:
    mask[start] = 2  # 2 = visited, so each pixel joins one component
    queue = deque([start])
    members = []
    while queue:
        i = queue.popleft()
        members.append(i)
        x, y = i % w, i // w
        for j, ok in ((i - 1, x > 0), (i + 1, x < w - 1), (i - w, y > 0), (i + w, y < h - 1)):
            if ok and mask[j] == 1:
                mask[j] = 2
                queue.append(j)
    return members


def _describe(members: list[int], pixels: list, w: int, h: int, width: int, height: int) -> Component:
    inside = set(members)
    xs = [i % w for i in members]
    ys = [i // w for i in members]
    x0, x1, y0, y1 = min(xs), max(xs), min(ys), max(ys)
    bw, bh = x1 - x0 + 1, y1 - y0 + 1
    area = len(members)
    edge = [i for i in members if any(j not in inside for j in (i - 1, i + 1, i - w, i + w))]
    perimeter = len(edge)
    cx, cy = sum(xs) / area, sum(ys) / area
    # Spread of the boundary's distance from the centroid: rotation-invariant, ~0 for a circle,
    # larger for a square, larger again for a triangle and a star.
    radii = [math.hypot(i % w - cx, i // w - cy) for i in edge]
    mean_r = sum(radii) / len(radii)
    spread = math.sqrt(sum((r - mean_r) ** 2 for r in radii) / len(radii)) / max(mean_r, 1e-6)
    offset = math.hypot((cx - (x0 + x1) / 2) / bw, (cy - (y0 + y1) / 2) / bh)
    colour = [sum(pixels[i][c] for i in members) / area / 255.0 for c in range(3)]
    features = (
        area / (bw * bh),  # fill: square ~1, circle ~0.79, triangle ~0.5, star ~0.4
        4 * math.pi * area / max(perimeter, 1) ** 2,  # compactness
        min(bw, bh) / max(bw, bh),  # aspect
        offset,  # triangles' mass sits off the box centre
        spread,
        *colour,  # label-independent in the synthetic data: noise a small training set overfits
        math.sqrt(area / (w * h)),  # relative size, also label-independent
    )
    sx, sy = width / w, height / h
    box = {"left": round(x0 * sx), "top": round(y0 * sy), "width": round(bw * sx), "height": round(bh * sy)}
    return Component(box, features)


# --------------------------------------------------------------------------------------------------


@dataclass
class NeighbourModel:
    """k nearest neighbours over the training components' features, each feature divided by its
    within-label spread (a diagonal LDA scale, so shape features that separate the labels weigh more
    than colour and size, which do not). Accuracy keeps growing with informative examples (ambiguous
    shapes, rare labels) instead of saturating after a handful, as a nearest-centroid rule did; a
    version knows only its own training data."""

    use_case: str
    labels: list[str]
    points: list[tuple[tuple[float, ...], str]]  # scaled features, label
    scale: list[float]
    thresholds: dict[str, float] = field(default_factory=dict)  # label -> confidence 0..100

    def confidences(self, features: tuple[float, ...]) -> dict[str, float]:
        """Confidence per label, 0..100: kernel-weighted votes of the nearest examples, lightly smoothed."""
        q = [f / s for f, s in zip(features, self.scale)]
        distances = [(sum((a - b) ** 2 for a, b in zip(q, p)), label) for p, label in self.points]
        # Fewer neighbours for a small training set: with 2 examples per label, 7 neighbours would
        # always outvote the nearest ones and leave every answer unsure.
        k = min(_NEIGHBOURS, max(3, round(math.sqrt(len(self.points)))))
        near = heapq.nsmallest(k, distances)
        if len(self.labels) == 1:
            mean = sum(d for d, _ in near) / len(near)
            return {self.labels[0]: 100.0 * math.exp(-mean / (2 * len(self.scale)))}
        bandwidth = max(near[-1][0], 1e-6)  # adaptive: the k-th neighbour's distance
        nearest = dict.fromkeys(self.labels, math.inf)
        for d2, label in distances:
            nearest[label] = min(nearest[label], d2)
        # Every label gets a little, by how near its nearest example is: no label is impossible (as with
        # a real model's scores, MinConfidence=0 returns them all) and no two labels tie.
        votes = {label: 0.01 / (1.0 + (d2 - near[0][0]) / bandwidth) for label, d2 in nearest.items()}
        for d2, label in near:
            votes[label] += math.exp(-d2 / bandwidth)
        total = sum(votes.values())
        return {label: 100.0 * v / total for label, v in votes.items()}

    def predict(self, info: ImageInfo, every_label: bool = False) -> list[dict]:
        """Candidate labels, highest confidence first: {"name", "confidence", "box" (pixels) or None}.

        Detection gives each object its best label; `every_label` adds the rival labels of the same
        box too (what a low MinConfidence returns on AWS)."""
        out = []
        if self.use_case == manifests.OBJECT_LOCALIZATION:
            for comp in info.components:
                conf = self.confidences(comp.features)
                name = max(conf, key=lambda n: (conf[n], n))
                out.append({"name": name, "confidence": conf[name], "box": comp.box})
                if every_label:
                    out.extend({"name": n, "confidence": c, "box": comp.box} for n, c in conf.items() if n != name)
        else:
            best: dict[str, float] = {}
            for comp in info.components:
                for name, value in self.confidences(comp.features).items():
                    best[name] = max(best.get(name, 0.0), value)
            out = [{"name": n, "confidence": c, "box": None} for n, c in best.items()]
        out.sort(key=lambda p: -p["confidence"])
        return out


def fit(use_case: str, examples: list[tuple[tuple[float, ...], str]]) -> NeighbourModel:
    if not examples:
        raise ValueError("no usable training examples")
    dims = len(examples[0][0])
    by_label: dict[str, list[tuple[float, ...]]] = {}
    for features, label in examples:
        by_label.setdefault(label, []).append(features)
    centroids = {label: [sum(f[d] for f in rows) / len(rows) for d in range(dims)] for label, rows in by_label.items()}
    # Mostly the within-label spread, plus a share of the overall spread: that share keeps colour and
    # size able to mislead a model fitted on a handful of examples. The floor keeps a feature that is
    # constant in a tiny training set from dividing by zero.
    mean = [sum(f[d] for f, _ in examples) / len(examples) for d in range(dims)]
    scale = []
    for d in range(dims):
        within = sum((f[d] - centroids[label][d]) ** 2 for f, label in examples) / len(examples)
        overall = sum((f[d] - mean[d]) ** 2 for f, _ in examples) / len(examples)
        scale.append(max(0.02, math.sqrt(within + _OVERALL_SHARE * (overall - within))))
    points = [(tuple(f / s for f, s in zip(features, scale)), label) for features, label in examples]
    return NeighbourModel(use_case, sorted(by_label), points, scale)


def training_examples(use_case: str, items: list[tuple[manifests.Entry, ImageInfo]]) -> list[tuple[tuple[float, ...], str]]:
    """Label components from the manifest: by box overlap for detection, by the image's single label otherwise."""
    examples = []
    for entry, info in items:
        if use_case == manifests.OBJECT_LOCALIZATION:
            for truth in entry.boxes:
                match = max(info.components, key=lambda c: _iou(c.box, truth), default=None)
                if match is not None and _iou(match.box, truth) >= 0.3:
                    examples.append((match.features, truth["label"]))
        elif len(entry.labels) == 1:
            # With one image-level label every foreground object is that label; multi-label images
            # don't say which object is which, so they are not used to place centroids.
            examples.extend((c.features, entry.labels[0]) for c in info.components)
    return examples


# --------------------------------------------------------------------------------------------------


@dataclass
class Evaluation:
    f1: float
    precision: float
    recall: float
    per_label: dict[str, dict]  # label -> {"F1Score", "Precision", "Recall", "Threshold", "NumberOfTestingImages"}
    confusion: list[dict]
    testing_images: int
    average_precision: float | None = None  # object detection only (mAP over labels), as AWS reports it
    average_recall: float | None = None  # object detection only (mAR over labels)


def evaluate(model: NeighbourModel, items: list[tuple[manifests.Entry, ImageInfo]]) -> Evaluation:
    """Score the model on held-out entries and set its per-label assumed thresholds (best F1 on test data)."""
    scored: dict[str, list[tuple[float, bool]]] = {label: [] for label in model.labels}
    positives: dict[str, int] = {label: 0 for label in model.labels}
    images_with: dict[str, int] = {label: 0 for label in model.labels}
    pairs: dict[tuple[str, str], int] = {}
    for entry, info in items:
        predictions = model.predict(info)
        for label in entry.labels:
            positives.setdefault(label, 0)
            images_with[label] = images_with.get(label, 0) + 1
            scored.setdefault(label, [])
        if model.use_case == manifests.OBJECT_LOCALIZATION:
            for label in {b["label"] for b in entry.boxes}:
                positives[label] += sum(1 for b in entry.boxes if b["label"] == label)
            used: set[int] = set()
            for pred in predictions:
                hit = None
                for k, truth in enumerate(entry.boxes):
                    if k not in used and truth["label"] == pred["name"] and _iou(pred["box"], truth) >= _IOU_MATCH:
                        hit = k
                        break
                if hit is not None:
                    used.add(hit)
                scored.setdefault(pred["name"], []).append((pred["confidence"], hit is not None))
        else:
            for label in entry.labels:
                positives[label] += 1
            for pred in predictions:
                scored.setdefault(pred["name"], []).append((pred["confidence"], pred["name"] in entry.labels))
        if len(entry.labels) == 1 and predictions:
            key = (entry.labels[0], predictions[0]["name"])
            pairs[key] = pairs.get(key, 0) + 1
    per_label = {}
    for label in sorted(set(scored) | set(positives)):
        f1, precision, recall, threshold = _best_threshold(scored.get(label, []), positives.get(label, 0))
        model.thresholds[label] = threshold
        if positives.get(label, 0) == 0:
            continue  # a label absent from the test set has no metrics, as in the AWS summary
        per_label[label] = {
            "F1Score": round(f1, 4), "Precision": round(precision, 4), "Recall": round(recall, 4),
            "Threshold": round(threshold / 100.0, 4), "NumberOfTestingImages": images_with.get(label, 0),
        }
    n = len(per_label) or 1
    totals = {label: sum(v for (t, _), v in pairs.items() if t == label) for label in {t for t, _ in pairs}}
    confusion = [
        {"GroundTruthLabel": t, "PredictedLabel": p, "Value": round(v / totals[t], 4)}
        for (t, p), v in sorted(pairs.items())
    ]
    detection = model.use_case == manifests.OBJECT_LOCALIZATION
    curves = [_precision_recall_area(scored.get(label, []), positives[label]) for label in per_label]
    return Evaluation(
        f1=round(sum(m["F1Score"] for m in per_label.values()) / n, 4),
        precision=round(sum(m["Precision"] for m in per_label.values()) / n, 4),
        recall=round(sum(m["Recall"] for m in per_label.values()) / n, 4),
        per_label=per_label, confusion=[] if detection else confusion, testing_images=len(items),
        average_precision=round(sum(ap for ap, _ in curves) / n, 4) if detection else None,
        average_recall=round(sum(ar for _, ar in curves) / n, 4) if detection else None,
    )


def _precision_recall_area(scored: list[tuple[float, bool]], positives: int) -> tuple[float, float]:
    """(average precision, recall reached) of one label: the area under its precision-recall curve with
    all-point interpolation, and the recall at the lowest confidence."""
    if not positives:
        return 0.0, 0.0
    points, tp, fp = [], 0, 0
    for _confidence, correct in sorted(scored, key=lambda s: -s[0]):
        tp += correct
        fp += not correct
        points.append((tp / positives, tp / (tp + fp)))
    area, previous_recall = 0.0, 0.0
    for i, (recall, _precision) in enumerate(points):
        best_after = max(p for _, p in points[i:])  # interpolated precision
        area += (recall - previous_recall) * best_after
        previous_recall = recall
    return area, previous_recall


def _best_threshold(scored: list[tuple[float, bool]], positives: int) -> tuple[float, float, float, float]:
    """Sweep the confidence threshold; return (f1, precision, recall, threshold) at the best F1."""
    best = (0.0, 0.0, 0.0, 50.0)
    tp = fp = 0
    for confidence, correct in sorted(scored, key=lambda s: -s[0]):
        tp += correct
        fp += not correct
        precision = tp / (tp + fp)
        recall = tp / positives if positives else 0.0
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        if f1 > best[0]:
            best = (f1, precision, recall, confidence)
    return best
