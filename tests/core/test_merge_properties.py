"""The merge: any order and repetition of the inputs gives the same bytes, every verified answer once."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rekfeedback.core import validation
from rekfeedback.core.manifest import parse_record
from rekfeedback.core.merge import RejectThresholdExceeded, check_reject_threshold, merge_manifest

BUCKET = "bkt"
LABELS = ["circle", "square", "star"]


def answer(i: int, *, kind="classification", labels=("circle",), boxes=(), human=True, at="2026-11-26T07:00:00Z",
           source="job-a", backend=None, **extra) -> str:
    row = {"source-ref": f"s3://{BUCKET}/img/{i:04d}.jpg", "width": 640, "height": 480, "kind": kind,
           "labels": list(labels), "boxes": [dict(b) for b in boxes], "confirmed": list(labels), "rejected": [],
           "added": [], "adjusted": [], "workers": 1, "agreement": 1.0, "human": human,
           "backend": backend or ("ground-truth" if human else "auto-accept"), "source": source,
           "answered_at": at, "answer_id": f"{source}-{i}"}
    row.update(extra)
    return json.dumps(row)


def run(answers, previous=None, unlabelled=(), **kw):
    out, rejects = [], []
    summary = merge_manifest(answers=[("answers.jsonl", answers)], unlabelled=[("unlabelled.jsonl", list(unlabelled))],
                             previous=previous, write_manifest=out.append, write_reject=rejects.append, **kw)
    return "".join(out), [json.loads(r) for r in rejects], summary


def by_ref(manifest: str) -> dict:
    return {json.loads(line)["source-ref"]: json.loads(line) for line in manifest.splitlines()}


def labels_of(record) -> set:
    return parse_record(record)[0].label_names()


# -- properties ------------------------------------------------------------------------------------
box_st = st.fixed_dictionaries({"label": st.sampled_from(LABELS), "left": st.integers(0, 300), "top": st.integers(0, 200),
                                "width": st.integers(5, 300), "height": st.integers(5, 250)})
answer_st = st.builds(
    lambda i, kind, labels, boxes, human, minute, source: answer(
        i, kind=kind, labels=sorted({b["label"] for b in boxes}) if kind == "boxes" else labels,
        boxes=boxes if kind == "boxes" else (), human=human, at=f"2026-11-26T07:{minute:02d}:00Z", source=source),
    i=st.integers(0, 12), kind=st.sampled_from(["classification", "boxes"]),
    labels=st.lists(st.sampled_from(LABELS), unique=True, max_size=3), boxes=st.lists(box_st, max_size=3),
    human=st.booleans(), minute=st.integers(0, 5), source=st.sampled_from(["job-a", "job-b"]),
)


def expected_winners(answers: list[str]) -> dict:
    best = {}
    for text in answers:
        a = json.loads(text)
        # Ties break on the answer's sorted compact JSON (core.ranking), not on how the line was written.
        rank = (a["human"], a["answered_at"], a["answer_id"], json.dumps(a, sort_keys=True, separators=(",", ":"),
                                                                          ensure_ascii=False))
        if a["source-ref"] not in best or rank > best[a["source-ref"]][0]:
            best[a["source-ref"]] = (rank, a)
    return {ref: a for ref, (_, a) in best.items()}


@settings(max_examples=60, deadline=None)
@given(answers=st.lists(answer_st, min_size=1, max_size=15), data=st.data())
def test_any_order_and_repetition_gives_the_same_bytes_and_each_answer_once(answers, data):
    manifest, rejects, summary = run(answers)
    assert rejects == []
    # Retries repeat lines, files arrive in any order.
    repeated = data.draw(st.lists(st.sampled_from(answers), max_size=10))
    shuffled = data.draw(st.permutations(answers + repeated))
    again, _, _ = run(shuffled)
    assert again == manifest

    records = by_ref(manifest)
    lines = manifest.splitlines()
    assert len(lines) == len(records) == len(expected_winners(answers))  # each image exactly once
    assert lines == sorted(lines, key=lambda l: json.loads(l)["source-ref"])
    for ref, winner in expected_winners(answers).items():
        record = records[ref]
        assert labels_of(record) == set(winner["labels"])
        entry = parse_record(record)[0]
        assert entry.human == winner["human"]
        if winner["kind"] == "boxes":
            assert sorted(tuple(sorted(b.items())) for b in entry.detection.boxes) == \
                sorted(tuple(sorted({k: b[k] for k in ("label", "left", "top", "width", "height")}.items())) for b in winner["boxes"])
    for line in lines:
        assert validation.validate_line(line, BUCKET).ok

    # Merging into its own output changes nothing (a retry after the cumulative copy).
    third, _, s3 = run(shuffled, previous=lambda: iter(manifest.splitlines(keepends=True)))
    assert third == manifest and s3["images"]["added"] == 0


@settings(max_examples=40, deadline=None)
@given(old=st.lists(answer_st, min_size=1, max_size=10), new=st.lists(answer_st, max_size=10), data=st.data())
def test_nothing_verified_earlier_is_lost(old, new, data):
    previous, _, _ = run(old)
    prev_lines = previous.splitlines(keepends=True)
    shuffled_prev = data.draw(st.permutations(prev_lines))  # an unsorted previous manifest too
    merged, rejects, _ = run(new, previous=lambda: iter(shuffled_prev), chunk_lines=3)
    assert rejects == []
    assert merged == run(new, previous=lambda: iter(prev_lines))[0]
    before, after = by_ref(previous), by_ref(merged)
    assert set(before) <= set(after)
    newest_new = expected_winners(new)
    for ref, record in before.items():
        old_entry = parse_record(record)[0]
        if old_entry.human and not (newest_new.get(ref, {}).get("human")):
            assert after[ref] == record  # a human line is only replaced by a human answer


# -- examples --------------------------------------------------------------------------------------
def test_newest_human_answer_wins_and_rejected_predictions_are_dropped():
    old = answer(1, labels=["circle", "square"], at="2026-11-26T07:00:00Z", source="job-a")
    newer = answer(1, labels=["circle"], rejected=["square"], at="2026-11-26T08:00:00Z", source="job-b")
    auto = answer(1, labels=["star"], human=False, at="2026-11-26T09:00:00Z", source="turn-auto")
    manifest, _, summary = run([newer, auto, old, newer])
    record = by_ref(manifest)["s3://bkt/img/0001.jpg"]
    assert labels_of(record) == {"circle"}
    assert record["circle-metadata"]["job-name"] == "job-b"
    assert record["circle-metadata"]["human-annotated"] == "yes"
    assert record["circle-metadata"]["creation-date"] == "2026-11-26T08:00:00.000000"
    assert summary["answers"] == {"read": 4, "distinct_images": 1, "repeated": 1, "superseded": 2,
                                  "older_than_manifest": 0, "applied": 1, "applied_human": 1, "applied_auto_accepted": 0,
                                  "pending_agreement": 0, "fallback": 0}
    assert summary["labels"]["square"]["rejected"] == 1 and summary["labels"]["circle"]["confirmed"] == 1


def test_adjusted_boxes_replace_predicted_ones_and_an_older_answer_does_not_replace_a_newer_line():
    first = answer(2, kind="boxes", labels=["star"], boxes=[{"label": "star", "left": 10, "top": 10, "width": 50, "height": 50}],
                   at="2026-11-26T10:00:00Z")
    previous, _, _ = run([first])
    adjusted = answer(2, kind="boxes", labels=["star"], adjusted=["star"], at="2026-11-27T10:00:00Z", source="job-c",
                      boxes=[{"label": "star", "left": 12, "top": 9, "width": 60, "height": 52, "status": "adjusted"}])
    merged, _, summary = run([adjusted], previous=lambda: iter(previous.splitlines(True)))
    record = by_ref(merged)["s3://bkt/img/0002.jpg"]
    assert record["bounding-box"]["annotations"] == [{"class_id": 0, "left": 12, "top": 9, "width": 60, "height": 52}]
    assert summary["images"]["updated"] == 1 and summary["labels"]["star"]["adjusted"] == 1
    stale = answer(2, kind="boxes", labels=["star"], at="2026-11-20T00:00:00Z", source="job-old",
                   boxes=[{"label": "star", "left": 0, "top": 0, "width": 9, "height": 9}])
    kept, _, summary = run([stale], previous=lambda: iter(merged.splitlines(True)))
    assert kept == merged and summary["answers"]["older_than_manifest"] == 1


def test_unlabelled_images_are_counted_not_written_and_empty_answers_are_kept_as_verified():
    unlabelled = [json.dumps({"source-ref": f"s3://{BUCKET}/img/{i:04d}.jpg", "route": "unlabelled"}) for i in (5, 6)]
    empty = answer(7, labels=[], confirmed=[])
    manifest, _, summary = run([answer(5), empty], unlabelled=unlabelled)
    refs = by_ref(manifest)
    assert "s3://bkt/img/0006.jpg" not in refs
    assert summary["images"]["unlabelled"] == 1  # image 5 was answered after all
    empty_record = refs["s3://bkt/img/0007.jpg"]
    assert empty_record["bounding-box"]["annotations"] == [] and labels_of(empty_record) == set()
    assert empty_record["bounding-box-metadata"]["human-annotated"] == "yes"
    assert {i.code for i in validation.validate_record(empty_record).issues} == {"WARNING_NO_ATTRIBUTE_ANNOTATIONS"}
    assert summary["images"]["verified_empty"] == 1
    # A later auto-accepted answer does not overwrite the human's "no label applies".
    again, _, _ = run([answer(7, human=False, at="2026-12-01T00:00:00Z")], previous=lambda: iter(manifest.splitlines(True)))
    assert by_ref(again)["s3://bkt/img/0007.jpg"] == empty_record


def test_bad_inputs_go_to_rejects_with_reasons_and_the_threshold_fails():
    bad = ["{not json", json.dumps({"width": 1}), answer(8, answered_at="someday"),
           answer(9, kind="boxes", labels=["star"], boxes=[{"label": "star", "left": 600, "top": 0, "width": 100, "height": 10}])]
    manifest, rejects, summary = run([answer(1), answer(2), answer(3), *bad], images_bucket=BUCKET)
    assert len(manifest.splitlines()) == 3
    assert [r["code"] for r in rejects] == ["ERROR_INVALID_JSON_LINE", "ERROR_MISSING_SOURCE_REF", "INVALID_ANSWER",
                                            "ERROR_INVALID_BOUNDING_BOX"]
    assert all(r["reason"] for r in rejects) and rejects[0]["file"] == "answers.jsonl" and rejects[0]["line"] == 4
    assert summary["rejects"] == 4 and summary["threshold_exceeded"]
    with pytest.raises(RejectThresholdExceeded, match="max_reject_ratio"):
        check_reject_threshold(summary)
    _, _, ok = run([answer(i) for i in range(20)] + bad[:1])
    assert not ok["threshold_exceeded"]
    check_reject_threshold(ok)


def test_previous_lines_from_other_tools_are_kept_rewritten_or_rejected():
    foreign = {"source-ref": "s3://bkt/img/0100.jpg", "shape": 0,
               "shape-metadata": {"class-name": "circle", "confidence": 1.0, "type": "groundtruth/image-classification",
                                  "human-annotated": "yes", "creation-date": "2026-01-01T00:00:00.000",
                                  "job-name": "labeling-job/seed"}}
    with_verification = dict(foreign, **{"source-ref": "s3://bkt/img/0101.jpg", "v": "1",
                                         "v-metadata": {"class-name": "bad", "type": "groundtruth/label-verification",
                                                        "confidence": 1, "human-annotated": "yes", "creation-date": "2026-01-01"}})
    broken = dict(foreign, **{"source-ref": "s3://bkt/img/0102.jpg"})
    broken["shape-metadata"] = dict(foreign["shape-metadata"], **{"creation-date": ""})
    prev = [json.dumps(foreign) + "\n", json.dumps(with_verification) + "\n", "\n", json.dumps(broken) + "\n",
            json.dumps(foreign) + "\n"]
    manifest, rejects, summary = run([], previous=lambda: iter(prev))
    records = by_ref(manifest)
    assert records["s3://bkt/img/0100.jpg"] == foreign  # valid as it is: byte-for-byte
    assert "v" not in records["s3://bkt/img/0101.jpg"] and labels_of(records["s3://bkt/img/0101.jpg"]) == {"circle"}
    assert "s3://bkt/img/0102.jpg" not in records
    assert sorted(r["code"] for r in rejects) == ["ERROR_INVALID_LABEL_ATTRIBUTE_METADATA_FORMAT",
                                                   "TERMINAL_DUPLICATE_SOURCE_REF"]
    assert summary["images"]["rewritten_from_previous"] == 1 and summary["previous"]["lines"] == 3
