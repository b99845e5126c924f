"""Check a manifest line against Rekognition Custom Labels' manifest rules before it is written.

Error names are the ones Rekognition reports (ListDatasetEntries / validation manifests, see the
"JSON line errors" pages of the Custom Labels guide). Three rules the guide states without a code
get names of ours, prefixed so they cannot be mistaken for AWS's:
- ``TERMINAL_LINE_TOO_LONG``: a line over 100,000 characters (a terminal content error: Rekognition
  silently drops the line);
- ``TERMINAL_DUPLICATE_SOURCE_REF``: the same image twice in one manifest (same, used by the merge);
- ``LIMIT_TOO_MANY_LABELS_PER_IMAGE``: more than 50 labels on one image (limits page).

Our rule is stricter than Rekognition's: any ERROR_/TERMINAL_/LIMIT_ issue rejects the whole line,
where Rekognition would drop only the bad attribute and train on the rest without telling anyone.
``WARNING_*`` issues do not reject a line (Rekognition keeps it and does not count it as invalid).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field

from rekfeedback.core.manifest import CLASSIFICATION_TYPE, DETECTION_TYPE, METADATA_SUFFIX, SOURCE_REF

MAX_LINE_CHARS = 100_000
MAX_LABEL_NAME = 256
MAX_LABELS_PER_IMAGE = 50
MAX_BOXES_PER_IMAGE = 50
MIN_IMAGE_SIDE, MAX_IMAGE_SIDE = 64, 4096
MAX_ASPECT_RATIO = 20.0
TRAINING_MAX_SIDE = 1280  # images with a larger side are scaled down for training
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png")

ERROR_INVALID_JSON_LINE = "ERROR_INVALID_JSON_LINE"
ERROR_MISSING_SOURCE_REF = "ERROR_MISSING_SOURCE_REF"
ERROR_INVALID_SOURCE_REF_FORMAT = "ERROR_INVALID_SOURCE_REF_FORMAT"
ERROR_IMAGES_IN_MULTIPLE_S3_BUCKETS = "ERROR_IMAGES_IN_MULTIPLE_S3_BUCKETS"
ERROR_NO_LABEL_ATTRIBUTES = "ERROR_NO_LABEL_ATTRIBUTES"
ERROR_INVALID_LABEL_ATTRIBUTE_FORMAT = "ERROR_INVALID_LABEL_ATTRIBUTE_FORMAT"
ERROR_INVALID_LABEL_ATTRIBUTE_METADATA_FORMAT = "ERROR_INVALID_LABEL_ATTRIBUTE_METADATA_FORMAT"
ERROR_NO_VALID_LABEL_ATTRIBUTES = "ERROR_NO_VALID_LABEL_ATTRIBUTES"
ERROR_MISSING_BOUNDING_BOX_CONFIDENCE = "ERROR_MISSING_BOUNDING_BOX_CONFIDENCE"
ERROR_MISSING_CLASS_MAP_ID = "ERROR_MISSING_CLASS_MAP_ID"
ERROR_INVALID_IMAGE = "ERROR_INVALID_IMAGE"
ERROR_INVALID_IMAGE_DIMENSION = "ERROR_INVALID_IMAGE_DIMENSION"
ERROR_INVALID_BOUNDING_BOX = "ERROR_INVALID_BOUNDING_BOX"
ERROR_NO_VALID_ANNOTATIONS = "ERROR_NO_VALID_ANNOTATIONS"
ERROR_BOUNDING_BOX_TOO_SMALL = "ERROR_BOUNDING_BOX_TOO_SMALL"
ERROR_TOO_MANY_BOUNDING_BOXES = "ERROR_TOO_MANY_BOUNDING_BOXES"
ERROR_UNSUPPORTED_USE_CASE_TYPE = "ERROR_UNSUPPORTED_USE_CASE_TYPE"
ERROR_INVALID_LABEL_NAME_LENGTH = "ERROR_INVALID_LABEL_NAME_LENGTH"
WARNING_UNANNOTATED_RECORD = "WARNING_UNANNOTATED_RECORD"
WARNING_NO_ANNOTATIONS = "WARNING_NO_ANNOTATIONS"
WARNING_NO_ATTRIBUTE_ANNOTATIONS = "WARNING_NO_ATTRIBUTE_ANNOTATIONS"
TERMINAL_LINE_TOO_LONG = "TERMINAL_LINE_TOO_LONG"
TERMINAL_DUPLICATE_SOURCE_REF = "TERMINAL_DUPLICATE_SOURCE_REF"
LIMIT_TOO_MANY_LABELS_PER_IMAGE = "LIMIT_TOO_MANY_LABELS_PER_IMAGE"

_SOURCE_REF_RE = re.compile(r"s3://([a-z0-9][a-z0-9.\-]{1,61}[a-z0-9])/(.+)", re.DOTALL)
_CLASSIFICATION_META_KEYS = ("class-name", "confidence", "type", "human-annotated", "creation-date")
_DETECTION_META_KEYS = ("objects", "class-map", "type", "human-annotated", "creation-date")
_BOX_KEYS = ("class_id", "left", "top", "width", "height")


@dataclass(frozen=True)
class Issue:
    code: str
    message: str

    @property
    def fatal(self) -> bool:
        return not self.code.startswith("WARNING_")

    def as_dict(self) -> dict:
        return {"code": self.code, "message": self.message}


@dataclass
class LineCheck:
    issues: list[Issue] = field(default_factory=list)
    source_ref: str | None = None
    labels: set[str] = field(default_factory=set)
    record: dict | None = None

    @property
    def ok(self) -> bool:
        return not any(issue.fatal for issue in self.issues)

    @property
    def errors(self) -> list[Issue]:
        return [issue for issue in self.issues if issue.fatal]

    def add(self, code: str, message: str) -> None:
        self.issues.append(Issue(code, message))


def bucket_of(source_ref: str) -> str | None:
    match = _SOURCE_REF_RE.fullmatch(source_ref) if isinstance(source_ref, str) else None
    return match.group(1) if match else None


def validate_line(line: str, expected_bucket: str | None = None) -> LineCheck:
    """Validate one manifest line (text, with or without its newline)."""
    text = line.rstrip("\r\n")
    if len(text) > MAX_LINE_CHARS:
        check = LineCheck()
        check.add(TERMINAL_LINE_TOO_LONG, f"line has {len(text)} characters; Rekognition drops lines over {MAX_LINE_CHARS}")
        return check
    try:
        record = json.loads(text)
    except ValueError as exc:
        check = LineCheck()
        check.add(ERROR_INVALID_JSON_LINE, f"not valid JSON: {exc}")
        return check
    return validate_record(record, expected_bucket)


def _is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _check_metadata_common(check: LineCheck, attr: str, meta: dict, required) -> bool:
    missing = [k for k in required if k not in meta]
    if missing:
        check.add(ERROR_INVALID_LABEL_ATTRIBUTE_METADATA_FORMAT, f"{attr}-metadata lacks {', '.join(missing)}")
        return False
    if meta["human-annotated"] not in ("yes", "no"):
        check.add(ERROR_INVALID_LABEL_ATTRIBUTE_METADATA_FORMAT, f"{attr}-metadata human-annotated must be 'yes' or 'no'")
        return False
    if not isinstance(meta["creation-date"], str) or not meta["creation-date"]:
        check.add(ERROR_INVALID_LABEL_ATTRIBUTE_METADATA_FORMAT, f"{attr}-metadata creation-date must be a date string")
        return False
    return True


def _check_label_name(check: LineCheck, attr: str, name) -> bool:
    if not isinstance(name, str) or not name:
        check.add(ERROR_INVALID_LABEL_ATTRIBUTE_METADATA_FORMAT, f"{attr}-metadata has no usable label name")
        return False
    if len(name) > MAX_LABEL_NAME:
        check.add(ERROR_INVALID_LABEL_NAME_LENGTH, f"{attr}: label name has {len(name)} characters (max {MAX_LABEL_NAME})")
        return False
    return True


def _check_classification(check: LineCheck, attr: str, value, meta: dict) -> bool:
    if not _check_metadata_common(check, attr, meta, _CLASSIFICATION_META_KEYS):
        return False
    conf = meta["confidence"]
    if not _is_number(conf) or not 0 <= conf <= 1:
        check.add(ERROR_INVALID_LABEL_ATTRIBUTE_METADATA_FORMAT, f"{attr}-metadata confidence must be a number from 0 to 1")
        return False
    if isinstance(value, bool) or not (isinstance(value, int) or (isinstance(value, str) and value.isdigit())):
        check.add(ERROR_INVALID_LABEL_ATTRIBUTE_FORMAT, f"{attr} must be an integer")
        return False
    if not _check_label_name(check, attr, meta["class-name"]):
        return False
    check.labels.add(meta["class-name"])
    return True


def _check_image_size(check: LineCheck, attr: str, body: dict):
    sizes = body.get("image_size")
    if not (isinstance(sizes, list) and len(sizes) == 1 and isinstance(sizes[0], dict)):
        check.add(ERROR_INVALID_LABEL_ATTRIBUTE_FORMAT, f"{attr}.image_size must be a list of exactly one {{width, height, depth}}")
        return None
    size = sizes[0]
    width, height, depth = size.get("width"), size.get("height"), size.get("depth")
    if not all(isinstance(v, int) and not isinstance(v, bool) for v in (width, height, depth)):
        check.add(ERROR_INVALID_LABEL_ATTRIBUTE_FORMAT, f"{attr}.image_size needs integer width, height and depth")
        return None
    if not (MIN_IMAGE_SIDE <= width <= MAX_IMAGE_SIDE and MIN_IMAGE_SIDE <= height <= MAX_IMAGE_SIDE):
        check.add(ERROR_INVALID_IMAGE_DIMENSION, f"image is {width}x{height}; each side must be {MIN_IMAGE_SIDE} to {MAX_IMAGE_SIDE} px")
        return None
    if max(width, height) / min(width, height) > MAX_ASPECT_RATIO:
        check.add(ERROR_INVALID_IMAGE, f"image is {width}x{height}; aspect ratio over {MAX_ASPECT_RATIO:g}:1")
        return None
    return width, height


def _check_box(check: LineCheck, attr: str, i: int, ann, class_map: dict, width: int, height: int) -> bool:
    if not isinstance(ann, dict) or not all(_is_number(ann.get(k)) for k in _BOX_KEYS):
        check.add(ERROR_INVALID_LABEL_ATTRIBUTE_FORMAT, f"{attr}.annotations[{i}] needs numeric class_id, left, top, width, height")
        return False
    if str(ann["class_id"]) not in class_map:
        check.add(ERROR_MISSING_CLASS_MAP_ID, f"{attr}.annotations[{i}] class_id {ann['class_id']} is not in class-map")
        return False
    problem = box_problem(ann["left"], ann["top"], ann["width"], ann["height"], width, height)
    if problem is not None:
        check.add(problem[0], f"{attr}.annotations[{i}] {problem[1]}")
        return False
    return True


def box_problem(left, top, w, h, width: int, height: int) -> tuple[str, str] | None:
    """(code, what is wrong) for a box Rekognition would refuse in a width x height image, or None."""
    if left < 0 or top < 0 or w < 0 or h < 0 or left + w > width or top + h > height:
        return ERROR_INVALID_BOUNDING_BOX, f"({left},{top},{w},{h}) is not inside the {width}x{height} image"
    longest = max(width, height)
    min_side = longest / TRAINING_MAX_SIDE if longest > TRAINING_MAX_SIDE else 1  # > 1 px after the resize
    if w <= min_side or h <= min_side:
        return ERROR_BOUNDING_BOX_TOO_SMALL, f"is {w}x{h} px; it must exceed 1x1 px after scaling to {TRAINING_MAX_SIDE} px"
    return None


def _check_detection(check: LineCheck, attr: str, body, meta: dict) -> bool:
    if not _check_metadata_common(check, attr, meta, _DETECTION_META_KEYS):
        return False
    class_map, objects = meta["class-map"], meta["objects"]
    if not isinstance(class_map, dict) or not isinstance(objects, list):
        check.add(ERROR_INVALID_LABEL_ATTRIBUTE_METADATA_FORMAT, f"{attr}-metadata class-map must be an object and objects a list")
        return False
    if not isinstance(body, dict) or not isinstance(body.get("annotations", []), list):
        check.add(ERROR_INVALID_LABEL_ATTRIBUTE_FORMAT, f"{attr} must be an object with an annotations list")
        return False
    size = _check_image_size(check, attr, body)
    if size is None:
        return False
    annotations = body.get("annotations") or []
    if not annotations:
        if meta["human-annotated"] == "yes":
            check.add(WARNING_NO_ATTRIBUTE_ANNOTATIONS, f"{attr} has no boxes (a verified empty image; not used for training)")
        else:
            check.add(WARNING_NO_ANNOTATIONS, f"{attr} has no boxes (not used for training)")
        return False
    if len(annotations) > MAX_BOXES_PER_IMAGE:
        check.add(ERROR_TOO_MANY_BOUNDING_BOXES, f"{attr} has {len(annotations)} boxes (max {MAX_BOXES_PER_IMAGE})")
        return False
    if len(objects) != len(annotations) or not all(isinstance(o, dict) and _is_number(o.get("confidence")) for o in objects):
        check.add(ERROR_MISSING_BOUNDING_BOX_CONFIDENCE, f"{attr}-metadata objects must hold one confidence per annotation ({len(annotations)})")
        return False
    for name in class_map.values():
        if not _check_label_name(check, attr, name):
            return False
    good = [ann for i, ann in enumerate(annotations) if _check_box(check, attr, i, ann, class_map, *size)]
    if not good:
        check.add(ERROR_NO_VALID_ANNOTATIONS, f"{attr}: none of the {len(annotations)} boxes is valid")
        return False
    check.labels.update(class_map[str(ann["class_id"])] for ann in good)
    return len(good) == len(annotations)


def validate_record(record, expected_bucket: str | None = None, line_length: int | None = None) -> LineCheck:
    """Validate a parsed manifest line. ``expected_bucket`` enforces the one-bucket rule."""
    check = LineCheck(record=record if isinstance(record, dict) else None)
    if line_length is not None and line_length > MAX_LINE_CHARS:
        check.add(TERMINAL_LINE_TOO_LONG, f"line has {line_length} characters; Rekognition drops lines over {MAX_LINE_CHARS}")
    if not isinstance(record, dict):
        check.add(ERROR_INVALID_JSON_LINE, "line is not a JSON object")
        return check
    source_ref = record.get(SOURCE_REF)
    if source_ref is None:
        check.add(ERROR_MISSING_SOURCE_REF, "no 'source-ref' key")
        return check
    check.source_ref = source_ref if isinstance(source_ref, str) else None
    bucket = bucket_of(source_ref)
    if bucket is None:
        check.add(ERROR_INVALID_SOURCE_REF_FORMAT, f"source-ref {source_ref!r} is not s3://bucket/key")
        return check
    if expected_bucket is not None and bucket != expected_bucket:
        check.add(ERROR_IMAGES_IN_MULTIPLE_S3_BUCKETS, f"image bucket {bucket!r} differs from the manifest's image bucket {expected_bucket!r}")
    # Rekognition sniffs the content; we can only judge a key that names another format.
    name = source_ref.rsplit("/", 1)[-1].lower()
    if "." in name and not name.endswith(IMAGE_EXTENSIONS):
        check.add(ERROR_INVALID_IMAGE, f"{source_ref} is not a .jpg/.jpeg/.png image (Rekognition trains on PNG and JPEG only)")

    attrs = 0
    valid = 0
    for key, value in record.items():
        if key == SOURCE_REF:
            continue
        if key.endswith(METADATA_SUFFIX):
            if key[: -len(METADATA_SUFFIX)] not in record:
                check.add(ERROR_NO_LABEL_ATTRIBUTES, f"{key} has no '{key[: -len(METADATA_SUFFIX)]}' attribute")
            continue
        attrs += 1
        meta = record.get(key + METADATA_SUFFIX)
        if meta is None:
            check.add(ERROR_NO_LABEL_ATTRIBUTES, f"attribute {key!r} has no '{key}-metadata'")
            continue
        if not isinstance(meta, dict):
            check.add(ERROR_INVALID_LABEL_ATTRIBUTE_METADATA_FORMAT, f"{key}-metadata is not an object")
            continue
        kind = meta.get("type")
        if kind == CLASSIFICATION_TYPE:
            valid += _check_classification(check, key, value, meta)
        elif kind == DETECTION_TYPE:
            valid += _check_detection(check, key, value, meta)
        elif kind is None:
            check.add(ERROR_INVALID_LABEL_ATTRIBUTE_METADATA_FORMAT, f"{key}-metadata has no type")
        else:
            check.add(ERROR_UNSUPPORTED_USE_CASE_TYPE, f"{key}-metadata type {kind!r} is neither {CLASSIFICATION_TYPE} nor {DETECTION_TYPE}")

    if attrs == 0 and not check.issues:
        check.add(WARNING_UNANNOTATED_RECORD, "image has no label (kept as verified but not used for training)")
    elif attrs and not valid and check.ok:
        pass  # only warnings (verified empty images): Rekognition keeps the line and ignores it
    elif attrs and not valid:
        check.add(ERROR_NO_VALID_LABEL_ATTRIBUTES, "no attribute on the line is a valid classification or bounding-box attribute")
    if len(check.labels) > MAX_LABELS_PER_IMAGE:
        check.add(LIMIT_TOO_MANY_LABELS_PER_IMAGE, f"{len(check.labels)} labels on one image (max {MAX_LABELS_PER_IMAGE})")
    return check
