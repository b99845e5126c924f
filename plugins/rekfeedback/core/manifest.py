"""The Rekognition Custom Labels manifest line (SageMaker Ground Truth output format).

One JSON line per image:
- image-level labels: one classification attribute per label, ``<attr>: 0`` plus ``<attr>-metadata``
  with ``class-name``, ``confidence``, ``type: groundtruth/image-classification``, ``job-name``,
  ``human-annotated``, ``creation-date``;
- boxes: one object-detection attribute ``bounding-box`` with ``image_size`` and ``annotations``
  (integer pixels) plus ``bounding-box-metadata`` with ``objects`` (one confidence per box, same
  order), ``class-map``, ``type: groundtruth/object-detection``, ``human-annotated``,
  ``creation-date``, ``job-name``.

``build_line`` writes the canonical form (compact JSON, fixed key order, labels and boxes sorted)
so that the same entry always gives the same bytes. ``parse_record`` reads any Rekognition-usable
line back, including Ground Truth's multi-label and adjustment outputs, which a previous
cumulative manifest written by another tool may contain.
"""

from __future__ import annotations

import functools
import hashlib
import json
from dataclasses import dataclass, field
from datetime import datetime, timezone

import orjson

CLASSIFICATION_TYPE = "groundtruth/image-classification"
DETECTION_TYPE = "groundtruth/object-detection"
MULTILABEL_TYPE = "groundtruth/image-classification-multilabel"
BOX_ATTRIBUTE = "bounding-box"
SOURCE_REF = "source-ref"
METADATA_SUFFIX = "-metadata"
DEFAULT_DEPTH = 3


@dataclass(frozen=True)
class Provenance:
    """Who made an annotation and when: the manifest's metadata, never invented by the merge."""

    human: bool
    job_name: str
    creation_date: str  # manifest form: UTC, ISO-8601 without zone, microseconds
    confidence: float  # 0..1


@dataclass(frozen=True)
class ImageLabel:
    name: str
    provenance: Provenance


@dataclass(frozen=True)
class Detection:
    """Boxes in integer pixels: dicts with label, left, top, width, height."""

    boxes: tuple[dict, ...]
    provenance: Provenance


@dataclass
class ImageEntry:
    source_ref: str
    width: int | None = None
    height: int | None = None
    depth: int = DEFAULT_DEPTH
    labels: list[ImageLabel] = field(default_factory=list)
    detection: Detection | None = None

    @property
    def human(self) -> bool:
        return any(p.human for p in self._provenances())

    @property
    def newest_date(self) -> str:
        return max((p.creation_date for p in self._provenances()), default="")

    def label_names(self) -> set[str]:
        names = {label.name for label in self.labels}
        if self.detection:
            names.update(b["label"] for b in self.detection.boxes)
        return names

    def _provenances(self):
        yield from (label.provenance for label in self.labels)
        if self.detection:
            yield self.detection.provenance


@functools.lru_cache(maxsize=65536)  # answers of one job share few distinct timestamps
def manifest_date(value: str) -> str:
    """An ISO-8601 date/time (any zone, 'Z' allowed; naive means UTC) in the manifest's form.

    Raises ValueError on anything else: the merge never makes a date up.
    """
    if not isinstance(value, str):
        raise ValueError(f"not a date string: {value!r}")
    text = value.strip()
    if text.endswith(("Z", "z")):
        text = text[:-1] + "+00:00"
    parsed = datetime.fromisoformat(text)
    if parsed.tzinfo is not None:
        parsed = parsed.astimezone(timezone.utc).replace(tzinfo=None)
    return parsed.strftime("%Y-%m-%dT%H:%M:%S.%f")


def attribute_name(label: str) -> str:
    """The attribute key for an image-level label: the label itself when it cannot clash."""
    reserved = label in (SOURCE_REF, BOX_ATTRIBUTE) or label.endswith(METADATA_SUFFIX)
    if reserved or label.startswith(BOX_ATTRIBUTE) or not label:
        # The name is cosmetic (Rekognition reads class-name), but it must be unique and stable.
        return "label-" + hashlib.sha1(label.encode("utf-8")).hexdigest()[:12]
    return label


def _box_sort_key(box: dict):
    return (box["label"], box["left"], box["top"], box["width"], box["height"])


def build_record(entry: ImageEntry) -> dict:
    return _build(entry)[0]


def _plain_confidence(value) -> bool:
    # orjson writes floats as json.dumps does except below 1e-4 and from 1e16 on (and NaN/Infinity).
    kind = type(value)
    return kind is int or (kind is float and (value == 0.0 or 1e-4 <= abs(value) < 1e16))


def _build(entry: ImageEntry) -> tuple[dict, bool]:
    """The record and whether orjson writes it byte for byte as json.dumps does (see ``_plain_confidence``)."""
    labels = [(label.name, label.provenance) for label in sorted(entry.labels, key=_label_name)]
    detection = (entry.detection.boxes, entry.detection.provenance) if entry.detection is not None else None
    return assemble(entry.source_ref, labels, detection, entry.width, entry.height, entry.depth)


def _label_name(label: ImageLabel) -> str:
    return label.name


def assemble(source_ref: str, labels, detection, width, height, depth=DEFAULT_DEPTH) -> tuple[dict, bool]:
    """build_record's record from an entry's parts, and whether ``encode`` may use orjson for it.

    ``labels``: (name, Provenance) pairs sorted by name; ``detection``: (boxes, Provenance) or None.
    """
    record: dict = {SOURCE_REF: source_ref}
    plain = True
    for name, prov in labels:
        attr = attribute_name(name)
        plain = plain and _plain_confidence(prov.confidence)
        record[attr] = 0
        record[attr + METADATA_SUFFIX] = {
            "class-name": name,
            "confidence": prov.confidence,
            "type": CLASSIFICATION_TYPE,
            "job-name": prov.job_name,
            "human-annotated": "yes" if prov.human else "no",
            "creation-date": prov.creation_date,
        }
    if detection is not None:
        if width is None or height is None:
            raise ValueError(f"{source_ref}: boxes need the image width and height")
        boxes, prov = detection
        boxes = sorted(boxes, key=_box_sort_key)
        class_ids = {name: i for i, name in enumerate(sorted({b["label"] for b in boxes}))}
        plain = (plain and _plain_confidence(prov.confidence) and type(width) is int and type(height) is int
                 and type(depth) is int
                 and all(type(b["left"]) is int and type(b["top"]) is int and type(b["width"]) is int
                         and type(b["height"]) is int for b in boxes))
        record[BOX_ATTRIBUTE] = {
            "image_size": [{"width": width, "height": height, "depth": depth}],
            "annotations": [
                {"class_id": class_ids[b["label"]], "left": b["left"], "top": b["top"],
                 "width": b["width"], "height": b["height"]}
                for b in boxes
            ],
        }
        record[BOX_ATTRIBUTE + METADATA_SUFFIX] = {
            "objects": [{"confidence": prov.confidence} for _ in boxes],
            "class-map": {str(i): name for name, i in class_ids.items()},
            "type": DETECTION_TYPE,
            "human-annotated": "yes" if prov.human else "no",
            "creation-date": prov.creation_date,
            "job-name": prov.job_name,
        }
    return record, plain


_ENCODER = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False)  # built once: json.dumps with options builds one per call


def dumps(record: dict) -> str:
    """Compact JSON, no newline; non-ASCII kept as is (Rekognition counts characters, not bytes)."""
    return _ENCODER.encode(record)


def encode(record: dict, plain: bool) -> str:
    """``dumps(record)``, by orjson when ``assemble`` says it writes the same bytes."""
    if plain:
        try:
            return orjson.dumps(record).decode()
        except TypeError:  # orjson.JSONEncodeError: a lone surrogate, an integer beyond 64 bits
            pass
    return _ENCODER.encode(record)


def build_record_and_line(entry: ImageEntry) -> tuple[dict, str]:
    """The record and its canonical line."""
    record, plain = _build(entry)
    return record, encode(record, plain)


def build_line(entry: ImageEntry) -> str:
    return build_record_and_line(entry)[1]


def _provenance(meta: dict, confidence=None) -> Provenance:
    try:
        date = manifest_date(meta.get("creation-date", meta.get("creation_date", "")))
    except (TypeError, ValueError):
        date = ""
    conf = meta.get("confidence") if confidence is None else confidence
    if not isinstance(conf, (int, float)) or isinstance(conf, bool) or not 0 <= conf <= 1:
        conf = 0.0
    return Provenance(
        human=str(meta.get("human-annotated", "")).lower() == "yes",
        job_name=str(meta.get("job-name", meta.get("job_name", ""))),
        creation_date=date,
        confidence=float(conf),
    )


def _parse_detection(body, meta: dict) -> tuple[Detection, int | None, int | None, int]:
    if not isinstance(body, dict):
        raise ValueError("bounding-box attribute is not an object")
    sizes = body.get("image_size")
    size = sizes[0] if isinstance(sizes, list) and len(sizes) == 1 and isinstance(sizes[0], dict) else {}
    class_map = meta.get("class-map") or {}
    boxes = []
    for ann in body.get("annotations") or []:
        name = class_map.get(str(ann.get("class_id")))
        if name is None:
            raise ValueError(f"class_id {ann.get('class_id')!r} missing from class-map")
        boxes.append({"label": name, **{k: ann[k] for k in ("left", "top", "width", "height")}})
    return Detection(tuple(boxes), _provenance(meta)), size.get("width"), size.get("height"), size.get("depth", DEFAULT_DEPTH)


def parse_record(record: dict) -> tuple[ImageEntry, list[str]]:
    """Read a manifest line into an ImageEntry; also return the attributes it had to leave out.

    Several object-detection attributes (one per Ground Truth job, as the AWS feedback sample
    writes) collapse to the newest human one, since training on both box sets would duplicate
    objects. Attributes Rekognition does not train on (verification, custom) are listed as left out.
    """
    source_ref = record.get(SOURCE_REF)
    if not isinstance(source_ref, str):
        raise ValueError("line has no source-ref")
    entry = ImageEntry(source_ref=source_ref)
    left_out: list[str] = []
    detections = []
    seen_labels: set[str] = set()
    for key in sorted(record):
        if key.endswith(METADATA_SUFFIX) or key == SOURCE_REF:
            continue
        meta = record.get(key + METADATA_SUFFIX)
        if not isinstance(meta, dict):
            left_out.append(key)
            continue
        kind = str(meta.get("type", "")).lower()
        if kind == CLASSIFICATION_TYPE:
            name = meta.get("class-name")
            if isinstance(name, str) and name not in seen_labels:
                seen_labels.add(name)
                entry.labels.append(ImageLabel(name, _provenance(meta)))
        elif kind == MULTILABEL_TYPE:
            class_map = meta.get("class-map") or {}
            conf_map = meta.get("confidence-map") or {}
            for class_id in record[key] if isinstance(record[key], list) else []:
                name = class_map.get(str(class_id))
                if isinstance(name, str) and name not in seen_labels:
                    seen_labels.add(name)
                    entry.labels.append(ImageLabel(name, _provenance(meta, conf_map.get(str(class_id)))))
        elif kind == DETECTION_TYPE:
            detections.append(_parse_detection(record[key], meta))
        else:
            left_out.append(key)
    if detections:
        best = max(detections, key=lambda d: (d[0].provenance.human, d[0].provenance.creation_date))
        entry.detection, entry.width, entry.height, entry.depth = best
        left_out.extend(f"{BOX_ATTRIBUTE} (older duplicate)" for d in detections if d is not best)
    return entry, left_out
