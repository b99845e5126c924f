"""The simulated workers' policies (pure) and the built-in task answers/consolidation built on them."""

from __future__ import annotations

import random

import pytest

from rekfeedback.core.boxes import iou
from rekfeedback_local.emulator import gt_builtin, policy

TRUTH = {"labels": ["circle"], "boxes": [{"label": "circle", "left": 10, "top": 20, "width": 50, "height": 40},
                                         {"label": "square", "left": 100, "top": 100, "width": 30, "height": 30}]}
PREDICTED = {"labels": ["circle", "star"],
             "boxes": [{"label": "circle", "left": 12, "top": 21, "width": 48, "height": 40},
                       {"label": "star", "left": 5, "top": 150, "width": 20, "height": 20}]}
LABELS = ["circle", "square", "star", "triangle"]


def test_oracle_without_errors_answers_the_truth():
    answer = policy.worker_answer(TRUTH, PREDICTED, "oracle", random.Random(1), 0.0, LABELS)
    # The predicted circle fits its object (IoU 0.96): a person leaves it alone; the missed square is drawn.
    assert iou(PREDICTED["boxes"][0], TRUTH["boxes"][0]) >= policy.GOOD_ENOUGH_IOU
    assert answer == {"labels": ["circle", "square"], "boxes": [PREDICTED["boxes"][0], TRUTH["boxes"][1]]}


def test_oracle_redraws_a_box_that_fits_badly():
    loose = {"labels": ["circle"], "boxes": [{"label": "circle", "left": 0, "top": 10, "width": 70, "height": 60}]}
    assert iou(loose["boxes"][0], TRUTH["boxes"][0]) < policy.GOOD_ENOUGH_IOU
    answer = policy.worker_answer(TRUTH, loose, "oracle", random.Random(1), 0.0, LABELS)
    assert answer["boxes"] == TRUTH["boxes"]


def test_accept_all_keeps_predictions_and_reject_all_keeps_nothing():
    accepted = policy.worker_answer(TRUTH, PREDICTED, "accept-all", random.Random(1))
    assert accepted == {"labels": ["circle", "star"], "boxes": PREDICTED["boxes"]}
    assert policy.worker_answer(TRUTH, PREDICTED, "reject-all", random.Random(1)) == {"labels": [], "boxes": []}


def test_oracle_without_truth_cannot_do_better_than_the_model():
    assert policy.worker_answer(None, PREDICTED, "oracle", random.Random(1), 0.5, LABELS) == policy.normalize(PREDICTED)


def test_oracle_error_rate_makes_about_that_share_of_mistakes():
    rng = random.Random(42)
    wrong = sum(policy.worker_answer(TRUTH, None, "oracle", rng, 0.3, LABELS, (640, 480))
                != policy.normalize(TRUTH) for _ in range(400))
    # Two boxes and a chance of an extra label, each wrong with p=0.3: 1 - 0.7**3 ~ 0.66 of answers differ.
    assert 0.5 < wrong / 400 < 0.8
    always = [policy.worker_answer(TRUTH, None, "oracle", rng, 1.0, LABELS, (640, 480)) for _ in range(50)]
    assert all(a != policy.normalize(TRUTH) for a in always)


def test_misplaced_boxes_miss_their_object_and_stay_inside_the_image():
    rng = random.Random(3)
    for _ in range(200):
        answer = policy.worker_answer({"boxes": [TRUTH["boxes"][0]]}, None, "oracle", rng, 1.0, ["circle"], (64, 64))
        for box in answer["boxes"]:
            assert box["left"] >= 0 and box["top"] >= 0
            assert box["left"] + box["width"] <= 64 or box == TRUTH["boxes"][0]
            assert iou(box, TRUTH["boxes"][0]) < 0.5


def test_same_seed_same_answers():
    a = [policy.worker_answer(TRUTH, PREDICTED, "oracle", random.Random(9), 0.4, LABELS) for _ in range(3)]
    assert a[0] == a[1] == a[2]


@pytest.mark.parametrize("bad", [{"policy": "lazy"}, {"error_rate": 1.5}])
def test_bad_policy_arguments_are_named(bad):
    kwargs = {"policy": "oracle", "error_rate": 0.0, **bad}
    with pytest.raises(ValueError, match="policy|error_rate"):
        policy.worker_answer(TRUTH, None, kwargs["policy"], random.Random(0), kwargs["error_rate"])


def test_box_without_coordinates_is_refused():
    with pytest.raises(ValueError, match="lacks left"):
        policy.normalize({"boxes": [{"label": "circle"}]})


def test_verification_answer_has_one_verdict_per_predicted_name_and_the_additions():
    answer = {"labels": ["circle", "square"], "boxes": []}
    out = policy.verification_answer("s3://b/i.png", ["circle", "star", "circle"], answer)
    assert out == {"source-ref": "s3://b/i.png",
                   "verdicts": [{"name": "circle", "present": True}, {"name": "star", "present": False}],
                   "added": ["square"]}


def test_bounding_box_answer_is_crowd_bounding_box_output():
    out = policy.bounding_box_answer(PREDICTED, 640, 480, initial=PREDICTED["boxes"])
    assert out["inputImageProperties"] == {"height": 480, "width": 640}
    assert [b["label"] for b in out["boundingBoxes"]] == ["circle", "star"]
    assert out["initialValueModified"] is False
    assert policy.bounding_box_answer(TRUTH, 640, 480, initial=PREDICTED["boxes"])["initialValueModified"] is True
    assert "initialValueModified" not in policy.bounding_box_answer(TRUTH, 640, 480)


# ---- built-in task consolidation -------------------------------------------------------------------------

def _box_contents(task, answers, initial=None):
    return [gt_builtin.worker_content(task, a, LABELS, random.Random(0), size=(640, 480), initial=initial)
            for a in answers]


def test_adjustment_consolidation_matches_boxes_across_workers_and_flags_adjusted():
    moved = {"boxes": [{**TRUTH["boxes"][0], "left": 14}, TRUTH["boxes"][1]]}
    contents = _box_contents(gt_builtin.ADJUSTMENT, [TRUTH, TRUTH, moved], initial=PREDICTED["boxes"])
    value, meta = gt_builtin.consolidate(gt_builtin.ADJUSTMENT, contents, LABELS, job_name="j",
                                         creation_date="2024-01-01T00:00:00.000000", size=(640, 480, 3),
                                         initial=PREDICTED["boxes"])
    assert value["image_size"] == [{"width": 640, "height": 480, "depth": 3}]
    assert value["annotations"] == [{"class_id": 0, "left": 11, "top": 20, "width": 50, "height": 40},
                                    {"class_id": 1, "left": 100, "top": 100, "width": 30, "height": 30}]
    assert meta == {"objects": [{"confidence": 1.0}, {"confidence": 1.0}], "class-map": {"0": "circle", "1": "square"},
                    "type": "groundtruth/object-detection", "human-annotated": "yes",
                    "creation-date": "2024-01-01T00:00:00.000000", "job-name": "labeling-job/j",
                    "adjustment-status": "adjusted"}


def test_unchanged_boxes_are_unadjusted_and_one_worker_has_zero_confidence():
    contents = _box_contents(gt_builtin.ADJUSTMENT, [PREDICTED], initial=PREDICTED["boxes"])
    value, meta = gt_builtin.consolidate(gt_builtin.ADJUSTMENT, contents, LABELS, job_name="j", creation_date="d",
                                         size=(640, 480, 3), initial=PREDICTED["boxes"])
    assert meta["adjustment-status"] == "unadjusted"
    assert meta["objects"] == [{"confidence": 0.0}, {"confidence": 0.0}]
    assert [a["class_id"] for a in value["annotations"]] == [0, 2]


def test_minority_boxes_are_dropped():
    extra = {"boxes": TRUTH["boxes"] + [{"label": "star", "left": 300, "top": 300, "width": 40, "height": 40}]}
    contents = _box_contents(gt_builtin.BOUNDING_BOX, [TRUTH, TRUTH, extra])
    value, meta = gt_builtin.consolidate(gt_builtin.BOUNDING_BOX, contents, LABELS, job_name="j", creation_date="d",
                                         size=(640, 480, 3))
    assert sorted(meta["class-map"].values()) == ["circle", "square"]
    assert "adjustment-status" not in meta and len(value["annotations"]) == 2


def test_verification_votes_good_or_bad_with_feedback():
    good = _box_contents(gt_builtin.VERIFICATION, [PREDICTED, PREDICTED], initial=PREDICTED["boxes"])
    bad = _box_contents(gt_builtin.VERIFICATION, [TRUTH], initial=PREDICTED["boxes"])
    value, meta = gt_builtin.consolidate(gt_builtin.VERIFICATION, good + bad, LABELS, job_name="j", creation_date="d")
    assert value == "0" and meta["class-name"] == "good" and meta["confidence"] == 0.67
    assert meta["type"] == "groundtruth/label-verification"
    assert meta["worker-feedback"] == [{"comment": "missing: square; wrong: star"}]


def test_classification_outputs():
    single = [gt_builtin.worker_content(gt_builtin.SINGLE_LABEL, {"labels": ["square"]}, LABELS, random.Random(0))
              for _ in range(2)]
    value, meta = gt_builtin.consolidate(gt_builtin.SINGLE_LABEL, single, LABELS, job_name="j", creation_date="d")
    assert value == 1 and meta["class-name"] == "square" and meta["type"] == "groundtruth/image-classification"
    multi = [gt_builtin.worker_content(gt_builtin.MULTI_LABEL, {"labels": ls}, LABELS, random.Random(0))
             for ls in (["circle", "star"], ["circle"], ["circle", "star"])]
    value, meta = gt_builtin.consolidate(gt_builtin.MULTI_LABEL, multi, LABELS, job_name="j", creation_date="d")
    assert value == [0, 2]
    assert meta["class-map"] == {"0": "circle", "2": "star"}
    assert meta["confidence-map"] == {"0": 1.0, "2": 0.67}
    assert meta["type"] == "groundtruth/image-classification-multilabel"


def test_builtin_arns_are_recognised_only_for_aws_accounts_of_the_region():
    arn = "arn:aws:lambda:us-east-1:432418664414:function:ACS-AdjustmentBoundingBox"
    assert gt_builtin.builtin_task(arn, "us-east-1") == "AdjustmentBoundingBox"
    assert gt_builtin.builtin_task("arn:aws:lambda:us-east-1:123456789012:function:PRE-Mine", "us-east-1") is None
    with pytest.raises(ValueError, match="arn:aws:lambda:us-east-1:432418664414"):
        gt_builtin.builtin_task(arn.replace("us-east-1:432418664414", "eu-west-1:568282634449"), "us-east-1")
    with pytest.raises(ValueError, match="not emulated"):
        gt_builtin.builtin_task(arn.replace("AdjustmentBoundingBox", "VideoObjectTracking"), "us-east-1")


def test_verdicts_come_from_the_template():
    template = """<crowd-image-classifier name="crowd-image-classifier" categories="['Correct', 'Wrong']">"""
    assert gt_builtin.verdict_options(template) == ("Correct", "Wrong")
    assert gt_builtin.verdict_options(None) == ("good", "bad")
