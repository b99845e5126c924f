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

import itertools
import json
import operator
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


# --- Fast path for lines in our canonical form (core.manifest.build_line) ---------------------------
# A cumulative manifest is mostly lines this merge wrote earlier; parsing and walking each one costs
# more than the rest of the merge. These patterns accept only that exact compact form with plain
# strings (no escapes, no control characters), where matching proves the line is valid JSON of the
# shape validate_record checks; the numeric rules are then checked on the captured numbers.
# Anything the patterns do not match goes through validate_line (tests hold the two equivalent).
_STR = r'[^"\\\x00-\x1f]'
_INT = r"(?:0|[1-9][0-9]*)"
_UNIT = r"(?:0|1|0\.[0-9]+|1\.0+|[0-9](?:\.[0-9]+)?e-[0-9]+)"  # how json.dumps writes 0 <= x <= 1
_NUM = r"-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?(?:[eE][-+]?[0-9]+)?"


def _class_attr(i) -> str:
    """One image-level label attribute; ``i`` names its groups (the key is needed for the back-reference)."""
    name = f"(?P<name{i}>{_STR}{{1,{MAX_LABEL_NAME}}})" if i != "x" else f"{_STR}{{1,{MAX_LABEL_NAME}}}"
    return (
        rf'"(?!source-ref")(?!bounding-box)(?!{_STR}*-metadata")(?P<attr{i}>{_STR}+)":0,"(?P=attr{i})-metadata":\{{'
        rf'"class-name":"{name}","confidence":{_UNIT},"type":"{CLASSIFICATION_TYPE}",'
        rf'"job-name":"{_STR}*","human-annotated":"(?:yes|no)","creation-date":"{_STR}+"\}}'
    )


def _ann(i="") -> str:
    g = (lambda k: f"(?P<{k}{i}>{_INT})") if i else (lambda k: _INT)
    return rf'\{{"class_id":{g("c")},"left":{g("l")},"top":{g("t")},"width":{g("w")},"height":{g("h")}\}}'


_CM = rf'"{_INT}":"{_STR}{{1,{MAX_LABEL_NAME}}}"'
# The first two labels, three boxes and the first class are captured, so that the usual line needs
# no second pass over its text; the rest (groups amore, bmore, cmmore; None or "" when there is no
# more) is read with findall.
_CLASSES = rf"(?P<classes>(?:,{_class_attr(1)}(?:,{_class_attr(2)}(?P<amore>(?:,{_class_attr('x')})+)?)?)?)"
_DET_ATTR = (
    rf'"bounding-box":\{{"image_size":\[\{{"width":(?P<width>{_INT}),"height":(?P<height>{_INT}),"depth":{_INT}\}}\],'
    rf'"annotations":\[(?P<annotations>(?:{_ann(1)}(?:,{_ann(2)}(?:,{_ann(3)}(?P<bmore>(?:,{_ann()})+)?)?)?)?)\]\}},'
    rf'"bounding-box-metadata":\{{"objects":\[(?P<objects>(?:\{{"confidence":{_NUM}\}}(?:,\{{"confidence":{_NUM}\}})*)?)\],'
    rf'"class-map":\{{(?:"(?P<k1>{_INT})":"(?P<v1>{_STR}{{1,{MAX_LABEL_NAME}}})"(?P<cmmore>(?:,{_CM})*))?\}},'
    rf'"type":"{DETECTION_TYPE}","human-annotated":"(?:yes|no)","creation-date":"{_STR}+","job-name":"{_STR}*"\}}'
)
# The key's last segment has a PNG/JPEG extension or none (see validate_record); the usual case
# first, since trying the other one first costs a third of the match.
_KEY = rf"(?:{_STR}*\.(?i:jpe?g|png)|(?:{_STR}*/)?[^\"\\\x00-\x1f./]+)"
_CANONICAL_RE = re.compile(
    rf'\{{"source-ref":"(?P<ref>s3://(?P<bucket>[a-z0-9][a-z0-9.\-]{{1,61}}[a-z0-9])/{_KEY})"'
    rf"{_CLASSES}(?:,{_DET_ATTR})?\}}"
)
_G = _CANONICAL_RE.groupindex
_CLASS_FIELDS = tuple(_G[g] for g in ("name1", "name2", "amore", "attr1", "attr2"))
# Everything a line's verdict depends on but the box coordinates: few distinct values in a manifest.
_SHAPE_FIELDS = tuple(_G[g] for g in ("width", "height", "name1", "name2", "amore", "attr1", "attr2", "c1", "c2", "c3",
                                      "objects", "k1", "v1", "cmmore"))
_COORDS = tuple(_G[k + i] for i in "123" for k in "ltwh")
_BOX_NUMBERS = tuple(_G[k + i] for i in "123" for k in "cltwh")
_WIDTH, _BMORE = _G["width"], _G["bmore"]
REF_GROUP = _G["ref"]
BUCKET_GROUP = _G["bucket"]
SIMPLE_GROUPS = (_G["width"], _G["amore"], _G["bmore"], _G["name1"], _G["name2"], _G["attr1"], _G["attr2"])
"""For a matched line whose first three of these groups are None (no boxes, at most two labels),
``simple_labels`` of the others is ``match_labels`` of the match, without a call per line; with
boxes but the 2nd and 3rd None, ``boxes_labels`` applies."""
_CLASS_PAIR_RE = re.compile(rf'"({_STR}+)":0,"{_STR}+":\{{"class-name":"({_STR}+)"')
_DIGITS_RE = re.compile(r"[0-9]+")
_CM_RE = re.compile(rf'"([0-9]+)":"({_STR}+)"')

canonical_match = _CANONICAL_RE.fullmatch
"""The match of a line in canonical form (its ``REF_GROUP`` and ``BUCKET_GROUP``), or None; then
``match_labels`` gives its verdict. Lines longer than ``MAX_LINE_CHARS`` must not be passed."""


def simple_labels(name1, name2, attr1, attr2) -> tuple[str, ...] | None:
    """match_labels of a line without boxes whose ``amore`` group is None (at most two labels)."""
    if name2 is None:
        return () if name1 is None else (name1,)
    if attr1 == attr2:
        return None  # a repeated key: JSON would keep only the last one
    return (name1, name2) if name1 != name2 else (name1,)


def _class_labels(name1, name2, amore, attr1, attr2) -> set[str] | None:
    if not amore:
        labels = simple_labels(name1, name2, attr1, attr2)
        return None if labels is None else set(labels)
    pairs = _CLASS_PAIR_RE.findall(amore)
    keys = {attr1, attr2, *(attr for attr, _ in pairs)}
    if len(keys) != len(pairs) + 2:
        return None  # a repeated key
    return {name1, name2, *(label for _, label in pairs)}


def _image_size(width_s: str, height_s: str) -> tuple[int, int, float] | None:
    """Width, height and the smallest box side that survives the training-time resize, if the size is valid."""
    width, height = int(width_s), int(height_s)
    if not (MIN_IMAGE_SIDE <= width <= MAX_IMAGE_SIDE and MIN_IMAGE_SIDE <= height <= MAX_IMAGE_SIDE):
        return None
    longest = max(width, height)
    if longest / min(width, height) > MAX_ASPECT_RATIO:
        return None
    return width, height, longest / TRAINING_MAX_SIDE if longest > TRAINING_MAX_SIDE else 1  # > 1 px after scaling


def _class_map(k1, v1, cmmore) -> dict | None:
    class_map = {k1: v1}
    if cmmore:
        pairs = _CM_RE.findall(cmmore)
        class_map.update(pairs)
        if len(class_map) != len(pairs) + 1:
            return None  # a repeated class id
    return class_map


_INVALID = ("invalid",)
# _SHAPE_FIELDS values -> (labels, boxes, width, height, min_side) or _INVALID. A manifest has few
# (sizes, label sets, class maps), so each is judged once; the coordinates are checked every time.
_SHAPES: dict = {}
_MAX_SHAPES = 4096


def _shape(values: tuple):
    """The verdict on a line with up to three boxes, but for the boxes' coordinates."""
    width_s, height_s, name1, name2, amore, attr1, attr2, c1, c2, c3, objects, k1, v1, cmmore = values
    labels = _class_labels(name1, name2, amore, attr1, attr2)
    size = _image_size(width_s, height_s)
    if labels is None or size is None:
        return _INVALID
    ids = [c for c in (c1, c2, c3) if c is not None]
    if ids:  # no boxes is a warning only (WARNING_NO_ATTRIBUTE_ANNOTATIONS / _NO_ANNOTATIONS)
        class_map = _class_map(k1, v1, cmmore) if k1 is not None else None
        if class_map is None or objects.count("{") != len(ids):
            return _INVALID
        for class_id in ids:
            if class_id not in class_map:
                return _INVALID
            labels.add(class_map[class_id])
    if len(labels) > MAX_LABELS_PER_IMAGE:
        return _INVALID
    return frozenset(labels), len(ids), *size


def _shape_of(values: tuple):
    shape = _SHAPES.get(values)
    if shape is None:
        if len(_SHAPES) >= _MAX_SHAPES:
            _SHAPES.clear()
        shape = _SHAPES[values] = _shape(values)
    return shape


_shape_values = operator.methodcaller("group", *_SHAPE_FIELDS)
_coords = operator.methodcaller("group", *_COORDS)
_labels_of_shape, _boxes_of_shape, _width_of_shape, _height_of_shape, _min_side_of_shape = map(operator.itemgetter, range(5))


def boxes_labels(matches: list) -> list[frozenset[str]] | None:
    """match_labels of each match (as frozensets), checked together by C loops; None if any is not valid.

    For matches whose ``amore`` and ``bmore`` groups are None: at most two labels and three boxes.
    """
    shapes = list(map(_SHAPES.get, map(_shape_values, matches)))
    if None in shapes:
        shapes = [_shape_of(_shape_values(m)) for m in matches]
    if _INVALID in shapes:
        return None
    counts = list(map(_boxes_of_shape, shapes))
    # Each box next to its image's width, height and smallest side.
    widths = list(itertools.chain.from_iterable(map(itertools.repeat, map(_width_of_shape, shapes), counts)))
    heights = list(itertools.chain.from_iterable(map(itertools.repeat, map(_height_of_shape, shapes), counts)))
    sides = list(itertools.chain.from_iterable(map(itertools.repeat, map(_min_side_of_shape, shapes), counts)))
    coords = list(map(int, filter(None, itertools.chain.from_iterable(map(_coords, matches)))))  # l, t, w, h per box
    if len(coords) != 4 * len(widths):
        return None
    lefts, tops, ws, hs = coords[0::4], coords[1::4], coords[2::4], coords[3::4]
    le, add, gt = operator.le, operator.add, operator.gt
    if not (all(map(gt, ws, sides)) and all(map(gt, hs, sides)) and all(map(le, map(add, lefts, ws), widths))
            and all(map(le, map(add, tops, hs), heights))):
        return None
    return list(map(_labels_of_shape, shapes))


def match_labels(m: re.Match) -> set[str] | None:
    """The labels of a line matched by ``canonical_match`` if it is valid (warnings allowed), else None.

    Does not check the bucket (compare ``m[BUCKET_GROUP]``) nor the length. The verdict on all but
    the box coordinates is remembered per distinct value of those parts (``_SHAPE_FIELDS``).
    """
    if m[_WIDTH] is None:
        labels = _class_labels(*m.group(*_CLASS_FIELDS))
        return None if labels is None or len(labels) > MAX_LABELS_PER_IMAGE else labels
    if m[_BMORE]:
        return _many_boxes_labels(m)
    values = m.group(*_SHAPE_FIELDS)
    shape = _shape(values) if values[4] else _shape_of(values)  # over two labels: dates make it unique
    if shape is _INVALID:
        return None
    labels, boxes, width, height, min_side = shape
    if boxes:
        coords = m.group(*_COORDS)
        for k in range(0, 4 * boxes, 4):
            w, h = int(coords[k + 2]), int(coords[k + 3])
            if w <= min_side or h <= min_side or int(coords[k]) + w > width or int(coords[k + 1]) + h > height:
                return None
    return set(labels)


def _many_boxes_labels(m: re.Match) -> set[str] | None:
    """match_labels of a line with more than three boxes."""
    width_s, height_s, name1, name2, amore, attr1, attr2, _, _, _, objects, k1, v1, cmmore = m.group(*_SHAPE_FIELDS)
    labels = _class_labels(name1, name2, amore, attr1, attr2)
    size = _image_size(width_s, height_s)
    if labels is None or size is None or k1 is None:
        return None
    width, height, min_side = size
    numbers = m.group(*_BOX_NUMBERS) + tuple(_DIGITS_RE.findall(m[_BMORE]))  # five integers per box
    boxes = len(numbers) // 5
    class_map = _class_map(k1, v1, cmmore)
    if boxes > MAX_BOXES_PER_IMAGE or objects.count("{") != boxes or class_map is None:
        return None
    column = iter(numbers)
    for class_id, left, top, w, h in zip(column, column, column, column, column):
        label = class_map.get(class_id)
        w, h = int(w), int(h)
        if label is None or w <= min_side or h <= min_side or int(left) + w > width or int(top) + h > height:
            return None
        labels.add(label)
    if len(labels) > MAX_LABELS_PER_IMAGE:
        return None
    return labels


def fast_check(line: str, expected_bucket: str | None = None) -> set[str] | None:
    """The line's labels if it is in canonical form and valid (warnings allowed), else None.

    An empty set is a valid line without labels (a verified empty image). None does not mean
    invalid: call validate_line for the verdict and the reasons.
    """
    if len(line) > MAX_LINE_CHARS:
        return None
    m = _CANONICAL_RE.fullmatch(line)
    if m is None or (expected_bucket is not None and m[BUCKET_GROUP] != expected_bucket):
        return None
    return match_labels(m)
