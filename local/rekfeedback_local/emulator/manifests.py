"""Read Rekognition Custom Labels manifest lines (Ground Truth format) the way the service reads them.

Only the two use cases Rekognition accepts are understood: `groundtruth/image-classification` and
`groundtruth/object-detection` attributes. Other typed attributes get the documented per-line error
codes, so ListDatasetEntries(HasErrors=True) and the dataset stats behave like the real service.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field

CLASSIFICATION = "groundtruth/image-classification"
DETECTION = "groundtruth/object-detection"
IMAGE_LEVEL_LABELS = "IMAGE_LEVEL_LABELS"
OBJECT_LOCALIZATION = "OBJECT_LOCALIZATION"

_SOURCE_REF = re.compile(r"s3://([^/]+)/(.+)")
_MAX_LINE = 100_000


@dataclass
class Entry:
    """One dataset entry: the line as written plus what Rekognition understood from it."""

    line: dict
    source_ref: str
    labels: list[str] = field(default_factory=list)  # distinct label names, image-level and box labels
    boxes: list[dict] = field(default_factory=list)  # {"label", "left", "top", "width", "height"} pixels
    use_cases: set[str] = field(default_factory=set)
    errors: list[dict] = field(default_factory=list)

    @property
    def labeled(self) -> bool:
        return bool(self.use_cases)

    @property
    def bucket_key(self) -> tuple[str, str]:
        m = _SOURCE_REF.fullmatch(self.source_ref)
        return m.group(1), m.group(2)

    def as_json(self) -> str:
        line = dict(self.line)
        if self.errors:
            line["errors"] = self.errors
        return json.dumps(line, separators=(",", ":"))


@dataclass
class ParseResult:
    entries: list[Entry]
    dropped: int  # terminal content errors: lines removed silently, as the service does
    total_lines: int


def parse_manifest(text: str) -> ParseResult:
    entries: dict[str, Entry] = {}
    dropped = 0
    total = 0
    for raw in text.splitlines():
        if not raw.strip():
            continue
        total += 1
        entry = parse_line(raw)
        if entry is None:
            dropped += 1
            continue
        if entry.source_ref in entries:
            # A duplicate source-ref is a terminal content error in a single manifest.
            dropped += 1
            continue
        entries[entry.source_ref] = entry
    return ParseResult(list(entries.values()), dropped, total)


def parse_line(raw: str) -> Entry | None:
    """Parse one JSON line; None for the terminal content errors Rekognition drops silently."""
    if len(raw) > _MAX_LINE:
        return None
    try:
        line = json.loads(raw)
    except ValueError:
        return None
    if not isinstance(line, dict):
        return None
    source_ref = line.get("source-ref")
    if not isinstance(source_ref, str) or not _SOURCE_REF.fullmatch(source_ref):
        return None
    line.pop("errors", None)  # entries read back from ListDatasetEntries carry our own error list
    entry = Entry(line=line, source_ref=source_ref)
    labels: list[str] = []
    for key, value in line.items():
        if key.endswith("-metadata") or key == "source-ref":
            continue
        meta = line.get(f"{key}-metadata")
        if not isinstance(meta, dict):
            continue  # a pass-through key (e.g. our own "predictions"), not a label attribute
        kind = meta.get("type")
        if kind == CLASSIFICATION:
            name = meta.get("class-name")
            if not isinstance(name, str) or not name:
                entry.errors.append(_err("ERROR_INVALID_LABEL_ATTRIBUTE_METADATA_FORMAT", f"{key}-metadata has no class-name"))
                continue
            if len(name) > 256:
                entry.errors.append(_err("ERROR_INVALID_LABEL_NAME_LENGTH", f"label name in {key} is longer than 256"))
                continue
            labels.append(name)
            entry.use_cases.add(IMAGE_LEVEL_LABELS)
        elif kind == DETECTION:
            boxes = _boxes(key, value, meta, entry)
            if boxes is None:
                continue
            if not boxes:
                continue  # WARNING_NO_ATTRIBUTE_ANNOTATIONS: valid but unused
            entry.boxes.extend(boxes)
            labels.extend(b["label"] for b in boxes)
            entry.use_cases.add(OBJECT_LOCALIZATION)
        else:
            entry.errors.append(_err("ERROR_UNSUPPORTED_USE_CASE_TYPE", f"{key}-metadata type {kind!r} is not supported"))
    entry.labels = sorted(set(labels))
    return entry


def _boxes(key: str, value, meta: dict, entry: Entry) -> list[dict] | None:
    if not isinstance(value, dict) or not isinstance(value.get("annotations", []), list):
        entry.errors.append(_err("ERROR_INVALID_LABEL_ATTRIBUTE_FORMAT", f"{key} has no annotations list"))
        return None
    sizes = value.get("image_size")
    if not (isinstance(sizes, list) and len(sizes) == 1 and isinstance(sizes[0], dict)):
        entry.errors.append(_err("ERROR_INVALID_LABEL_ATTRIBUTE_FORMAT", f"{key}.image_size must hold exactly one element"))
        return None
    class_map = meta.get("class-map") or {}
    objects = meta.get("objects") or []
    annotations = value.get("annotations") or []
    if len(objects) < len(annotations):
        entry.errors.append(_err("ERROR_MISSING_BOUNDING_BOX_CONFIDENCE", f"{key}-metadata.objects has fewer entries than annotations"))
        return None
    width, height = sizes[0].get("width"), sizes[0].get("height")
    boxes = []
    for ann in annotations:
        name = class_map.get(str(ann.get("class_id")))
        if name is None:
            entry.errors.append(_err("ERROR_MISSING_CLASS_MAP_ID", f"class_id {ann.get('class_id')!r} of {key} is not in class-map"))
            continue
        try:
            box = {k: int(ann[k]) for k in ("left", "top", "width", "height")}
        except (KeyError, TypeError, ValueError):
            entry.errors.append(_err("ERROR_INVALID_BOUNDING_BOX", f"annotation of {key} lacks left/top/width/height"))
            continue
        off_frame = box["left"] < 0 or box["top"] < 0 or (
            isinstance(width, int) and isinstance(height, int)
            and (box["left"] + box["width"] > width or box["top"] + box["height"] > height))
        if off_frame or box["width"] <= 1 or box["height"] <= 1:
            entry.errors.append(_err("ERROR_INVALID_BOUNDING_BOX", f"annotation of {key} is off the image frame or too small"))
            continue
        boxes.append({"label": name, **box})
    return boxes


def _err(code: str, message: str) -> dict:
    return {"code": code, "message": message}
