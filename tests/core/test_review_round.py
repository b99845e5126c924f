"""The review round's plan: what is merged, reviewed or held out (never dropped), and the round's tasks."""

from __future__ import annotations

import pytest

from rekfeedback.core import answers as ans
from rekfeedback.core import consensus, review_round
from rekfeedback.core import label_studio as lsfmt
from rekfeedback.core.review import build_review_set


def answer(ref, labels, workers=1, agreement=1.0, candidates=None, kind="classification", boxes=()):
    record = consensus.record({"candidates": candidates} if candidates else None, workers, agreement, 0.6)
    return ans.make_answer(source_ref=ref, width=200, height=100, kind=kind, labels=labels, boxes=list(boxes),
                           workers=workers, agreement=agreement, human=True, backend="label-studio", source="p",
                           answered_at="2026-11-26T05:00:00Z", consensus=record)


FLAG = {"source-ref": "s3://b/noisy.jpg", "reasons": [{"code": "model-disagrees", "detail": "'cat' at 98% removed"}]}


@pytest.mark.parametrize("mode, review, held", [("review", 2, 0), ("hold-out", 1, 1), ("off", 1, 0)])
def test_plan_routes_pending_and_flagged_answers_by_mode(mode, review, held):
    answers = [answer("s3://b/ok.jpg", ["cat"]), answer("s3://b/noisy.jpg", ["dog"]),
               answer("s3://b/contested.jpg", [], workers=3, agreement=0.3333,
                      candidates=[{"labels": []}, {"labels": ["square"]}, {"labels": ["star"]}])]
    out = review_round.plan(answers, [FLAG], noise_check=mode)
    assert (len(out["review"]), len(out["held_out"])) == (review, held)
    assert len(out["merge"]) + len(out["review"]) + len(out["held_out"]) == 3  # none dropped
    assert {f["source-ref"] for f in out["flags"]} == {a["source-ref"] for a in out["review"] + out["held_out"]}
    contested = next(f for f in out["flags"] if f["source-ref"] == "s3://b/contested.jpg")
    assert contested["action"] == "review" and contested["reasons"][0]["code"] == "reviewers-disagreed"
    # With the review round off, nothing is reviewed: pending and flagged answers are held out, listed.
    off = review_round.plan(answers, [FLAG], noise_check=mode, review_round=False)
    assert off["review"] == [] and len(off["held_out"]) == review + held
    with pytest.raises(ValueError, match="noise_check"):
        review_round.plan(answers, [], noise_check="maybe")


def test_review_task_shows_the_candidates_and_the_reviewed_answer_is_final():
    contested = answer("s3://b/c.jpg", ["cat"], workers=3, agreement=0.3333, kind="boxes",
                       boxes=[{"label": "cat", "left": 10, "top": 10, "width": 50, "height": 40, "status": "added"}],
                       candidates=[{"labels": ["cat"], "boxes": [{"label": "cat", "left": 10, "top": 10, "width": 50,
                                                                   "height": 40}]},
                                   {"labels": [], "boxes": []},
                                   {"labels": ["dog"], "boxes": [{"label": "dog", "left": 0, "top": 0, "width": 9,
                                                                   "height": 9}]}])
    line = review_round.review_line(contested)
    assert line["labels"][0]["confidence"] == pytest.approx(33.33) and len(line["candidates"]) == 3
    item = build_review_set([line]).items[0]
    task = lsfmt.task_for_item(item, "http://img")
    assert [p["model_version"] for p in task["predictions"]] == ["consensus", "worker 1", "worker 2", "worker 3"]
    assert task["predictions"][3]["result"][0]["value"]["rectanglelabels"] == ["dog"]
    final = review_round.mark_reviewed([answer("s3://b/c.jpg", ["cat"])])[0]
    assert final["consensus"]["status"] == "reviewed" and consensus.split([final]) == ([final], [])


def test_label_studio_progress_counts_distinct_annotators_and_a_rejected_review_task():
    from rekfeedback.hooks.label_studio import progress_of

    # As Label Studio Community 1.23.2 reports them (checked against the real server): with
    # maximum_annotations=3 a task is finished only once three distinct annotators answered it ...
    several = {"task_number": 2, "num_tasks_with_annotations": 2, "finished_task_number": 1, "maximum_annotations": 3}
    assert progress_of(several)["annotated"] == 1
    # ... and a skipped task (the reviewer's "reject") has no annotation but is decided.
    review = {"task_number": 2, "num_tasks_with_annotations": 1, "finished_task_number": 1,
              "skipped_annotations_number": 1, "maximum_annotations": 1}
    assert progress_of(review)["annotated"] == 2
