"""The validator: each kind of invalid line Rekognition documents is rejected with its documented name."""

from __future__ import annotations

import copy
import json

import pytest

from rekfeedback.core import validation as v
from rekfeedback.core.manifest import Detection, ImageEntry, ImageLabel, Provenance, build_line

PROV = Provenance(True, "job", "2026-11-26T07:12:00.000000", 1.0)


def good_box_record(**size):
    return json.loads(build_line(ImageEntry(
        "s3://bkt/images/a.jpg", width=size.get("width", 640), height=size.get("height", 480),
        detection=Detection(({"label": "cat", "left": 10, "top": 20, "width": 100, "height": 80},), PROV))))


def good_class_record():
    return json.loads(build_line(ImageEntry("s3://bkt/images/a.jpg", labels=[ImageLabel("cat", PROV)])))


def codes(check):
    return {issue.code for issue in check.issues}


def mutate(record, fn):
    rec = copy.deepcopy(record)
    fn(rec)
    return rec


BB, BBM = "bounding-box", "bounding-box-metadata"

# (name, record or raw line, documented code)
INVALID = [
    ("missing source-ref", mutate(good_class_record(), lambda r: r.pop("source-ref")), v.ERROR_MISSING_SOURCE_REF),
    ("https source-ref", mutate(good_class_record(), lambda r: r.update({"source-ref": "https://bkt.s3.amazonaws.com/a.jpg"})),
     v.ERROR_INVALID_SOURCE_REF_FORMAT),
    ("no metadata", mutate(good_class_record(), lambda r: r.pop("cat-metadata")), v.ERROR_NO_LABEL_ATTRIBUTES),
    ("metadata without attribute", mutate(good_class_record(), lambda r: r.pop("cat")), v.ERROR_NO_LABEL_ATTRIBUTES),
    ("metadata lacks creation-date", mutate(good_class_record(), lambda r: r["cat-metadata"].pop("creation-date")),
     v.ERROR_INVALID_LABEL_ATTRIBUTE_METADATA_FORMAT),
    ("confidence over 1", mutate(good_class_record(), lambda r: r["cat-metadata"].update({"confidence": 91.2})),
     v.ERROR_INVALID_LABEL_ATTRIBUTE_METADATA_FORMAT),
    ("bad image_size", mutate(good_box_record(), lambda r: r[BB].update({"image_size": [{"width": 640}]})),
     v.ERROR_INVALID_LABEL_ATTRIBUTE_FORMAT),
    ("missing box confidence", mutate(good_box_record(), lambda r: r[BBM].update({"objects": []})),
     v.ERROR_MISSING_BOUNDING_BOX_CONFIDENCE),
    ("class id not in map", mutate(good_box_record(), lambda r: r[BB]["annotations"][0].update({"class_id": 7})),
     v.ERROR_MISSING_CLASS_MAP_ID),
    ("box off the frame", mutate(good_box_record(), lambda r: r[BB]["annotations"][0].update({"left": 600})),
     v.ERROR_INVALID_BOUNDING_BOX),
    ("negative box", mutate(good_box_record(), lambda r: r[BB]["annotations"][0].update({"top": -3})),
     v.ERROR_INVALID_BOUNDING_BOX),
    ("box 1px wide", mutate(good_box_record(), lambda r: r[BB]["annotations"][0].update({"width": 1})),
     v.ERROR_BOUNDING_BOX_TOO_SMALL),
    ("box too small after resize to 1280", mutate(good_box_record(width=4000, height=3000),
                                                  lambda r: r[BB]["annotations"][0].update({"width": 3})),
     v.ERROR_BOUNDING_BOX_TOO_SMALL),
    ("no valid box", mutate(good_box_record(), lambda r: r[BB]["annotations"][0].update({"left": 9999})),
     v.ERROR_NO_VALID_ANNOTATIONS),
    ("51 boxes", mutate(good_box_record(), lambda r: (r[BB].update({"annotations": r[BB]["annotations"] * 51}),
                                                        r[BBM].update({"objects": r[BBM]["objects"] * 51}))),
     v.ERROR_TOO_MANY_BOUNDING_BOXES),
    ("label-verification type", mutate(good_class_record(), lambda r: r["cat-metadata"].update({"type": "groundtruth/label-verification"})),
     v.ERROR_UNSUPPORTED_USE_CASE_TYPE),
    ("multilabel type", mutate(good_class_record(), lambda r: r["cat-metadata"].update({"type": "groundtruth/image-classification-multilabel"})),
     v.ERROR_UNSUPPORTED_USE_CASE_TYPE),
    ("label name of 257 characters", mutate(good_class_record(), lambda r: r["cat-metadata"].update({"class-name": "x" * 257})),
     v.ERROR_INVALID_LABEL_NAME_LENGTH),
    ("only an unsupported attribute", mutate(good_class_record(), lambda r: r["cat-metadata"].update({"type": "groundtruth/custom"})),
     v.ERROR_NO_VALID_LABEL_ATTRIBUTES),
    ("image under 64 px", good_box_record(width=63, height=480), v.ERROR_INVALID_IMAGE_DIMENSION),
    ("image over 4096 px", good_box_record(width=4097, height=480), v.ERROR_INVALID_IMAGE_DIMENSION),
    ("aspect ratio over 20:1", good_box_record(width=4000, height=150), v.ERROR_INVALID_IMAGE),
    ("not a PNG or JPEG", mutate(good_class_record(), lambda r: r.update({"source-ref": "s3://bkt/images/a.gif"})),
     v.ERROR_INVALID_IMAGE),
    ("51 labels", mutate(good_class_record(), lambda r: [r.update({f"l{i}": 0, f"l{i}-metadata": dict(r["cat-metadata"], **{"class-name": f"l{i}"})}) for i in range(50)]),
     v.LIMIT_TOO_MANY_LABELS_PER_IMAGE),
    ("not JSON", '{"source-ref": "s3://bkt/a.jpg", ', v.ERROR_INVALID_JSON_LINE),
    ("not an object", "[1, 2]", v.ERROR_INVALID_JSON_LINE),
    ("line over 100,000 characters", mutate(good_class_record(), lambda r: r["cat-metadata"].update({"job-name": "j" * 100_001})),
     v.TERMINAL_LINE_TOO_LONG),
]


@pytest.mark.parametrize("name,record,code", INVALID, ids=[case[0] for case in INVALID])
def test_each_documented_invalid_line_is_rejected_with_its_name(name, record, code):
    line = record if isinstance(record, str) else json.dumps(record)
    check = v.validate_line(line)
    assert not check.ok, name
    assert code in codes(check), (name, check.issues)


def test_images_in_another_bucket_are_rejected():
    line = json.dumps(good_class_record())
    assert v.validate_line(line, expected_bucket="bkt").ok
    check = v.validate_line(line, expected_bucket="other-bucket")
    assert codes(check) == {v.ERROR_IMAGES_IN_MULTIPLE_S3_BUCKETS}


def test_warnings_keep_the_line():
    empty_boxes = mutate(good_box_record(), lambda r: (r[BB].update({"annotations": []}), r[BBM].update({"objects": []})))
    check = v.validate_line(json.dumps(empty_boxes))
    assert check.ok and codes(check) == {v.WARNING_NO_ATTRIBUTE_ANNOTATIONS}
    check = v.validate_line(json.dumps({"source-ref": "s3://bkt/a.jpg"}))
    assert check.ok and codes(check) == {v.WARNING_UNANNOTATED_RECORD}


def test_valid_lines_pass_and_report_their_labels():
    for record, labels in ((good_class_record(), {"cat"}), (good_box_record(), {"cat"})):
        line = json.dumps(record, separators=(",", ":"))
        check = v.validate_line(line)
        assert check.ok and check.issues == [] and check.labels == labels

