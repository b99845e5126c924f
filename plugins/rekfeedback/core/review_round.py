"""The review round: answers below the agreement threshold, or flagged by the noise check, get one more look.

Pure (no Airflow, no boto3). Between the first round's answers and the merge:

1. `plan` splits the answers: those to merge as they are, those to review (pending answers of
   disagreeing workers, and noise-flagged ones when `noise_check="review"`), and those held out of
   training (noise-flagged ones when `noise_check="hold-out"`, or any to review when the review
   round is off). Nothing is dropped: every held or reviewed answer is listed with its reasons
   (`flags.jsonl`), and the counts say how many of each.
2. `review_line` turns an answer to review into a prediction line for the round's task, so both
   backends reuse their first-round operators: the candidate answer is pre-filled (as Label Studio
   predictions / the Ground Truth adjustment job's boxes or the verification task's labels), with a
   "confidence" that is the workers' agreement, and every worker's answer rides along
   (`candidates`: Label Studio shows each as a prediction of its own).
3. One reviewer accepts (submits the pre-filled answer), fixes, or rejects (skips the task: the image
   stays out of the dataset and comes back in a later turn). `mark_reviewed` records on the answer
   that it was reviewed; it is final and the merge prefers it (newer, human).
"""

from __future__ import annotations

from typing import Iterable

from rekfeedback.core import boxes as boxlib
from rekfeedback.core import consensus

NOISE_MODES = ("review", "hold-out", "off")
REVIEW, HELD_OUT, MERGE = "review", "held-out", "merge"


def plan(answers: Iterable[dict], flags: list[dict], *, noise_check: str = "review",
         review_round: bool = True) -> dict:
    """`{"merge": [answers], "review": [answers], "held_out": [answers], "flags": [lines]}`.

    `answers` are the first round's answers, pending ones included; `flags` come from `core.noise.check`.
    """
    if noise_check not in NOISE_MODES:
        raise ValueError(f"noise_check must be one of {NOISE_MODES}, got {noise_check!r}")
    reasons = {f["source-ref"]: f["reasons"] for f in flags} if noise_check != "off" else {}
    out: dict[str, list] = {"merge": [], "review": [], "held_out": [], "flags": []}
    for answer in sorted(answers, key=lambda a: a["source-ref"]):
        ref = answer["source-ref"]
        found = list(reasons.get(ref, []))
        pending = consensus.is_pending(answer)
        if pending and not any(r["code"] == "reviewers-disagreed" for r in found):
            found.insert(0, {"code": "reviewers-disagreed",
                             "detail": f"{answer['workers']} workers, agreement {answer['agreement']:.0%}"})
        if not found:
            out["merge"].append(answer)
            continue
        wants_review = pending or noise_check == "review"
        action = REVIEW if wants_review and review_round else HELD_OUT
        out["review" if action == REVIEW else "held_out"].append(answer)
        out["flags"].append({"source-ref": ref, "action": action, "reasons": found, "kind": answer["kind"],
                             "labels": answer["labels"], "boxes": answer.get("boxes") or [],
                             "workers": answer["workers"], "agreement": answer["agreement"],
                             "source": answer.get("source"), "width": answer.get("width"),
                             "height": answer.get("height")})
    return out


def review_line(answer: dict, model: str = "consensus") -> dict:
    """The prediction line of the review task for one answer (docs/data-formats.md, plus `candidates`)."""
    score = round(100.0 * float(answer.get("agreement", 0.0)), 2)
    width, height = answer.get("width"), answer.get("height")
    if answer["kind"] == "boxes":
        labels = [{"name": b["label"], "confidence": score,
                   "box": boxlib.pixels_to_ratio(b, width, height)} for b in answer.get("boxes") or []]
    else:
        labels = [{"name": n, "confidence": score, "box": None} for n in answer.get("labels") or []]
    candidates = (answer.get("consensus") or {}).get("candidates") or []
    return {"source-ref": answer["source-ref"], "width": width, "height": height, "format": None,
            "labels": labels, "error": None, "model": model, "predicted_at": answer["answered_at"],
            "candidates": candidates}


def mark_reviewed(answers: Iterable[dict]) -> list[dict]:
    """The review round's answers, recorded as reviewed (final: never pending again)."""
    out = []
    for answer in answers:
        record = dict(answer.get("consensus") or {})
        record.pop("candidates", None)
        record["status"] = consensus.REVIEWED
        out.append({**answer, "consensus": record})
    return out
