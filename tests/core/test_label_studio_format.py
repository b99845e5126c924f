"""Pure tests of the Label Studio formats (config XML, tasks, annotations -> normalized answers)."""

from __future__ import annotations

import xml.etree.ElementTree as ET

import pytest

from rekfeedback.core import answers as answerlib
from rekfeedback.core import label_studio as lsfmt

REF = "s3://bucket/images/img-00001.jpg"
MODEL = "arn:aws:rekognition:us-east-1:123456789012:project/shapes/version/shapes.v1/1700000000000"


def box_item(route="human"):
    return {"source-ref": REF, "width": 640, "height": 480, "kind": "boxes", "route": route, "model": MODEL,
            "predicted": [{"name": "circle", "confidence": 93.0, "box": {"left": 0.1, "top": 0.2, "width": 0.3, "height": 0.4}},
                          {"name": "square", "confidence": 61.0, "box": {"left": 0.5, "top": 0.5, "width": 0.25, "height": 0.25}}]}


def cls_item():
    return {"source-ref": REF, "width": 100, "height": 50, "kind": "classification", "route": "human",
            "predicted": [{"name": "cat", "confidence": 90.0, "box": None},
                          {"name": "dog", "confidence": 55.0, "box": None}]}


def annotation(result, updated="2026-11-26T07:12:00.123456Z", cancelled=False):
    return {"result": result, "was_cancelled": cancelled, "created_at": "2026-11-26T07:00:00Z", "updated_at": updated}


def test_config_boxes_and_choices_are_valid_xml_with_escaped_labels():
    xml = lsfmt.labeling_config(["circle", 'a "quoted" & <odd>'], "boxes")
    root = ET.fromstring(xml)
    rect = root.find("RectangleLabels")
    assert rect.get("name") == lsfmt.RECTANGLES and rect.get("toName") == lsfmt.IMAGE
    assert [e.get("value") for e in rect] == ["circle", 'a "quoted" & <odd>']
    assert root.find("Image").get("value") == "$image"
    choices = ET.fromstring(lsfmt.labeling_config(["cat", "dog"], "classification")).find("Choices")
    assert choices.get("choice") == "multiple" and [e.get("value") for e in choices] == ["cat", "dog"]


@pytest.mark.parametrize("labels,kind,msg", [([], "boxes", "label set is empty"), (["a"], "points", "kind must be")])
def test_config_rejects_bad_input(labels, kind, msg):
    with pytest.raises(ValueError, match=msg):
        lsfmt.labeling_config(labels, kind)


def test_task_carries_percent_boxes_scores_model_version_and_dedupe_key():
    task = lsfmt.task_for_item(box_item(), "http://s3/presigned")
    assert task["data"][lsfmt.SOURCE_KEY] == REF and task["data"]["image"] == "http://s3/presigned"
    pred = task["predictions"][0]
    assert pred["model_version"] == "shapes.v1"
    assert pred["score"] == pytest.approx(0.61)
    first = pred["result"][0]
    assert first["type"] == "rectanglelabels" and first["value"]["rectanglelabels"] == ["circle"]
    assert first["value"]["x"] == pytest.approx(10.0) and first["value"]["y"] == pytest.approx(20.0)
    assert first["value"]["width"] == pytest.approx(30.0) and first["value"]["height"] == pytest.approx(40.0)
    assert first["score"] == pytest.approx(0.93)
    assert (first["original_width"], first["original_height"]) == (640, 480)


def test_classification_task_predicts_choices():
    pred = lsfmt.task_for_item(cls_item(), "u")["predictions"][0]
    assert pred["result"][0]["type"] == "choices" and pred["result"][0]["value"]["choices"] == ["cat", "dog"]
    assert pred["model_version"] == "unknown"


def test_single_annotator_box_answer_is_diffed_against_prediction():
    item = box_item()
    task = lsfmt.task_for_item(item, "u")
    task["id"] = 7
    # Keeps the circle as predicted, drops the square, adds a triangle.
    final = {"labels": ["circle", "triangle"],
             "boxes": [{"label": "circle", "left": 64, "top": 96, "width": 192, "height": 192},
                       {"label": "triangle", "left": 10, "top": 10, "width": 40, "height": 40}]}
    task["annotations"] = [annotation(lsfmt.answer_result(final, 640, 480, "boxes"))]
    ans = lsfmt.normalized_answer(task, item, source="rekfeedback dag run")
    assert ans["backend"] == "label-studio" and ans["source"] == "rekfeedback dag run" and ans["human"] is True
    assert ans["confirmed"] == ["circle"] and ans["rejected"] == ["square"] and ans["added"] == ["triangle"]
    assert ans["labels"] == ["circle", "triangle"]
    assert {b["label"]: b["status"] for b in ans["boxes"]} == {"circle": "unchanged", "triangle": "added"}
    assert ans["answered_at"] == "2026-11-26T07:12:00Z"
    assert ans["workers"] == 1 and ans["agreement"] == 1.0
    answerlib.validate_answer(ans)


def test_three_annotators_majority_with_agreement_and_latest_timestamp():
    task = {**lsfmt.task_for_item(cls_item(), "u"), "id": 1}
    res = lambda labels: lsfmt.answer_result({"labels": labels, "boxes": []}, 100, 50, "classification")  # noqa: E731
    task["annotations"] = [annotation(res(["cat"]), "2026-11-26T07:00:00Z"),
                           annotation(res(["cat"]), "2026-11-26T08:30:00Z"),
                           annotation(res(["cat", "dog"]), "2026-11-26T07:30:00Z"),
                           annotation(res(["dog"]), "2026-11-26T09:00:00Z", cancelled=True)]
    ans = lsfmt.normalized_answer(task, cls_item(), source="p")
    assert ans["labels"] == ["cat"] and ans["confirmed"] == ["cat"] and ans["rejected"] == ["dog"]
    assert ans["workers"] == 3 and ans["agreement"] == pytest.approx(0.6667, abs=1e-3)
    assert ans["answered_at"] == "2026-11-26T08:30:00Z"  # the skipped annotation is no answer


def test_empty_annotation_is_a_verified_no_label_answer_and_unanswered_are_listed():
    answered = {**lsfmt.task_for_item(cls_item(), "u"), "id": 1, "annotations": [annotation([])]}
    other = lsfmt.task_for_item({**cls_item(), "source-ref": "s3://bucket/images/b.jpg"}, "u")
    other["annotations"] = []
    items = {REF: cls_item(), "s3://bucket/images/b.jpg": {**cls_item(), "source-ref": "s3://bucket/images/b.jpg"}}
    answers, unanswered = lsfmt.normalized_answers([answered, other], items, source="p")
    assert [a["labels"] for a in answers] == [[]] and answers[0]["rejected"] == ["cat", "dog"]
    assert unanswered == ["s3://bucket/images/b.jpg"]


def test_answers_are_joined_to_the_review_items_not_to_the_task_data():
    # The diff is against the turn's review item, whatever the task's data says about the prediction.
    task = {**lsfmt.task_for_item(cls_item(), "u"), "id": 1, "annotations": [annotation(
        lsfmt.answer_result({"labels": ["cat"], "boxes": []}, 100, 50, "classification"))]}
    task["data"]["predicted"] = []
    [a], _ = lsfmt.normalized_answers([task], {REF: cls_item()}, source="p")
    assert a["confirmed"] == ["cat"] and a["rejected"] == ["dog"] and a["added"] == []
    with pytest.raises(ValueError, match="not a review item of this turn"):
        lsfmt.normalized_answers([task], {}, source="p")


def test_percent_round_trip_keeps_pixels():
    box = {"label": "circle", "left": 13, "top": 7, "width": 101, "height": 33}
    result = lsfmt.answer_result({"labels": ["circle"], "boxes": [box]}, 333, 211, "boxes")
    assert lsfmt.worker_answer(result, 333, 211)["boxes"] == [box]


def test_task_without_source_ref_is_rejected_with_reason():
    with pytest.raises(ValueError, match="source_ref is missing"):
        lsfmt.normalized_answers([{"id": 3, "data": {"image": "x"}, "annotations": [annotation([])]}], {}, source="p")


def test_project_title_is_deterministic_and_fits():
    t = "s3://b/loop/loop/manual-2026"
    title = lsfmt.project_title("loop", "manual-2026", turn=t)
    assert title.startswith("rekfeedback loop manual-2026 ") and title == lsfmt.project_title("loop", "manual-2026", turn=t)
    assert title != lsfmt.project_title("loop", "manual-2026", turn="s3://other/loop/loop/manual-2026")  # another loop
    long = lsfmt.project_title("d" * 80, "scheduled-2026-11-26T05-00-00-00-00", turn=t)
    assert len(long) <= 50 and long == lsfmt.project_title("d" * 80, "scheduled-2026-11-26T05-00-00-00-00", turn=t)
    assert long != lsfmt.project_title("d" * 80, "scheduled-2026-11-27T05-00-00-00-00", turn=t)


def test_progress_rules():
    assert lsfmt.progress(4, 4, None, False)[0]
    assert not lsfmt.progress(4, 3, 0.5, False)[0]
    assert lsfmt.progress(4, 3, 0.5, True)[0]
    assert not lsfmt.progress(4, 1, 0.5, True)[0]
