"""The Rekognition manifest line: canonical writing and reading back."""

from __future__ import annotations

import json

import pytest

from rekfeedback.core.manifest import (
    BOX_ATTRIBUTE, CLASSIFICATION_TYPE, DETECTION_TYPE, Detection, ImageEntry, ImageLabel, Provenance,
    attribute_name, build_line, manifest_date, parse_record,
)

HUMAN = Provenance(human=True, job_name="rekfeedback-job-7", creation_date="2026-11-26T07:12:00.000000", confidence=0.67)
MACHINE = Provenance(human=False, job_name="auto", creation_date="2026-11-20T01:00:00.000000", confidence=1.0)


def test_classification_line_has_one_attribute_per_label_with_full_metadata():
    entry = ImageEntry("s3://bkt/img/a.jpg", labels=[ImageLabel("square", HUMAN), ImageLabel("circle", HUMAN)])
    line = build_line(entry)
    record = json.loads(line)
    assert "\n" not in line
    assert list(record) == ["source-ref", "circle", "circle-metadata", "square", "square-metadata"]
    assert record["circle"] == 0
    assert record["circle-metadata"] == {
        "class-name": "circle", "confidence": 0.67, "type": CLASSIFICATION_TYPE, "job-name": "rekfeedback-job-7",
        "human-annotated": "yes", "creation-date": "2026-11-26T07:12:00.000000",
    }


def test_detection_line_has_image_size_class_map_and_one_confidence_per_box():
    boxes = ({"label": "star", "left": 5, "top": 6, "width": 30, "height": 40},
             {"label": "circle", "left": 50, "top": 60, "width": 20, "height": 20},
             {"label": "star", "left": 1, "top": 2, "width": 10, "height": 10})
    entry = ImageEntry("s3://bkt/img/b.png", width=320, height=240, detection=Detection(boxes, MACHINE))
    record = json.loads(build_line(entry))
    body, meta = record[BOX_ATTRIBUTE], record[BOX_ATTRIBUTE + "-metadata"]
    assert body["image_size"] == [{"width": 320, "height": 240, "depth": 3}]
    assert meta["class-map"] == {"0": "circle", "1": "star"}
    assert body["annotations"] == [
        {"class_id": 0, "left": 50, "top": 60, "width": 20, "height": 20},
        {"class_id": 1, "left": 1, "top": 2, "width": 10, "height": 10},
        {"class_id": 1, "left": 5, "top": 6, "width": 30, "height": 40},
    ]
    assert meta["objects"] == [{"confidence": 1.0}] * 3
    assert meta["type"] == DETECTION_TYPE and meta["human-annotated"] == "no" and meta["job-name"] == "auto"


def test_same_entry_in_any_order_gives_the_same_bytes_and_reads_back():
    a = ImageEntry("s3://bkt/x.jpg", labels=[ImageLabel("b", HUMAN), ImageLabel("a", MACHINE)])
    b = ImageEntry("s3://bkt/x.jpg", labels=[ImageLabel("a", MACHINE), ImageLabel("b", HUMAN)])
    assert build_line(a) == build_line(b)
    back, left_out = parse_record(json.loads(build_line(a)))
    assert left_out == []
    assert {(lab.name, lab.provenance) for lab in back.labels} == {("a", MACHINE), ("b", HUMAN)}
    assert back.human and back.newest_date == HUMAN.creation_date


def test_boxes_need_the_image_size():
    entry = ImageEntry("s3://bkt/x.jpg", detection=Detection(({"label": "a", "left": 0, "top": 0, "width": 9, "height": 9},), HUMAN))
    with pytest.raises(ValueError, match="width and height"):
        build_line(entry)


def test_reserved_label_names_get_a_stable_safe_attribute():
    for label in ("source-ref", "bounding-box", "x-metadata", "bounding-box-2"):
        attr = attribute_name(label)
        assert attr != label and attr == attribute_name(label) and attr.startswith("label-")
    assert attribute_name("circle") == "circle"
    entry = ImageEntry("s3://bkt/x.jpg", labels=[ImageLabel("source-ref", HUMAN)])
    record = json.loads(build_line(entry))
    assert record["source-ref"] == "s3://bkt/x.jpg"
    assert parse_record(record)[0].labels[0].name == "source-ref"


def test_manifest_date_converts_zones_and_refuses_garbage():
    assert manifest_date("2026-11-26T07:12:00Z") == "2026-11-26T07:12:00.000000"
    assert manifest_date("2026-11-26T09:12:00+02:00") == "2026-11-26T07:12:00.000000"
    assert manifest_date("2018-10-18T22:18:13.527256") == "2018-10-18T22:18:13.527256"
    for bad in ("yesterday", "", None, 12):
        with pytest.raises(ValueError):
            manifest_date(bad)


def test_parse_reads_ground_truth_outputs_and_leaves_out_what_rekognition_does_not_train_on():
    record = {
        "source-ref": "s3://bkt/img-2.jpg",
        "bbox": {"image_size": [{"width": 1024, "height": 768, "depth": 3}],
                 "annotations": [{"class_id": 0, "left": 100, "top": 50, "width": 200, "height": 120}]},
        "bbox-metadata": {"objects": [{"confidence": 0.91}], "class-map": {"0": "scratch"}, "type": DETECTION_TYPE,
                          "human-annotated": "no", "creation-date": "2024-05-01T12:00:00", "job-name": "pred"},
        "bbox-reviewed": {"image_size": [{"width": 1024, "height": 768, "depth": 3}],
                          "annotations": [{"class_id": 0, "left": 96, "top": 48, "width": 210, "height": 122}]},
        "bbox-reviewed-metadata": {"objects": [{"confidence": 0}], "class-map": {"0": "scratch"}, "type": DETECTION_TYPE,
                                   "human-annotated": "yes", "creation-date": "2024-05-01T12:41:10.000000",
                                   "job-name": "labeling-job/bbox-reviewed", "adjustment-status": "adjusted"},
        "verify": "1",
        "verify-metadata": {"class-name": "bad", "confidence": 0.9, "type": "groundtruth/label-verification",
                            "human-annotated": "yes", "creation-date": "2024-05-01T12:00:00"},
        "multi": [0, 2],
        "multi-metadata": {"class-map": {"0": "a", "1": "b", "2": "c"}, "confidence-map": {"0": 0.5, "2": 0.7},
                           "type": "groundtruth/image-classification-multilabel", "human-annotated": "yes",
                           "creation-date": "2024-05-02T00:00:00"},
    }
    entry, left_out = parse_record(record)
    # The newest human box set wins; the prediction's boxes do not come back.
    assert entry.detection.boxes == ({"label": "scratch", "left": 96, "top": 48, "width": 210, "height": 122},)
    assert (entry.width, entry.height) == (1024, 768)
    assert [(lab.name, lab.provenance.confidence) for lab in entry.labels] == [("a", 0.5), ("c", 0.7)]
    assert "verify" in left_out and any("older duplicate" in x for x in left_out)
