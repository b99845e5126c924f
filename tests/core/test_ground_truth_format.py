"""Ground Truth formats (core.ground_truth): names, input lines, output manifests -> normalized answers."""

from __future__ import annotations

import json

import pytest

from rekfeedback.core import ground_truth as gt

from rekfeedback.core import ground_truth_jobs as gtjobs
from rekfeedback.core import review
from rekfeedback.core import verification_task as vt

JOB = "feedback-run-1-adjust-boxes-p00"


def item(ref, predicted, route="human", kind="boxes", w=200, h=100):
    return {"source-ref": ref, "width": w, "height": h, "kind": kind, "route": route, "predicted": predicted,
            "predicted_at": "2026-11-26T05:00:00Z"}


T = "s3://bkt/loop/feedback_loop/run-1"


def p(name, conf=90.0, box=None):
    return {"name": name, "confidence": conf, "box": box}


@pytest.mark.parametrize("dag_id, run_id", [
    ("feedback_loop", "manual__2026-11-26T05:00:00+00:00"),
    ("d" * 200, "scheduled__2026-11-26T05:00:00+00:00"),
    ("__weird__", "__"),
])
def test_job_names_are_valid_deterministic_and_distinct(dag_id, run_id):
    names = {gtjobs.job_name(dag_id, run_id, kind, part, turn=T) for kind in gt.JOB_KINDS for part in range(3)}
    assert len(names) == len(gt.JOB_KINDS) * 3
    for name in names:
        assert gtjobs.JOB_NAME_RE.fullmatch(name) and len(name) <= 63 and name == name.lower()
    assert gtjobs.job_name(dag_id, run_id, "verify-labels", 0, turn=T) == gtjobs.job_name(dag_id, run_id, "verify-labels", 0, turn=T)
    # Two long runs sharing a prefix still differ (hash of the full ids).
    assert gtjobs.job_name(dag_id, run_id + "a" * 80, "label-boxes", 0, turn=T) != gtjobs.job_name(
        dag_id, run_id + "a" * 80 + "b", "label-boxes", 0, turn=T)
    # Two loops (dev and prod, same DAG and schedule) never share a name: the turn's prefix is in the hash.
    assert gtjobs.job_name(dag_id, run_id, "label-boxes", 0, turn=T) != gtjobs.job_name(
        dag_id, run_id, "label-boxes", 0, turn="s3://other-bucket/loop/x")
    with pytest.raises(ValueError):
        gtjobs.job_name(dag_id, run_id, "nope", 0, turn=T)


def test_verification_lines_follow_the_team_contract():
    items = [item(f"s3://b/{i}.jpg", [p("cat", 91.2)], kind="classification") for i in range(5)]
    lines = gt.verification_lines(items, 2, ["cat", "dog"])
    assert [l["source"] for l in lines] == ["batch-00000", "batch-00001", "batch-00002"]
    assert lines[0]["images"][0] == {"source-ref": "s3://b/0.jpg", "width": 200, "height": 100,
                                     "predicted": [{"name": "cat", "confidence": 91.2}]}
    assert lines[0]["labels"] == ["cat", "dog"]
    text = gt.manifest_text(lines)
    assert len(text.splitlines()) == 3 and json.loads(text.splitlines()[2])["images"][0]["source-ref"] == "s3://b/4.jpg"


def test_manifest_text_refuses_oversized_attributes():
    many = [item(f"s3://b/{'x' * 200}-{i}.jpg", [p("cat")], kind="classification") for i in range(100)]
    with pytest.raises(ValueError, match="lower batch_size"):
        gt.manifest_text(gt.verification_lines(many, 100, ["cat"]))


def test_box_review_line_is_an_object_detection_prior():
    it = item("s3://b/a.jpg", [p("dog", 80, {"left": 0.5, "top": 0.5, "width": 0.25, "height": 0.5}),
                               p("cat", 60, {"left": 0.1, "top": 0.1, "width": 0.1, "height": 0.2})])
    line = gt.box_review_line(it, ["cat", "dog"])
    assert line["prediction"]["image_size"] == [{"width": 200, "height": 100, "depth": 3}]
    assert line["prediction"]["annotations"] == [{"class_id": 1, "left": 100, "top": 50, "width": 50, "height": 50},
                                                 {"class_id": 0, "left": 20, "top": 10, "width": 20, "height": 20}]
    assert line["prediction-metadata"]["class-map"] == {"1": "dog", "0": "cat"}
    assert line["prediction-metadata"]["objects"] == [{"confidence": 0.8}, {"confidence": 0.6}]
    assert line["prediction-metadata"]["type"] == "groundtruth/object-detection"
    with pytest.raises(ValueError, match="not in the job's label set"):
        gt.box_review_line(it, ["cat"])
    assert gt.label_category_config(["cat", "dog"]) == {"document-version": "2018-11-28",
                                                        "labels": [{"label": "cat"}, {"label": "dog"}]}


def test_builtin_lambda_arns():
    assert gtjobs.builtin_lambda_arn("eu-west-1", "ACS", gt.ADJUST_BOXES) == \
        "arn:aws:lambda:eu-west-1:568282634449:function:ACS-AdjustmentBoundingBox"
    with pytest.raises(ValueError, match="not available in region"):
        gtjobs.builtin_lambda_arn("sa-east-1", "PRE", gt.LABEL_BOXES)


def test_pre_annotation_and_worker_answer_forms():
    line = {"source": "batch-00000", "images": [{"source-ref": "s3://b/a.jpg", "width": 1, "height": 1,
                                                  "predicted": [{"name": "cat", "confidence": 91.2}]}]}
    out = vt.pre_annotation(line)
    assert out["isHumanAnnotationRequired"] == "true"
    assert out["taskInput"]["batch"] == "batch-00000" and out["taskInput"]["labels"] == ["cat"]
    parsed = {"images": [{"source-ref": "s3://b/a.jpg", "verdicts": [{"name": "cat", "present": False}],
                          "added": ["dog"]}]}
    for form in (parsed, {"answer": json.dumps(parsed)}, {"answer": parsed}, json.dumps({"answer": json.dumps(parsed)})):
        assert vt.worker_answer(form) == parsed
    with pytest.raises(ValueError):
        vt.worker_answer({"something": 1})


def test_consolidate_object_majority_vote():
    def w(cat_present, added=()):
        return {"answer": json.dumps({"images": [
            {"source-ref": "s3://b/a.jpg", "verdicts": [{"name": "cat", "present": cat_present}], "added": list(added)},
            {"source-ref": "s3://b/b.jpg", "verdicts": [], "added": ["dog"]}]})}
    value = vt.consolidate_object([w(True), w(False, ["bird"]), w(True)])
    a, b = value["images"]
    # The vote only: the diff against the prediction is the collect step's (parse_output_manifest).
    assert a == {"source-ref": "s3://b/a.jpg", "labels": ["cat"], "workers": 3, "agreement": pytest.approx(0.6667),
                 "label_agreement": {"bird": 0.3333, "cat": 0.6667},
                 "candidates": [{"labels": ["cat"]}, {"labels": ["bird"]}, {"labels": ["cat"]}]}
    assert b["labels"] == ["dog"] and "added" not in b and b["agreement"] == 1.0
    assert value["workers"] == 3 and value["agreement"] == pytest.approx((2 / 3 + 1) / 2, abs=1e-4)


def _custom_output_line(attr="verified-labels"):
    return {"source": "batch-00000",
            "images": [{"source-ref": "s3://b/a.jpg", "width": 640, "height": 480,
                        "predicted": [{"name": "cat", "confidence": 91.2}, {"name": "dog", "confidence": 55}]}],
            attr: {"images": [{"source-ref": "s3://b/a.jpg", "labels": ["cat", "square"], "confirmed": ["cat"],
                               "rejected": ["dog"], "added": ["square"], "workers": 3, "agreement": 0.6667}],
                   "workers": 3, "agreement": 0.6667},
            f"{attr}-metadata": {"type": "groundtruth/custom", "job-name": "job-v", "human-annotated": "yes",
                                 "creation-date": "2026-11-26T07:12:00.000000"}}


def items_of(*items):
    return {i["source-ref"]: i for i in items}


CAT_BOX = {"left": 0.05, "top": 0.1, "width": 0.25, "height": 0.4}  # (10, 10, 50, 40) px of 200 x 100
CLS_ITEMS = items_of(item("s3://b/a.jpg", [p("cat", 91.2), p("dog", 55)], kind="classification", w=640, h=480))


def test_parse_custom_verification_output():
    text = json.dumps(_custom_output_line()) + "\n" + json.dumps(
        {"source": "batch-00001", "images": [{"source-ref": "s3://b/z.jpg"}], "verified-labels": {},
         "verified-labels-metadata": {"worker-response-ref": "s3://x", "creation-date": "2026-11-26T07:00:00"}}) + "\n"
    answers, unresolved = gt.parse_output_manifest(text, job_name="job-v", label_attribute="verified-labels", workers=3,
                                                   items=CLS_ITEMS)
    [a] = answers
    assert a["labels"] == ["cat", "square"] and a["confirmed"] == ["cat"] and a["rejected"] == ["dog"]
    assert a["added"] == ["square"] and a["workers"] == 3 and a["agreement"] == 0.6667
    assert a["source"] == "job-v" and a["answered_at"] == "2026-11-26T07:12:00Z" and a["backend"] == "ground-truth"
    assert a["width"] == 640 and a["kind"] == "classification" and a["human"] is True
    assert unresolved == [{"source-ref": "s3://b/z.jpg", "job": "job-v",
                           "reason": "no answer in the output (not labelled, expired or failed)"}]


def test_custom_answers_are_diffed_against_the_review_item_and_joined_to_it():
    # What the Lambda or the input line claim about the prediction is not used: the diff is made once, here.
    line = _custom_output_line()
    line["images"][0]["predicted"] = []
    line["verified-labels"]["images"][0].update(confirmed=[], rejected=[], added=["cat", "square"])
    [a], _ = gt.parse_output_manifest(json.dumps(line), job_name="job-v", label_attribute="verified-labels",
                                      workers=3, items=CLS_ITEMS)
    assert (a["confirmed"], a["rejected"], a["added"]) == (["cat"], ["dog"], ["square"])
    # An answered image that is not a review item of the turn: said, never guessed.
    with pytest.raises(ValueError, match=r"job-v output line 1: 's3://b/a.jpg' is not a review item"):
        gt.parse_output_manifest(json.dumps(line), job_name="job-v", label_attribute="verified-labels", items={})


def _prior(annotations, class_map):
    return {"prediction": {"image_size": [{"width": 200, "height": 100, "depth": 3}], "annotations": annotations},
            "prediction-metadata": {"objects": [{"confidence": 0.9}] * len(annotations), "class-map": class_map,
                                    "type": "groundtruth/object-detection", "human-annotated": "no",
                                    "creation-date": "2026-11-26T05:00:00", "job-name": "rekognition-prediction"}}


def test_parse_bounding_box_adjustment_output():
    line = {"source-ref": "s3://b/a.jpg",
            **_prior([{"class_id": 0, "left": 10, "top": 10, "width": 50, "height": 40},
                      {"class_id": 1, "left": 100, "top": 50, "width": 40, "height": 40}], {"0": "cat", "1": "dog"}),
            "adjusted-boxes": {"image_size": [{"width": 200, "height": 100, "depth": 3}],
                               "annotations": [{"class_id": 0, "left": 14, "top": 12, "width": 50, "height": 40},
                                               {"class_id": 2, "left": 150, "top": 0, "width": 30, "height": 30}]},
            "adjusted-boxes-metadata": {"objects": [{"confidence": 0}, {"confidence": 0}],
                                        "class-map": {"0": "cat", "2": "bird"}, "type": "groundtruth/object-detection",
                                        "human-annotated": "yes", "creation-date": "2026-11-26T08:00:00",
                                        "job-name": f"labeling-job/{JOB}", "adjustment-status": "adjusted"}}
    boxes = items_of(item("s3://b/a.jpg", [p("cat", box=CAT_BOX),
                                           p("dog", box={"left": 0.5, "top": 0.5, "width": 0.2, "height": 0.4})]))
    [a], unresolved = gt.parse_output_manifest(json.dumps(line), job_name=JOB, label_attribute="adjusted-boxes",
                                               items=boxes)
    assert unresolved == []
    assert a["kind"] == "boxes" and a["width"] == 200 and a["labels"] == ["bird", "cat"]
    assert [(b["label"], b["status"]) for b in a["boxes"]] == [("cat", "adjusted"), ("bird", "added")]
    assert a["confirmed"] == ["cat"] and a["adjusted"] == ["cat"] and a["rejected"] == ["dog"] and a["added"] == ["bird"]
    assert a["answered_at"] == "2026-11-26T08:00:00Z" and a["agreement"] == 1.0


def test_parse_bounding_box_verification_output():
    prior = _prior([{"class_id": 0, "left": 10, "top": 10, "width": 50, "height": 40}], {"0": "cat"})
    good = {"source-ref": "s3://b/a.jpg", **prior, "verified-boxes": "0",
            "verified-boxes-metadata": {"class-name": "correct", "confidence": 0.0, "type": "groundtruth/label-verification",
                                        "human-annotated": "yes", "creation-date": "2026-11-26T08:00:00"}}
    bad = {**good, "source-ref": "s3://b/b.jpg", "verified-boxes": "1",
           "verified-boxes-metadata": {**good["verified-boxes-metadata"], "class-name": "incorrect"}}
    text = json.dumps(good) + "\n" + json.dumps(bad) + "\n"
    items = items_of(*(item(f"s3://b/{n}.jpg", [p("cat", box=CAT_BOX)]) for n in "ab"))
    answers, unresolved = gt.parse_output_manifest(text, job_name="j", label_attribute="verified-boxes", items=items)
    assert [a["source-ref"] for a in answers] == ["s3://b/a.jpg"]
    assert answers[0]["confirmed"] == ["cat"] and answers[0]["boxes"][0]["status"] == "unchanged"
    assert unresolved[0]["source-ref"] == "s3://b/b.jpg" and "incorrect" in unresolved[0]["reason"]


def test_parse_bounding_box_labelling_and_multilabel_classification_output():
    boxes_line = {"source-ref": "s3://b/a.jpg",
                  "labelled-boxes": {"image_size": [{"width": 200, "height": 100, "depth": 3}],
                                     "annotations": [{"class_id": 0, "left": 1, "top": 2, "width": 3, "height": 4}]},
                  "labelled-boxes-metadata": {"class-map": {"0": "cat"}, "objects": [{"confidence": 0.5}],
                                              "type": "groundtruth/object-detection", "creation-date": "2026-11-26T08:00:00"}}
    [a], _ = gt.parse_output_manifest(json.dumps(boxes_line), job_name="j", label_attribute="labelled-boxes",
                                      items=items_of(item("s3://b/a.jpg", [], route="to-label")))
    assert a["added"] == ["cat"] and a["boxes"][0]["status"] == "added" and a["confirmed"] == []
    multi = {"source-ref": "s3://b/c.jpg", "classes": [0, 2],
             "classes-metadata": {"class-map": {"0": "cat", "2": "dog"}, "confidence-map": {"0": 1, "2": 1},
                                  "type": "groundtruth/image-classification-multilabel",
                                  "creation-date": "2026-11-26T08:00:00"}}
    [c], _ = gt.parse_output_manifest(json.dumps(multi), job_name="j", label_attribute="classes",
                                      items=items_of(item("s3://b/c.jpg", [p("cat")], kind="classification", w=5, h=5)))
    assert c["labels"] == ["cat", "dog"] and c["confirmed"] == ["cat"] and c["added"] == ["dog"] and c["width"] == 5


def _review_set(kind, routes):
    items = []
    for i, (route, names) in enumerate(routes):
        preds = [p(n, 90, {"left": 0.1, "top": 0.1, "width": 0.2, "height": 0.2} if kind == "boxes" else None)
                 for n in names]
        items.append(item(f"s3://b/{i:03d}.jpg", preds, route=route, kind=kind))
    return review.ReviewSet(kind=kind, items=items)


def test_plan_classification_jobs():
    rs = _review_set("classification", [("human", ["cat"]), ("audit", ["dog"]), ("to-label", []),
                                        ("auto-accept", ["cat"]), ("unlabelled", [])])
    jobs, leftovers = gtjobs.plan_jobs(rs, labels=["square"], batch_size=5)
    assert [(j["kind"], len(j["items"]), len(j["lines"])) for j in jobs] == [("verify-labels", 2, 1), ("label-classes", 1, 1)]
    assert jobs[0]["labels"] == ["square", "cat", "dog"] and leftovers == []


def test_plan_box_jobs_respect_the_label_cap():
    names = [f"l{i}" for i in range(12)]
    rs = _review_set("boxes", [("human", names[:6]), ("human", names[6:]), ("human", names), ("to-label", [])])
    jobs, leftovers = gtjobs.plan_jobs(rs, batch_size=5, box_task="verification", max_box_labels=10)
    kinds = [j["kind"] for j in jobs]
    assert kinds == ["verify-boxes", "verify-boxes", "label-boxes"] and [j["part"] for j in jobs[:2]] == [0, 1]
    assert all(len(j["labels"]) <= 10 for j in jobs)
    assert [i["source-ref"] for i in leftovers] == ["s3://b/002.jpg"] and "more than 10" in leftovers[0]["reason"]


VALID = dict(workteam_arn="arn:aws:sagemaker:us-east-1:123456789012:workteam/private-crowd/team",
             role_arn="arn:aws:iam::123456789012:role/GroundTruth", pre_annotation_lambda_arn=None,
             annotation_consolidation_lambda_arn=None, labels=None, task_title="t", task_description="d",
             task_keywords=None, task_time_limit_seconds=600, task_availability_lifetime_seconds=864000,
             workers_per_object=1, max_concurrent_tasks=None, kms_key_id=None, tags=None, batch_size=5,
             box_task="adjustment", max_box_labels=10, kind=None, label_unpredicted=False, content_classifiers=None)


@pytest.mark.parametrize("name, value", [
    ("workteam_arn", "team"), ("role_arn", "arn:aws:iam::1:role/x"), ("pre_annotation_lambda_arn", "fn"),
    ("labels", "cat"), ("labels", ["cat", "cat"]), ("task_title", ""), ("task_description", "x" * 256),
    ("task_keywords", ["no_underscores"]), ("task_time_limit_seconds", 10), ("task_availability_lifetime_seconds", 30),
    ("workers_per_object", 10), ("max_concurrent_tasks", 0), ("kms_key_id", ""), ("tags", {"aws:x": "y"}),
    ("batch_size", 0), ("box_task", "draw"), ("max_box_labels", 0), ("kind", "video"), ("label_unpredicted", "yes"),
    ("content_classifiers", ["Nice"]),
])
def test_validate_parameters_names_the_bad_one(name, value):
    gtjobs.validate_parameters(dict(VALID))
    with pytest.raises(ValueError, match=name):
        gtjobs.validate_parameters({**VALID, name: value})


def test_public_workforce_has_a_shorter_availability_cap():
    public = {**VALID, "workteam_arn": "arn:aws:sagemaker:us-east-1:394669845002:workteam/public-crowd/default"}
    with pytest.raises(ValueError, match="task_availability_lifetime_seconds"):
        gtjobs.validate_parameters(public)
    with pytest.raises(ValueError, match="pre_annotation_lambda_arn is required"):
        gtjobs.require_custom_lambdas(VALID)


def test_several_box_workers_who_disagree_are_pending_not_a_unanimous_empty_image():
    # Issue 12: three workers drew [], [square] and [star, triangle]; the built-in consolidation kept no
    # box, and the answer used to be a verified empty image with agreement 1.0.
    line = {"source-ref": "s3://b/a.jpg",
            **_prior([{"class_id": 0, "left": 10, "top": 10, "width": 50, "height": 40}], {"0": "square"}),
            "adjusted-boxes": {"image_size": [{"width": 200, "height": 100, "depth": 3}], "annotations": []},
            "adjusted-boxes-metadata": {"objects": [], "class-map": {}, "type": "groundtruth/object-detection",
                                        "human-annotated": "yes", "creation-date": "2026-11-26T08:00:00",
                                        "job-name": f"labeling-job/{JOB}", "adjustment-status": "adjusted"}}
    text = json.dumps(line)
    items = items_of(item("s3://b/a.jpg", [p("square", box=CAT_BOX)]))
    # Without the workers' own responses the agreement is unknown: 0, so pending.
    [blind], _ = gt.parse_output_manifest(text, job_name=JOB, label_attribute="adjusted-boxes", workers=3, items=items)
    assert blind["agreement"] == 0.0 and blind["consensus"]["status"] == "pending"
    # With them, our consolidation says how much they agreed: one of three said "nothing".
    workers = [{"labels": [], "boxes": []},
               {"labels": ["square"], "boxes": [{"label": "square", "left": 10, "top": 10, "width": 50, "height": 40}]},
               {"labels": ["star", "triangle"], "boxes": [{"label": "star", "left": 100, "top": 10, "width": 30,
                                                           "height": 30},
                                                          {"label": "triangle", "left": 150, "top": 50, "width": 30,
                                                           "height": 30}]}]
    [a], _ = gt.parse_output_manifest(text, job_name=JOB, label_attribute="adjusted-boxes", workers=3, items=items,
                                      worker_answers={"s3://b/a.jpg": workers})
    assert a["boxes"] == [] and a["agreement"] == pytest.approx(0.3333)
    assert a["consensus"]["status"] == "pending" and len(a["consensus"]["candidates"]) == 3
    # Two of three agreeing on the square: verified, the square kept with its share.
    agreeing = [workers[1], workers[1], workers[0]]
    [b], _ = gt.parse_output_manifest(text, job_name=JOB, label_attribute="adjusted-boxes", workers=3, items=items,
                                      worker_answers={"s3://b/a.jpg": agreeing})
    assert b["labels"] == ["square"] and b["consensus"]["status"] == "verified"
    assert b["consensus"]["box_agreement"] == [pytest.approx(0.6667)]
