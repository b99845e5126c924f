"""Figures of a turn, on hand-built inputs whose answers are worked out by hand in the comments."""

from __future__ import annotations

import json

import pytest

from rekfeedback.core.report import (
    agreement_figures,
    compare_image,
    compute_figures,
    cost_figures,
    reliability_curve,
    summary,
)

EDGES = [50, 60, 70, 80, 90, 100]


def _cls_pred(ref, *labels):
    return {"source-ref": ref, "width": 100, "height": 100, "error": None,
            "labels": [{"name": n, "confidence": c, "box": None} for n, c in labels]}


def _cls_answer(ref, labels, *, human=True, workers=1, agreement=1.0, answered_at="2026-11-26T07:00:00Z"):
    return {"source-ref": ref, "width": 100, "height": 100, "kind": "classification", "labels": list(labels),
            "boxes": [], "human": human, "workers": workers, "agreement": agreement,
            "backend": "ground-truth" if human else "auto-accept", "answered_at": answered_at}


def _graded_turn():
    """Ten reviewed predictions per bucket; confirmed per bucket 5, 8, 9, 10, 10 (50-60 ... 90-100)."""
    preds, answers = [], []
    for k, ok in enumerate([5, 8, 9, 10, 10]):
        for j in range(10):
            ref = f"s3://b/img-{k}-{j}.jpg"
            preds.append(_cls_pred(ref, ("cat", 50 + 10 * k + 5)))
            answers.append(_cls_answer(ref, ["cat"] if j < ok else []))
    return preds, answers


def test_reliability_buckets_count_rates_and_edges():
    outcomes = [(55, True), (58, False), (60, True), (65, True), (95, True), (100, False), (40, True)]
    rel = reliability_curve(outcomes, EDGES, target_error=0.05, min_support=1)
    got = [(b["lower"], b["count"], b["confirmed"]) for b in rel["buckets"]]
    # 60 opens the 60-70 bucket; 100 belongs to the last bucket; 40 is below every bucket.
    assert got == [(50, 2, 1), (60, 2, 2), (70, 0, 0), (80, 0, 0), (90, 2, 1)]
    assert rel["buckets"][0]["rate"] == 0.5
    assert rel["buckets"][2]["rate"] is None
    assert rel["buckets"][1]["mean_confidence"] == 62.5
    assert rel["outside_buckets"] == 1
    assert rel["reviewed"] == 6


def test_integer_buckets_split_0_to_100_evenly():
    rel = reliability_curve([(19.99, True), (20.0, False)], _edges(5), target_error=0.5, min_support=1)
    assert [b["lower"] for b in rel["buckets"]] == [0, 20, 40, 60, 80]
    assert [b["count"] for b in rel["buckets"]] == [1, 1, 0, 0, 0]


def _edges(n):
    from rekfeedback.core.report import _bucket_edges
    return _bucket_edges(n)


@pytest.mark.parametrize(
    ("target", "expected"),
    [
        # expected error at or above each edge: 50: 1-42/50=.16, 60: 1-37/40=.075, 70: 1-29/30=.033, 80: 0
        (0.05, 70),
        (0.08, 60),
        (0.16, 50),
        (0.0, 80),
    ],
)
def test_threshold_is_the_lowest_edge_whose_expected_error_meets_the_target(target, expected):
    preds, answers = _graded_turn()
    figs = compute_figures(preds, answers, buckets=EDGES, target_error=target, min_support=1)
    rel = figs["reliability"]
    assert rel["threshold"] == expected
    assert figs["headline"]["suggested_threshold"] == expected
    cand = {c["threshold"]: c for c in rel["candidates"]}
    assert cand[60]["support"] == 40
    assert cand[60]["expected_error"] == pytest.approx(0.075)
    assert cand[70]["expected_error"] == pytest.approx(1 / 30)
    assert rel["threshold_error"] == pytest.approx(cand[expected]["expected_error"])


def test_no_threshold_when_support_is_too_small_or_target_unreachable():
    preds, answers = _graded_turn()
    # Error 0 is reached only from 80 up, with 20 predictions: below a support of 25.
    rel = compute_figures(preds, answers, buckets=EDGES, target_error=0.0, min_support=25)["reliability"]
    assert rel["threshold"] is None
    assert "no threshold" in rel["reason"]
    rel = compute_figures(preds[:3], answers[:3], buckets=EDGES, target_error=0.0, min_support=25)["reliability"]
    assert rel["threshold"] is None and "only 3 reviewed" in rel["reason"]


def test_box_matching_iou_and_adjusted():
    # 100x100 image. Predicted cat (10,10,40,40) moved to (20,10,40,40): IoU 1200/2000 = 0.6, adjusted.
    # Predicted cat (60,60,20,20) kept as is: IoU 1, not adjusted. Predicted dog: no final box, rejected.
    # Final cat box (0,80,10,10) overlaps no prediction: added.
    pred = {"source-ref": "s3://b/x.jpg", "width": 100, "height": 100, "error": None, "labels": [
        {"name": "cat", "confidence": 91.0, "box": {"left": 0.1, "top": 0.1, "width": 0.4, "height": 0.4}},
        {"name": "cat", "confidence": 81.0, "box": {"left": 0.6, "top": 0.6, "width": 0.2, "height": 0.2}},
        {"name": "dog", "confidence": 55.0, "box": {"left": 0.5, "top": 0.0, "width": 0.1, "height": 0.1}},
    ]}
    answer = {"source-ref": "s3://b/x.jpg", "width": 100, "height": 100, "kind": "boxes", "labels": ["cat"],
              "human": True, "workers": 1, "agreement": 1.0, "answered_at": "2026-11-26T07:00:00Z", "boxes": [
                  {"label": "cat", "left": 60, "top": 60, "width": 20, "height": 20, "status": "unchanged"},
                  {"label": "cat", "left": 20, "top": 10, "width": 40, "height": 40, "status": "adjusted"},
                  {"label": "cat", "left": 0, "top": 80, "width": 10, "height": 10, "status": "added"}]}
    res = compare_image(pred, answer)
    by_conf = {r["confidence"]: r for r in res if r["outcome"] != "added"}
    assert (by_conf[91.0]["outcome"], by_conf[91.0]["adjusted"]) == ("confirmed", True)
    assert by_conf[91.0]["iou"] == pytest.approx(0.6)
    assert (by_conf[81.0]["outcome"], by_conf[81.0]["iou"], by_conf[81.0]["adjusted"]) == ("confirmed", 1.0, False)
    assert (by_conf[55.0]["name"], by_conf[55.0]["outcome"]) == ("dog", "rejected")
    assert [r["name"] for r in res if r["outcome"] == "added"] == ["cat"]
    assert sorted(r["outcome"] for r in res) == ["added", "confirmed", "confirmed", "rejected"]
    adjusted = [r for r in res if r.get("adjusted")]
    assert len(adjusted) == 1 and adjusted[0]["iou"] == pytest.approx(0.6) and adjusted[0]["confidence"] == 91.0

    figs = compute_figures([pred], [answer], min_support=1)
    cat, dog = figs["labels"]["cat"], figs["labels"]["dog"]
    assert (cat["predicted"], cat["reviewed"], cat["confirmed"], cat["adjusted"], cat["added"], cat["rejected"]) == \
        (2, 2, 2, 1, 1, 0)
    assert cat["mean_adjusted_iou"] == pytest.approx(0.6)
    assert cat["mean_matched_iou"] == pytest.approx(0.8)
    assert (dog["rejected"], dog["confirmed"], dog["mean_adjusted_iou"]) == (1, 0, None)


def test_a_box_moved_below_match_iou_is_a_rejection_plus_an_addition():
    # (0,0,20,20) vs (19,0,20,20): IoU 20/780 ~ 0.026, under the default 0.1.
    pred = {"source-ref": "r", "width": 100, "height": 100, "labels": [
        {"name": "cat", "confidence": 70, "box": {"left": 0, "top": 0, "width": 0.2, "height": 0.2}}]}
    answer = {"source-ref": "r", "width": 100, "height": 100, "kind": "boxes", "labels": ["cat"],
              "boxes": [{"label": "cat", "left": 19, "top": 0, "width": 20, "height": 20, "status": "adjusted"}]}
    assert sorted(r["outcome"] for r in compare_image(pred, answer)) == ["added", "rejected"]
    assert [r["outcome"] for r in compare_image(pred, answer, match_iou=0.02) if r["outcome"] != "added"] == ["confirmed"]


def test_a_box_relabelled_is_rejected_and_added():
    pred = {"source-ref": "r", "width": 100, "height": 100, "labels": [
        {"name": "cat", "confidence": 70, "box": {"left": 0, "top": 0, "width": 0.2, "height": 0.2}}]}
    answer = {"source-ref": "r", "width": 100, "height": 100, "kind": "boxes", "labels": ["dog"],
              "boxes": [{"label": "dog", "left": 0, "top": 0, "width": 20, "height": 20, "status": "added"}]}
    assert sorted((r["name"], r["outcome"]) for r in compare_image(pred, answer)) == [("cat", "rejected"), ("dog", "added")]


def test_classification_confirm_reject_add():
    res = compare_image(_cls_pred("r", ("cat", 90), ("dog", 60)), _cls_answer("r", ["cat", "bird"]))
    assert sorted((r["name"], r["outcome"]) for r in res) == [("bird", "added"), ("cat", "confirmed"), ("dog", "rejected")]


def test_agreement_distribution_and_mean():
    preds = [_cls_pred(f"r{i}", ("cat", 80)) for i in range(5)]
    answers = [
        _cls_answer("r0", ["cat"], workers=3, agreement=1 / 3),
        _cls_answer("r1", ["cat"], workers=3, agreement=2 / 3),
        _cls_answer("r2", ["cat"], workers=3, agreement=1.0),
        _cls_answer("r3", [], workers=2, agreement=1.0),
        _cls_answer("r4", ["cat"], workers=1, agreement=1.0),  # one worker: no agreement to measure
    ]
    ag = compute_figures(preds, answers)["agreement"]
    assert ag["answers"] == 4
    assert ag["mean"] == pytest.approx(0.75)
    assert ag["median"] == pytest.approx(5 / 6)
    assert ag["min"] == pytest.approx(1 / 3)
    assert ag["unanimous"] == 2
    assert [h["count"] for h in ag["histogram"]] == [0, 1, 0, 1, 2]
    assert ag["by_label"]["cat"] == pytest.approx(0.75)


def test_agreement_rejects_values_outside_0_1():
    with pytest.raises(ValueError, match="agreement"):
        agreement_figures([(1.5, {"cat"})])


def test_cost():
    cost = cost_figures(inference_unit_hours=2.5, price_per_iu_hour=4.0, human_objects=30, price_per_object=0.08,
                        workforce_price_per_object=0.012, training_hours=1.5, price_per_training_hour=1.0)
    assert cost["inference"] == pytest.approx(10.0)
    assert cost["human_review"] == pytest.approx(2.76)
    assert cost["training"] == pytest.approx(1.5)
    assert cost["total"] == pytest.approx(14.26)
    assert cost["per_human_image"] == pytest.approx(14.26 / 30, abs=1e-4)
    with pytest.raises(ValueError, match="price_per_object"):
        cost_figures(inference_unit_hours=1, price_per_iu_hour=4, human_objects=1, price_per_object=-1)


def test_cost_counts_human_images_unless_objects_are_given():
    preds, answers = _graded_turn()  # 50 human answers
    answers.append(_cls_answer("s3://b/auto.jpg", ["cat"], human=False))
    figs = compute_figures(preds, answers, inference_unit_hours=3, price_per_iu_hour=4, price_per_object=0.1)
    assert figs["cost"]["human_objects"] == 50
    assert figs["cost"]["total"] == pytest.approx(12 + 5)
    assert compute_figures(preds, answers, human_objects=7, price_per_object=0.1)["cost"]["human_review"] == \
        pytest.approx(0.7)


def test_human_answer_wins_over_auto_accept_for_the_same_image():
    preds = [_cls_pred("r", ("cat", 97))]
    answers = [_cls_answer("r", [], human=True), _cls_answer("r", ["cat"], human=False, answered_at="2027")]
    figs = compute_figures(preds, answers)
    assert figs["labels"]["cat"]["rejected"] == 1
    assert figs["labels"]["cat"]["auto_accepted"] == 0
    assert figs["images"]["human"] == 1 and figs["images"]["auto_accepted"] == 0


def test_answers_without_a_prediction_still_count():
    answer = {**_cls_answer("lost", ["cat"]), "confirmed": ["cat"], "rejected": ["dog"]}
    figs = compute_figures([], [answer])
    assert figs["images"]["answers_without_prediction"] == 1
    assert figs["labels"]["cat"]["confirmed"] == 1 and figs["labels"]["dog"]["rejected"] == 1


def test_history_f1_per_version_and_dataset_per_label():
    preds = [_cls_pred("a", ("cat", 90)), _cls_pred("b", ("dog", 90))]
    answers = [_cls_answer("a", ["cat"]), _cls_answer("b", ["dog", "cat"], human=False)]
    first = compute_figures(preds, answers, run="r1",
                            training={"new_version_arn": "v1", "f1_before": 0.5, "f1_after": 0.6, "improved": True})
    assert first["dataset"]["per_label"] == {"cat": 2, "dog": 1}
    stale = {**first, "turn": {**first["turn"], "f1_after": 0.1}}
    second = compute_figures([_cls_pred("c", ("cat", 90))], [_cls_answer("c", ["cat"])], run="r2",
                             history=[stale, first],
                             training={"new_version_arn": "v2", "f1_before": 0.6, "f1_after": 0.7, "improved": True})
    turns = second["history"]["turns"]
    assert [(t["run"], t["version_arn"], t["f1_after"]) for t in turns] == [("r1", "v1", 0.6), ("r2", "v2", 0.7)]
    assert second["dataset"]["per_label"] == {"cat": 3, "dog": 1}
    assert second["dataset"]["previous"] == {"cat": 2, "dog": 1}
    # A re-run of r2 replaces r2's own record instead of appending a second one.
    again = compute_figures([], [], run="r2", history=[first, second])
    assert [t["run"] for t in again["history"]["turns"]] == ["r1", "r2"]
    assert "history" not in again["history"]["turns"][0]


def test_figures_are_json_with_stable_keys():
    preds, answers = _graded_turn()
    figs = compute_figures(preds, answers, run="r", generated_at="2026-11-26T08:00:00Z")
    json.dumps(figs, allow_nan=False)
    assert list(figs) == ["schema", "run", "generated_at", "headline", "images", "label_names", "labels",
                          "reliability", "agreement", "cost", "training", "merge", "dataset", "turn", "history", "inputs"]
    assert set(summary(figs)) >= {"run", "confirmation_rate", "suggested_threshold", "total_cost", "f1_after"}
    assert len(json.dumps(summary(figs))) < 1000


def test_bad_input_names_the_line_and_parameter():
    with pytest.raises(ValueError, match="prediction line 2"):
        compute_figures([_cls_pred("a", ("cat", 90)), {"labels": []}], [])
    with pytest.raises(ValueError, match="target_error"):
        compute_figures([], [], target_error=1.5)
    with pytest.raises(ValueError, match="bucket edges"):
        compute_figures([], [], buckets=[50, 40])
    box_pred = {"source-ref": "r", "labels": [{"name": "cat", "confidence": 70,
                                               "box": {"left": 0, "top": 0, "width": 0.2, "height": 0.2}}]}
    with pytest.raises(ValueError, match="width/height"):
        compute_figures([box_pred], [{"source-ref": "r", "kind": "boxes", "labels": [], "boxes": [], "human": True,
                                        "answered_at": "2026-11-26T07:00:00Z"}])


def test_dataset_per_label_counts_images_in_the_manifest():
    from rekfeedback.core.manifest import Detection, ImageEntry, ImageLabel, Provenance, build_line
    from rekfeedback.core.report import dataset_per_label

    prov = Provenance(human=True, job_name="job", creation_date="2026-11-26T07:00:00.000000", confidence=1.0)
    lines = [
        build_line(ImageEntry("s3://b/1.jpg", labels=[ImageLabel("cat", prov), ImageLabel("dog", prov)])),
        build_line(ImageEntry("s3://b/2.jpg", labels=[ImageLabel("cat", prov)])),
        # two cat boxes in one image: one image for cat
        build_line(ImageEntry("s3://b/3.jpg", width=100, height=100, detection=Detection((
            {"label": "cat", "left": 1, "top": 1, "width": 5, "height": 5},
            {"label": "cat", "left": 20, "top": 20, "width": 5, "height": 5},
            {"label": "bird", "left": 50, "top": 50, "width": 5, "height": 5}), prov))),
        build_line(ImageEntry("s3://b/4.jpg")),  # verified empty
    ]
    assert dataset_per_label(lines) == {"bird": 1, "cat": 3, "dog": 1}
    with pytest.raises(ValueError, match="manifest line 2"):
        dataset_per_label([lines[0], "{not json"])


def test_the_report_picks_the_answer_the_merge_picks():
    # Old rule (>= on the answered_at text) took "08:00+02:00" (06:00 UTC) over "07:00Z"; the merge takes
    # the later instant, and on equal times the larger answer_id.
    from rekfeedback.core.merge import merge_manifest
    from rekfeedback.core.report import compute_figures, dataset_per_label

    early = dict(_cls_answer("s3://bkt/r.jpg", ["cat"], answered_at="2026-11-26T08:00:00+02:00"), answer_id="b")
    late = dict(_cls_answer("s3://bkt/r.jpg", ["dog"], answered_at="2026-11-26T07:00:00Z"), answer_id="a")
    same_time = dict(late, labels=["bird"], answer_id="c")
    # Same time and id, other labels: the report kept whichever came last, the merge one of them whatever the order.
    twin_a = dict(_cls_answer("s3://bkt/t.jpg", ["cat"]), answer_id="x")
    twin_b = dict(twin_a, labels=["dog"])
    # Reviewers disagreed on the newer answer: the merge never writes it, so the older one is the image's answer.
    verified = dict(_cls_answer("s3://bkt/p.jpg", ["cat"]), answer_id="v")
    pending = dict(_cls_answer("s3://bkt/p.jpg", ["dog"], answered_at="2026-11-27T07:00:00Z", workers=3, agreement=0.33),
                   answer_id="w", consensus={"status": "pending"})
    undated = dict(_cls_answer("s3://bkt/p.jpg", ["bird"]), answer_id="z", answered_at="yesterday")

    def merged(answers):
        out = []
        merge_manifest(answers=[("answers.jsonl", [json.dumps(a) for a in answers])], write_manifest=out.append,
                       write_reject=lambda _: None)
        return {json.loads(line)["source-ref"]: set(dataset_per_label([line])) for line in "".join(out).splitlines()}

    def reported(answers):
        figures = compute_figures([], answers)
        return figures["dataset"]["this_turn"]

    for answers in ([late, early, twin_a, twin_b, verified, pending, undated],
                    [undated, pending, twin_b, twin_a, early, same_time, late][::-1],
                    [same_time, late, early, twin_b, twin_a, pending, verified]):
        want = merged(answers)
        per_label: dict = {}
        for labels in want.values():
            for name in labels:
                per_label[name] = per_label.get(name, 0) + 1
        assert reported(answers) == dict(sorted(per_label.items())), answers
    assert merged([late, early])["s3://bkt/r.jpg"] == {"dog"}
    assert merged([same_time, late, early])["s3://bkt/r.jpg"] == {"bird"}
    assert merged([pending, verified, undated])["s3://bkt/p.jpg"] == {"cat"}
    assert merged([twin_a, twin_b]) == merged([twin_b, twin_a])

