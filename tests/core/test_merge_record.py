"""The merge's record: the previous merge's own manifest is carried forward unvalidated, any other is validated."""

from __future__ import annotations

import json

from hypothesis import given, settings
from hypothesis import strategies as st

from rekfeedback.core import merge_record
from rekfeedback.core.merge import merge_manifest

BUCKET = "bkt"
LABELS = ["circle", "square", "star"]


def answer(i: int, *, labels=("circle",), boxes=None, human=True, day=26, source="job-a") -> str:
    row = {"source-ref": f"s3://{BUCKET}/img/{i:04d}.jpg", "width": 640, "height": 480,
           "kind": "classification" if boxes is None else "boxes", "labels": list(labels),
           "boxes": [dict(b) for b in boxes or ()], "confirmed": list(labels), "rejected": [], "added": [],
           "adjusted": [], "workers": 1, "agreement": 1.0, "human": human,
           "backend": "ground-truth" if human else "auto-accept", "source": source,
           "answered_at": f"2026-11-{day:02d}T07:00:00Z", "answer_id": f"{source}-{i}"}
    return json.dumps(row)


def merge(answers, previous: str | None = None, record=None):
    out, rejects = [], []
    summary = merge_manifest(answers=[("answers.jsonl", answers)],
                             previous=(lambda: previous.splitlines(keepends=True)) if previous is not None else None,
                             previous_record=record, write_manifest=out.append, write_reject=rejects.append)
    return "".join(out), rejects, summary


box = st.fixed_dictionaries({"label": st.sampled_from(LABELS), "left": st.integers(0, 600), "top": st.integers(0, 440),
                             "width": st.integers(2, 40), "height": st.integers(2, 40)})
one_answer = st.builds(lambda i, labels, boxes, human, day: answer(i, labels=labels, boxes=boxes, human=human, day=day),
                       st.integers(0, 30), st.lists(st.sampled_from(LABELS), max_size=2, unique=True),
                       st.one_of(st.none(), st.lists(box, max_size=3)), st.booleans(), st.integers(1, 28))


@settings(max_examples=60, deadline=None)
@given(turns=st.lists(st.lists(one_answer, max_size=12), min_size=2, max_size=4))
def test_carrying_forward_writes_what_validating_writes(turns):
    """Turn after turn, trusting the record gives the same bytes, counts and record as validating every line."""
    previous, record = None, None
    for n, answers in enumerate(turns):
        trusted = merge(answers, previous, record)
        validated = merge(answers, previous, None)
        assert trusted[0] == validated[0] and trusted[1] == validated[1]
        assert trusted[2]["previous"].pop("carried_forward") is (n > 0)
        assert validated[2]["previous"].pop("carried_forward") is False
        assert trusted[2] == validated[2]
        previous, record = trusted[0], trusted[2]["record"]
        assert record["sha256"] == merge_record.digest_of(previous.splitlines(keepends=True))
        assert record["lines"] == len(previous.splitlines())


def test_an_unchanged_manifest_is_not_validated_again():
    first, _, summary = merge([answer(1), answer(2, labels=("square",))])
    # A line no validation lets through (a box outside its image), inside a manifest whose record
    # matches it: carried forward as it is, which proves the lines are not validated again.
    bad = ('{"source-ref":"s3://bkt/img/0003.jpg","bounding-box":{"image_size":[{"width":640,"height":480,"depth":3}],'
           '"annotations":[{"class_id":0,"left":630,"top":0,"width":50,"height":50}]},"bounding-box-metadata":{'
           '"objects":[{"confidence":1}],"class-map":{"0":"star"},"type":"groundtruth/object-detection",'
           '"human-annotated":"yes","creation-date":"2026-11-26T07:00:00.000000","job-name":"x"}}\n')
    edited = first + bad
    trusted_record = dict(summary["record"], sha256=merge_record.digest_of(edited.splitlines(keepends=True)), lines=3,
                          label_images={**summary["record"]["label_images"], "star": 1})
    out, rejects, carried = merge([answer(4)], edited, trusted_record)
    assert carried["previous"]["carried_forward"] is True
    assert bad in out and rejects == []
    assert carried["labels"]["star"]["images"] == 1 and carried["manifest_lines"] == 4


def test_an_edited_manifest_is_validated_line_by_line():
    first, _, summary = merge([answer(1), answer(2, labels=("square",))])
    bad = first.splitlines(keepends=True)[1].replace('"class-name":"square"', '"class-name":""')
    edited = first.splitlines(keepends=True)[0] + bad  # edited by hand after the merge: the digest differs
    out, rejects, validated = merge([answer(4)], edited, summary["record"])
    assert validated["previous"]["carried_forward"] is False
    assert [json.loads(r)["stage"] for r in rejects] == ["previous"] and "img/0002.jpg" not in out
    assert validated["labels"] == {"circle": {"confirmed": 1, "rejected": 0, "added": 0, "adjusted": 0, "images": 2}}
    # A record of another kind, or none, means: validate.
    for record in (None, {"sha256": summary["record"]["sha256"]}, dict(summary["record"], schema="other/1")):
        assert merge([], first, record)[2]["previous"]["carried_forward"] is False


def test_a_replaced_line_is_uncounted_and_an_older_answer_keeps_the_line():
    first, _, summary = merge([answer(1, labels=("star",)), answer(2, labels=("square",), day=20)])
    out, _, second = merge([answer(1, labels=("circle",), day=27), answer(2, labels=("circle",), day=10)],
                           first, summary["record"])
    assert second["previous"]["carried_forward"] is True
    assert {k: v["images"] for k, v in second["labels"].items()} == {"circle": 1, "square": 1}
    assert second["answers"]["older_than_manifest"] == 1 and second["images"]["updated"] == 1
    assert second["record"]["label_images"] == {"circle": 1, "square": 1}
