"""The label-noise check: probable wrong answers found, with their reason, and never dropped here."""

from __future__ import annotations

import random

import pytest

from rekfeedback.core import boxes as boxlib
from rekfeedback.core import consensus, noise
from rekfeedback_local.emulator import policy

W, H = 400, 300


def answer(ref, kind="classification", labels=(), boxes=(), workers=1, agreement=1.0, human=True, **kw):
    return {"source-ref": ref, "kind": kind, "labels": sorted(labels), "boxes": list(boxes), "workers": workers,
            "agreement": agreement, "human": human, "width": W, "height": H, **kw}


def prediction(ref, *labels):
    out = []
    for name, conf, box in labels:
        out.append({"name": name, "confidence": conf, "box": boxlib.pixels_to_ratio(box, W, H) if box else None})
    return {"source-ref": ref, "width": W, "height": H, "labels": out}


def box(label, left, top, w=60, h=50):
    return {"label": label, "left": left, "top": top, "width": w, "height": h}


def reasons(result, ref):
    return [r["code"] for f in result["flags"] if f["source-ref"] == ref for r in f["reasons"]]


def test_a_noisy_label_the_model_contradicts_at_high_confidence_is_flagged():
    preds = {"s3://b/a.jpg": prediction("s3://b/a.jpg", ("cat", 98.5, None)),
             "s3://b/b.jpg": prediction("s3://b/b.jpg", ("cat", 62.0, None)),
             "s3://b/c.jpg": prediction("s3://b/c.jpg", ("cat", 97.0, None))}
    answers = [answer("s3://b/a.jpg", labels=["dog"]),   # the model is sure of a cat the human removed
               answer("s3://b/b.jpg", labels=[]),        # an unsure prediction rejected: a normal fix
               answer("s3://b/c.jpg", labels=["cat"]),   # agrees
               answer("s3://b/d.jpg", labels=["cat"], human=False)]  # auto-accepted: the model's own
    result = noise.check(answers, preds, confidence=90)
    assert reasons(result, "s3://b/a.jpg") == ["model-disagrees"]
    assert [f["source-ref"] for f in result["flags"]] == ["s3://b/a.jpg"] and result["checked"] == 3
    assert "98%" in result["flags"][0]["reasons"][0]["detail"]
    # A stricter confidence lets it pass; a bad setting is refused by name.
    assert noise.check(answers, preds, confidence=99)["flags"] == []
    with pytest.raises(ValueError, match="noise_confidence"):
        noise.check(answers, preds, confidence=120)


def test_boxes_relabelled_removed_or_far_from_everything():
    ref = "s3://b/boxes.jpg"
    preds = {ref: prediction(ref, ("cat", 96.0, box("cat", 10, 10)), ("dog", 95.0, box("dog", 200, 150)))}
    relabelled = answer(ref, "boxes", ["cat", "fox"], [box("cat", 11, 10), box("fox", 200, 150)])
    assert reasons(noise.check([relabelled], preds), ref) == ["model-disagrees"]
    far = answer(ref, "boxes", ["cat", "dog", "owl"], [box("cat", 10, 10), box("dog", 200, 150), box("owl", 320, 0)])
    assert reasons(noise.check([far], preds), ref) == ["far-box"]
    # Drawn by two of three workers: backed by another reviewer, not flagged as far.
    backed = dict(far, workers=3, agreement=0.67, consensus={"status": "verified", "box_agreement": [1.0, 1.0, 0.67]})
    assert reasons(noise.check([backed], preds), ref) == []


def test_disagreeing_reviewers_are_flagged_with_their_agreement():
    voted = consensus.consolidate([{"labels": []}, {"labels": ["square"]}, {"labels": ["star", "triangle"]}],
                                  kind="classification")
    a = answer("s3://b/x.jpg", labels=voted["labels"], workers=3, agreement=voted["agreement"])
    result = noise.check([a], {}, agreement_threshold=0.6)
    assert reasons(result, "s3://b/x.jpg") == ["reviewers-disagreed"]
    assert "33%" in result["flags"][0]["reasons"][0]["detail"]


def test_a_careless_annotator_is_caught_by_the_others():
    # The careless crew member answers at random; with two careful colleagues the consensus outvotes
    # them, and when the random answer wins nothing, the disagreement is flagged instead.
    crew = policy.parse_crew("ann=oracle:0,ben=oracle:0,dan=careless:1.0")
    rng = random.Random(3)
    truth = {"labels": ["circle", "star"], "boxes": []}
    careless = [crew[2].answer(truth, {"labels": ["circle", "star"]}, rng, ("circle", "square", "star", "triangle"))
                for _ in range(20)]
    assert sum(c["labels"] != truth["labels"] for c in careless) >= 15  # careless, by construction
    for c in careless:
        voted = consensus.consolidate([truth, truth, c], kind="classification")
        assert voted["labels"] == truth["labels"] and voted["agreement"] >= 2 / 3 - 1e-4
    with pytest.raises(ValueError, match="annotator"):
        policy.parse_crew("dan=sloppy:0.5")


def test_cleanlab_needs_enough_answers_and_says_so():
    ref = "s3://b/one.jpg"
    result = noise.check([answer(ref, "boxes", ["cat"], [box("cat", 10, 10)])],
                         {ref: prediction(ref, ("cat", 96.0, box("cat", 10, 10)))})
    assert result["flags"] == [] and "needs" in result["cleanlab"]


def test_cleanlab_runs_in_this_process_without_forking(monkeypatch):
    # cleanlab's object-detection check builds a multiprocessing Pool; inside a task a fork can deadlock (and a
    # Celery prefork worker may not have children), so the check must never start a process.
    import os

    def no_fork(*args, **kwargs):
        raise AssertionError("the noise check forked a process")

    monkeypatch.setattr(os, "fork", no_fork)
    answers, predictions = [], {}
    for i in range(noise.CLEANLAB_MIN_ANSWERS + 4):
        ref = f"s3://b/{i}.jpg"
        label = ("cat", "dog")[i % 2]
        answers.append(answer(ref, "boxes", [label], [box(label, 10 + i, 20)]))
        predictions[ref] = prediction(ref, (label, 90.0, box(label, 12 + i, 21)))
    result = noise.check(answers, predictions)
    assert "not used" not in result["cleanlab"], result["cleanlab"]
