"""Review items and routing (core.review)."""

from __future__ import annotations

import json

import pytest

from rekfeedback.core import review
from rekfeedback.core.predictions import read_prediction_lines


def line(ref, labels, error=None, width=640, height=480):
    return {"source-ref": ref, "width": width, "height": height, "format": "jpeg", "labels": labels, "error": error,
            "model": "arn:aws:rekognition:us-east-1:123456789012:project/p/version/v1/1",
            "predicted_at": "2026-11-26T05:00:00Z"}


def lab(name, conf, box=None):
    return {"name": name, "confidence": conf, "box": box}


def test_kind_is_boxes_when_any_label_has_a_box():
    lines = [line("s3://b/a.jpg", [lab("cat", 90)]),
             line("s3://b/b.jpg", [lab("dog", 80, {"left": 0.1, "top": 0.1, "width": 0.2, "height": 0.2})])]
    assert review.detect_kind(lines) == "boxes"
    assert review.detect_kind(lines[:1]) == "classification"
    assert {i["kind"] for i in review.build_review_set(lines).items} == {"boxes"}


def test_default_routing_sends_every_prediction_to_humans_and_lists_the_rest():
    lines = [line("s3://b/c.jpg", [lab("cat", 99.9)]), line("s3://b/a.jpg", []),
             line("s3://b/b.jpg", [], error={"code": "InvalidImageFormatException", "message": "x"}, width=None)]
    rs = review.build_review_set(lines)
    assert [i["source-ref"] for i in rs.items] == ["s3://b/a.jpg", "s3://b/b.jpg", "s3://b/c.jpg"]
    assert {i["source-ref"]: i["route"] for i in rs.items} == {
        "s3://b/a.jpg": "unlabelled", "s3://b/b.jpg": "unlabelled", "s3://b/c.jpg": "human"}
    assert rs.counts() == {"human": 1, "audit": 0, "auto_accept": 0, "to_label": 0, "unlabelled": 2}
    reasons = {u["source-ref"]: u["reason"] for u in map(review.unlabelled_line, rs.by_route("unlabelled"))}
    assert reasons == {"s3://b/a.jpg": "no-prediction", "s3://b/b.jpg": "error"}


def test_unpredicted_images_go_to_labelling_only_when_asked_and_never_corrupt_ones():
    lines = [line("s3://b/a.jpg", []), line("s3://b/b.jpg", [], error={"code": "E", "message": "m"})]
    rs = review.build_review_set(lines, review.RoutingPolicy(label_unpredicted=True))
    assert {i["source-ref"]: i["route"] for i in rs.items} == {"s3://b/a.jpg": "to-label", "s3://b/b.jpg": "unlabelled"}


def test_auto_accept_with_audit_is_deterministic_and_close_to_the_rate():
    lines = [line(f"s3://b/img-{i:04d}.jpg", [lab("cat", 95), lab("dog", 91)]) for i in range(2000)]
    lines.append(line("s3://b/low.jpg", [lab("cat", 95), lab("dog", 60)]))
    policy = review.RoutingPolicy(auto_accept_threshold=90, audit_rate=0.1, seed=3)
    first = review.build_review_set(lines, policy)
    second = review.build_review_set(list(reversed(lines)), policy)
    assert [i["route"] for i in first.items] == [i["route"] for i in second.items]
    counts = first.counts()
    assert counts["human"] == 1  # the one with a low-confidence label
    assert 150 <= counts["audit"] <= 250 and counts["audit"] + counts["auto_accept"] == 2000
    other_seed = review.build_review_set(lines, review.RoutingPolicy(90, 0.1, seed=4))
    assert [i["route"] for i in other_seed.items] != [i["route"] for i in first.items]


def test_duplicates_are_kept_once_and_counted():
    lines = [line("s3://b/a.jpg", [lab("cat", 80)]), line("s3://b/a.jpg", [lab("dog", 80)])]
    rs = review.build_review_set(lines)
    assert len(rs.items) == 1 and rs.items[0]["predicted"][0]["name"] == "cat" and rs.duplicates == 1


@pytest.mark.parametrize("bad, message", [
    ({"labels": []}, "source-ref"),
    ({"source-ref": "s3://b/a.jpg", "labels": "cat"}, "'labels'"),
    ({"source-ref": "s3://b/a.jpg", "labels": [{"name": "cat", "confidence": 9}], "width": None, "height": 4,
      "error": None}, "'width'"),
])
def test_bad_prediction_lines_name_file_and_line(bad, message):
    text = json.dumps(line("s3://b/ok.jpg", [])) + "\n" + json.dumps(bad) + "\n"
    with pytest.raises(ValueError, match=rf"preds.jsonl line 2: .*{message}"):
        list(read_prediction_lines(text, "preds.jsonl"))
    with pytest.raises(ValueError, match="line 1: not valid JSON"):
        list(read_prediction_lines("{oops\n", "p"))


@pytest.mark.parametrize("kwargs", [{"auto_accept_threshold": 101}, {"audit_rate": 1.5}, {"seed": "x"}])
def test_bad_policy(kwargs):
    with pytest.raises(ValueError):
        review.RoutingPolicy(**kwargs)


def test_batches_and_label_packing():
    assert review.batches(list(range(7)), 3) == [[0, 1, 2], [3, 4, 5], [6]]
    with pytest.raises(ValueError):
        review.batches([1], 0)
    items = [{"source-ref": f"s3://b/{i}.jpg", "predicted": [{"name": n} for n in names]}
             for i, names in enumerate([["a", "b"], ["c"], ["d", "e"], ["a", "b", "c", "d", "e", "f"]])]
    groups, too_many = review.pack_by_labels(items, 3)
    assert [i["source-ref"] for i in too_many] == ["s3://b/3.jpg"]
    assert all(len(labels) <= 3 for labels, _ in groups)
    covered = sorted(i["source-ref"] for _, members in groups for i in members)
    assert covered == ["s3://b/0.jpg", "s3://b/1.jpg", "s3://b/2.jpg"]
    for labels, members in groups:
        for m in members:
            assert {p["name"] for p in m["predicted"]} <= set(labels)
