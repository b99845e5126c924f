"""No verified answer is lost: whatever a turn brings, a human-verified line of the cumulative manifest
stays, or is replaced by a newer human answer; a bad box costs only itself; an invalid newest answer
leaves the older valid one; images of another bucket stop the merge before anything is written."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rekfeedback.core.manifest import parse_record
from rekfeedback.core.merge import ImagesBucketChanged, merge_manifest

from .test_merge_properties import BUCKET, answer, answer_st, by_ref, labels_of, run


def _previous(manifest: str):
    return lambda: iter(manifest.splitlines(keepends=True))


# -- what a turn may bring: valid answers, and every kind of bad one ---------------------------------
def _tweak(text: str, change: dict) -> str:
    row = json.loads(text)
    row.update(change)
    return json.dumps(row)


bad_change_st = st.sampled_from([
    {"kind": "polygon"},                                          # not a kind the merge knows
    {"kind": "boxes", "width": None},                             # boxes without image size
    {"kind": "classification", "labels": [7]},                    # a label that is not a string
    {"width": 10, "height": 10},                                  # an image Rekognition refuses
    {"kind": "boxes", "boxes": [{"label": "star", "left": 1, "top": 1, "width": 1, "height": 1}]},  # only a stray box
    {"kind": "boxes", "boxes": [{"label": "star", "left": 630, "top": 0, "width": 50, "height": 50}]},  # outside
    {"answered_at": "yesterday"},
    {"source-ref": "not-a-uri"},
])
bad_answer_st = st.builds(_tweak, answer_st, bad_change_st)
stray_box_st = st.builds(
    lambda text, box: _tweak(text, {"kind": "boxes", "boxes": [{"label": "circle", "left": 20, "top": 20, "width": 40,
                                                                "height": 40}, box]}),
    answer_st, st.sampled_from([{"label": "star", "left": 3, "top": 3, "width": 1, "height": 1},
                                {"label": "star", "left": 600, "top": 400, "width": 90, "height": 90}]))
line_st = st.one_of(answer_st, answer_st, bad_answer_st, stray_box_st, st.sampled_from(["{not json", "[]", '"x"']))


def _human_lines(manifest: str) -> dict:
    return {ref: record for ref, record in by_ref(manifest).items() if parse_record(record)[0].human}


@settings(max_examples=60, deadline=None)
@given(old=st.lists(answer_st, min_size=1, max_size=10), new=st.lists(line_st, max_size=14),
       foreign=st.booleans(), data=st.data())
def test_a_merge_never_removes_or_downgrades_a_human_verified_line(old, new, foreign, data):
    previous, _, _ = run(old)
    if foreign:  # the turn's images came from another bucket
        new = new + [answer(99).replace(f"s3://{BUCKET}/", "s3://other-bucket/")]
    new = data.draw(st.permutations(new))
    try:
        merged, rejects, summary = run(new, previous=_previous(previous))
    except ImagesBucketChanged as exc:
        assert foreign and exc.bucket == BUCKET and exc.answers.get("other-bucket") == 1
        return
    assert not foreign, "an answer from another bucket must stop the merge, not drop lines"
    after = by_ref(merged)
    for ref, before in _human_lines(previous).items():
        assert ref in after, f"{ref}: a human-verified line was removed"
        now = parse_record(after[ref])[0]
        if after[ref] != before:
            assert now.human, f"{ref}: a human line was replaced by an auto-accepted one"
            assert now.newest_date >= parse_record(before)[0].newest_date, f"{ref}: replaced by an older answer"
    # Every dropped box is listed and counted; the lines that kept the others are valid.
    box_rows = [r for r in rejects if r["stage"] == "box"]
    assert summary["boxes_dropped"] == len(box_rows)
    assert summary["rejects"] == len(rejects) - len(box_rows)


# -- the cases, one by one -----------------------------------------------------------------------------
def test_an_invalid_newest_answer_leaves_the_older_valid_answer_and_is_reported():
    older = answer(1, labels=["circle"], at="2026-11-26T07:00:00Z", source="job-a")
    newest = _tweak(answer(1, labels=["square"], at="2026-11-26T09:00:00Z", source="job-b"), {"labels": [None]})
    manifest, rejects, summary = run([newest, older])
    record = by_ref(manifest)["s3://bkt/img/0001.jpg"]
    assert labels_of(record) == {"circle"} and record["circle-metadata"]["job-name"] == "job-a"
    assert [(r["code"], r["source-ref"], r["line"]) for r in rejects] == [("INVALID_ANSWER", "s3://bkt/img/0001.jpg", 1)]
    assert summary["answers"]["fallback"] == 1 and summary["answers"]["applied_human"] == 1


def test_an_invalid_newest_answer_keeps_the_previous_line_when_no_valid_answer_beats_it():
    previous, _, _ = run([answer(1, labels=["star"], at="2026-11-26T08:00:00Z", source="turn-1")])
    stale = answer(1, labels=["circle"], at="2026-11-26T07:00:00Z", source="job-a")  # valid, but older than the line
    newest = _tweak(answer(1, at="2026-11-26T09:00:00Z", source="job-b"), {"kind": "polygon"})
    merged, rejects, summary = run([newest, stale], previous=_previous(previous))
    assert merged == previous
    assert [r["code"] for r in rejects] == ["INVALID_ANSWER"] and summary["answers"]["fallback"] == 0


def test_one_stray_box_is_dropped_listed_and_counted_and_the_rest_of_the_answer_kept():
    boxes = [{"label": "circle", "left": 20, "top": 30, "width": 80, "height": 60},
             {"label": "star", "left": 200, "top": 100, "width": 1, "height": 1},  # a stray click
             {"label": "star", "left": 300, "top": 200, "width": 50, "height": 40}]
    manifest, rejects, summary = run([answer(3, kind="boxes", labels=["circle", "star"], boxes=boxes)])
    record = by_ref(manifest)["s3://bkt/img/0003.jpg"]
    kept = [(a["left"], a["top"], a["width"], a["height"]) for a in record["bounding-box"]["annotations"]]
    assert kept == [(20, 30, 80, 60), (300, 200, 50, 40)] and labels_of(record) == {"circle", "star"}
    assert record["bounding-box-metadata"]["human-annotated"] == "yes"
    [row] = rejects
    assert row["stage"] == "box" and row["code"] == "ERROR_BOUNDING_BOX_TOO_SMALL"
    assert row["box"] == {"label": "star", "left": 200, "top": 100, "width": 1, "height": 1}
    assert row["source-ref"] == "s3://bkt/img/0003.jpg" and row["line"] == 1
    assert summary["boxes_dropped"] == 1 and summary["rejects"] == 0 and not summary["threshold_exceeded"]


def test_an_answer_whose_only_box_is_bad_is_not_written_as_a_verified_empty_image():
    stray = [{"label": "star", "left": 5, "top": 5, "width": 1, "height": 1}]
    manifest, rejects, summary = run([answer(4, kind="boxes", labels=["star"], boxes=stray)])
    assert manifest == "" and summary["images"]["verified_empty"] == 0
    assert [r["code"] for r in rejects] == ["ERROR_BOUNDING_BOX_TOO_SMALL"] and summary["rejects"] == 1


def test_images_of_another_bucket_stop_the_merge_before_anything_is_written():
    previous, _, _ = run([answer(i) for i in range(3)])
    moved = [answer(i).replace(f"s3://{BUCKET}/", "s3://new-bucket/") for i in range(10, 30)]
    out, rejects = [], []
    with pytest.raises(ImagesBucketChanged, match="dataset_name") as exc:
        merge_manifest(answers=[("answers.jsonl", moved)], previous=_previous(previous),
                       write_manifest=out.append, write_reject=rejects.append)
    assert exc.value.bucket == BUCKET and exc.value.previous == {BUCKET: 3} and exc.value.answers == {"new-bucket": 20}
    assert out == [] and rejects == []
    # An explicit images_bucket that is not the previous manifest's does not drop its lines either.
    with pytest.raises(ImagesBucketChanged):
        merge_manifest(answers=[("answers.jsonl", [answer(5)])], previous=_previous(previous),
                       write_manifest=out.append, write_reject=rejects.append, images_bucket="new-bucket")
    assert out == [] and rejects == []


def test_a_verified_previous_line_with_one_bad_box_keeps_its_other_boxes():
    # Written by another tool (Ground Truth's own bounding-box job): one box is a stray 1x1 click.
    line = {"source-ref": "s3://bkt/img/0200.jpg",
            "boxes": {"image_size": [{"width": 640, "height": 480, "depth": 3}],
                      "annotations": [{"class_id": 0, "left": 10, "top": 10, "width": 80, "height": 60},
                                      {"class_id": 1, "left": 300, "top": 300, "width": 1, "height": 1}]},
            "boxes-metadata": {"objects": [{"confidence": 0.9}, {"confidence": 0.9}], "class-map": {"0": "circle", "1": "star"},
                               "type": "groundtruth/object-detection", "human-annotated": "yes",
                               "creation-date": "2026-10-01T00:00:00.000", "job-name": "labeling-job/seed"}}
    manifest, rejects, summary = run([], previous=lambda: iter([json.dumps(line) + "\n"]))
    record = by_ref(manifest)["s3://bkt/img/0200.jpg"]
    entry = parse_record(record)[0]
    assert entry.human and [(b["label"], b["width"]) for b in entry.detection.boxes] == [("circle", 80)]
    assert [(r["stage"], r["code"], r["box"]["label"]) for r in rejects] == [("box", "ERROR_BOUNDING_BOX_TOO_SMALL", "star")]
    assert summary["boxes_dropped"] == 1 and summary["rejects"] == 0
    assert summary["images"]["rewritten_from_previous"] == 1
