"""Consensus of several reviewers: one consolidation for every backend (Ground Truth and Label Studio).

Given the workers' final answers for one image (`{"labels": [...], "boxes": [...]}`, pixels), it
returns the consolidated answer and how much the workers agreed with it:

- labels: a label is kept when more than half of the workers give it; an exact tie keeps the
  model's call (kept when predicted), so two disagreeing workers neither invent nor drop a label;
- boxes: same-label boxes are clustered by IoU (each worker at most once per cluster); a cluster
  drawn by more than half of the workers is kept at its mean position; a tie keeps it when it sits
  on a predicted box;
- agreement of the image: the share of workers whose whole answer is the consolidated one (same
  label set; for boxes, the same boxes one to one). Workers who disagree completely give a low
  figure, also when the consolidated answer is empty: `[]`, `[square]`, `[star, triangle]`
  consolidate to `[]` with agreement 1/3 (one worker said so), never 1.0;
- agreement per label and per box: the share of workers who gave it.

`status(answer, threshold)` tells whether a consolidated answer is good enough to merge as verified:
an answer of several workers whose agreement is below the `agreement_threshold` setting stays
`pending` (the review round or a later turn answers it again); it is never merged as verified.
"""

from __future__ import annotations

from typing import Iterable

from rekfeedback.core import boxes as boxlib

VERIFIED, PENDING, REVIEWED = "verified", "pending", "reviewed"
STATUSES = (VERIFIED, PENDING, REVIEWED)
DEFAULT_THRESHOLD = 0.6  # with three workers: two must give the whole answer


def consolidate(worker_answers: list[dict], *, kind: str, predicted_labels: Iterable[str] = (),
                predicted_boxes: Iterable[dict] = (), iou_threshold: float = 0.5) -> dict:
    """The consolidated answer of one image: `{"labels", "boxes", "workers", "agreement", "consensus"}`.

    `consensus` holds `label_agreement` ({label: share}), `box_agreement` (one share per
    consolidated box, same order) and `candidates` (each worker's answer, as given).
    """
    n = len(worker_answers)
    if not n:
        raise ValueError("consolidate needs at least one worker answer")
    if not 0 < iou_threshold <= 1:
        raise ValueError(f"iou_threshold must be in (0, 1], got {iou_threshold!r}")
    candidates = [_candidate(a, kind) for a in worker_answers]
    if kind == "boxes":
        boxes, shares = _vote_boxes([c["boxes"] for c in candidates], list(predicted_boxes), iou_threshold)
        labels = sorted({b["label"] for b in boxes})
        agree = sum(_same_boxes(boxes, c["boxes"], iou_threshold) for c in candidates)
    else:
        labels = _vote_labels([c["labels"] for c in candidates], set(predicted_labels))
        boxes, shares = [], []
        agree = sum(set(c["labels"]) == set(labels) for c in candidates)
    given = [set(c["labels"]) for c in candidates]
    label_agreement = {name: round(sum(name in g for g in given) / n, 4) for name in sorted(set().union(*given))}
    return {"labels": labels, "boxes": boxes, "workers": n, "agreement": round(agree / n, 4),
            "consensus": {"label_agreement": label_agreement, "box_agreement": shares, "candidates": candidates}}


def status(workers: int, agreement: float, threshold: float) -> str:
    """`verified` for one worker or agreement >= threshold, else `pending`."""
    if not 0 <= threshold <= 1:
        raise ValueError(f"agreement_threshold must be between 0 and 1, got {threshold!r}")
    return VERIFIED if workers <= 1 or agreement >= threshold else PENDING


def record(consensus: dict | None, workers: int, agreement: float, threshold: float,
           box_agreement: list[float] | None = None) -> dict:
    """The `consensus` field of a normalized answer: status against the threshold, shares per label
    and box, and the candidates only while pending (the review round shows them)."""
    consensus = dict(consensus or {})
    state = status(workers, agreement, threshold)
    out = {"status": state, "threshold": float(threshold),
           "label_agreement": consensus.get("label_agreement") or {},
           "box_agreement": list(box_agreement if box_agreement is not None else consensus.get("box_agreement") or [])}
    if state == PENDING and consensus.get("candidates") is not None:
        out["candidates"] = consensus["candidates"]
    return out


def split(answers: Iterable[dict]) -> tuple[list[dict], list[dict]]:
    """(answers to merge, answers pending another review), by their recorded consensus status."""
    merge, pending = [], []
    for answer in answers:
        (pending if is_pending(answer) else merge).append(answer)
    return merge, pending


def pending_uri(answers_uri: str) -> str:
    """Where a collect step writes the answers pending another review: beside its answers file."""
    stem = answers_uri[: -len(".jsonl")] if answers_uri.endswith(".jsonl") else answers_uri
    return f"{stem}.pending.jsonl"


def is_pending(answer: dict) -> bool:
    return (answer.get("consensus") or {}).get("status") == PENDING


def validate(consensus, where: str = "answer") -> None:
    if not isinstance(consensus, dict):
        raise ValueError(f"{where}: 'consensus' must be an object")
    if consensus.get("status") not in STATUSES:
        raise ValueError(f"{where}: consensus 'status' must be one of {STATUSES}")


# --- voting -------------------------------------------------------------------------------------------

def _candidate(answer: dict, kind: str) -> dict:
    if kind != "boxes":
        return {"labels": sorted(set(answer.get("labels") or []))}
    boxes = [{"label": str(b["label"]), **{k: int(round(float(b[k]))) for k in ("left", "top", "width", "height")}}
             for b in (answer.get("boxes") or [])]
    return {"labels": sorted({b["label"] for b in boxes}), "boxes": boxes}


def _vote_labels(sets: list[list[str]], predicted: set[str]) -> list[str]:
    n = len(sets)
    sets = [set(s) for s in sets]
    kept = set()
    for name in set().union(*sets) | predicted:
        votes = sum(name in s for s in sets)
        if 2 * votes > n or (2 * votes == n and name in predicted):
            kept.add(name)
    return sorted(kept)


def _vote_boxes(per_worker: list[list[dict]], predicted: list[dict], iou_threshold: float):
    n = len(per_worker)
    clusters: list[dict] = []  # {"label", "members": [(worker, box)], "center": box}
    for worker, boxes in enumerate(per_worker):
        for box in boxes:
            best, best_iou = None, 0.0
            for c in clusters:
                if c["label"] != box["label"] or any(w == worker for w, _ in c["members"]):
                    continue
                score = boxlib.iou(c["center"], box)
                if score >= iou_threshold and score > best_iou:
                    best, best_iou = c, score
            if best is None:
                best = {"label": box["label"], "members": []}
                clusters.append(best)
            best["members"].append((worker, box))
            best["center"] = _mean_box([b for _, b in best["members"]], box["label"])
    kept = []
    for c in clusters:
        votes = len(c["members"])
        on_prediction = any(p["label"] == c["label"] and boxlib.iou(p, c["center"]) >= iou_threshold for p in predicted)
        if 2 * votes > n or (2 * votes == n and on_prediction):
            kept.append((c["center"], round(votes / n, 4)))
    kept.sort(key=lambda x: (x[0]["label"], x[0]["left"], x[0]["top"], x[0]["width"], x[0]["height"]))
    return [b for b, _ in kept], [s for _, s in kept]


def _same_boxes(kept: list[dict], boxes: list[dict], iou_threshold: float) -> bool:
    if len(kept) != len(boxes):
        return False
    left = list(boxes)
    for box in kept:
        match = max((b for b in left if b["label"] == box["label"]), key=lambda b: boxlib.iou(b, box), default=None)
        if match is None or boxlib.iou(match, box) < iou_threshold:
            return False
        left.remove(match)
    return True


def _mean_box(boxes: list[dict], label: str) -> dict:
    k = len(boxes)
    return {"label": label, **{key: round(sum(int(b[key]) for b in boxes) / k)
                               for key in ("left", "top", "width", "height")}}


def box_shares(final_boxes: list[dict], consolidated: list[dict], shares: list[float]) -> list[float]:
    """Per-box agreement aligned with an answer's final boxes (which `diff_boxes` may reorder):
    each final box gets the share of the consolidated box it came from."""
    out, left = [], list(zip(consolidated, shares))
    for box in final_boxes:
        found = next((i for i, (c, _) in enumerate(left) if c["label"] == box["label"]
                      and all(int(c[k]) == int(box[k]) for k in ("left", "top", "width", "height"))), None)
        out.append(left.pop(found)[1] if found is not None else 0.0)
    return out
