"""One consolidation for every backend: majority votes, IoU clusters, honest agreement, pending below the threshold."""

from __future__ import annotations

import pytest

from rekfeedback.core import answers as ans
from rekfeedback.core import consensus


def box(label, left, top, w=40, h=30):
    return {"label": label, "left": left, "top": top, "width": w, "height": h}


def labels_of(*sets):
    return [{"labels": list(s)} for s in sets]


def test_label_votes_majority_ties_and_agreement():
    voted = consensus.consolidate(labels_of(["cat"], ["cat", "dog"], ["cat"]), kind="classification",
                                  predicted_labels=["cat", "dog"])
    assert voted["labels"] == ["cat"] and voted["agreement"] == pytest.approx(2 / 3, abs=1e-4)
    assert voted["consensus"]["label_agreement"] == {"cat": 1.0, "dog": pytest.approx(1 / 3, abs=1e-4)}
    # Two workers disagree on a predicted label: the tie keeps the model's call ...
    tie = consensus.consolidate(labels_of(["cat"], []), kind="classification", predicted_labels=["cat"])
    assert tie["labels"] == ["cat"] and tie["agreement"] == 0.5
    # ... and a tie on a label the model did not predict does not add it.
    assert consensus.consolidate(labels_of(["bird"], []), kind="classification")["labels"] == []
    assert consensus.consolidate(labels_of(["x"]), kind="classification")["agreement"] == 1.0


def test_all_different_answers_are_not_unanimous_even_when_the_result_is_empty():
    # Issue 12: [], [square], [star, triangle] used to become a verified empty image with agreement 1.0.
    for kind, answers in (
        ("classification", labels_of([], ["square"], ["star", "triangle"])),
        ("boxes", [{"boxes": []}, {"boxes": [box("square", 10, 10)]},
                   {"boxes": [box("star", 100, 100), box("triangle", 200, 10)]}]),
    ):
        voted = consensus.consolidate(answers, kind=kind)
        assert voted["labels"] == [] and voted["boxes"] == []
        assert voted["agreement"] == pytest.approx(1 / 3, abs=1e-4)  # only the worker who said "nothing"
        assert consensus.status(voted["workers"], voted["agreement"], 0.6) == consensus.PENDING
        assert len(voted["consensus"]["candidates"]) == 3
    # Three workers who each saw something different and nobody "nothing": agreement 0.
    none_agree = consensus.consolidate(labels_of(["square"], ["star"], ["triangle"]), kind="classification")
    assert none_agree["labels"] == [] and none_agree["agreement"] == 0.0


def test_all_empty_is_unanimous_and_verified():
    voted = consensus.consolidate([{"boxes": []}] * 3, kind="boxes")
    assert voted["boxes"] == [] and voted["agreement"] == 1.0
    assert consensus.status(3, voted["agreement"], 0.6) == consensus.VERIFIED


def test_box_clusters_majority_mean_and_per_box_agreement():
    w1 = [box("cat", 100, 100), box("dog", 300, 300)]
    w2 = [box("cat", 104, 100), box("dog", 302, 300)]
    w3 = [box("cat", 102, 100), box("bird", 0, 0)]
    voted = consensus.consolidate([{"boxes": w1}, {"boxes": w2}, {"boxes": w3}], kind="boxes")
    assert voted["boxes"] == [box("cat", 102, 100), box("dog", 301, 300)]
    assert voted["consensus"]["box_agreement"] == [1.0, pytest.approx(2 / 3, abs=1e-4)]
    assert voted["labels"] == ["cat", "dog"]
    assert voted["agreement"] == pytest.approx(2 / 3, abs=1e-4)  # w1 and w2 drew exactly the consensus
    # A box two of four workers drew is kept only when it sits on the model's box.
    four = [{"boxes": [box("cat", 10, 10)]}, {"boxes": [box("cat", 11, 10)]}, {"boxes": []}, {"boxes": []}]
    assert consensus.consolidate(four, kind="boxes")["boxes"] == []
    assert consensus.consolidate(four, kind="boxes", predicted_boxes=[box("cat", 10, 10)])["boxes"] != []


def test_same_label_boxes_far_apart_are_different_objects():
    voted = consensus.consolidate([{"boxes": [box("cat", 0, 0)]}, {"boxes": [box("cat", 200, 200)]},
                                   {"boxes": [box("cat", 0, 2)]}], kind="boxes")
    assert voted["boxes"] == [box("cat", 0, 1)]
    assert voted["consensus"]["box_agreement"] == [pytest.approx(2 / 3, abs=1e-4)]


def test_record_keeps_candidates_only_while_pending_and_answers_validate_it():
    voted = consensus.consolidate(labels_of([], ["square"], ["star"]), kind="classification")
    pending = consensus.record(voted["consensus"], 3, voted["agreement"], 0.6)
    assert pending["status"] == "pending" and len(pending["candidates"]) == 3
    verified = consensus.record(voted["consensus"], 3, 0.67, 0.6)
    assert verified["status"] == "verified" and "candidates" not in verified
    assert consensus.record(None, 1, 1.0, 0.99)["status"] == "verified"
    with pytest.raises(ValueError, match="agreement_threshold"):
        consensus.status(3, 0.5, 1.5)
    answer = ans.make_answer(source_ref="s3://b/a.jpg", width=10, height=10, kind="classification", labels=[],
                             workers=3, agreement=voted["agreement"], human=True, backend="label-studio",
                             source="p", answered_at="2026-11-26T05:00:00Z", consensus=pending)
    merge, held = consensus.split([answer])
    assert merge == [] and held == [answer]
    with pytest.raises(ValueError, match="consensus"):
        ans.validate_answer({**answer, "consensus": {"status": "maybe"}})


def test_the_merge_refuses_a_pending_answer_and_counts_it():
    from rekfeedback.core.merge import merge_manifest

    voted = consensus.consolidate(labels_of([], ["square"], ["star", "triangle"]), kind="classification")
    pending = ans.make_answer(source_ref="s3://my-bucket/a.jpg", width=10, height=10, kind="classification", labels=[],
                              workers=3, agreement=voted["agreement"], human=True, backend="ground-truth",
                              source="job", answered_at="2026-11-26T05:00:00Z",
                              consensus=consensus.record(voted["consensus"], 3, voted["agreement"], 0.6))
    written, rejects = [], []
    summary = merge_manifest(answers=[("answers.jsonl", ans.dumps_jsonl([pending]).splitlines())],
                             write_manifest=written.append, write_reject=rejects.append)
    assert "".join(written) == "" and summary["answers"]["pending_agreement"] == 1
    assert summary["images"]["verified_empty"] == 0 and summary["answers"]["applied"] == 0 and rejects == []
