"""Review items: what goes to humans, what is auto-accepted, what stays unlabelled.

Backend-neutral (Ground Truth and Label Studio both start here). Formats: docs/data-formats.md,
sections "Prediction line" and "Review item".
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Iterable, Iterator

ROUTES = ("human", "audit", "auto-accept", "unlabelled", "to-label")
KINDS = ("classification", "boxes")


@dataclass(frozen=True)
class RoutingPolicy:
    """How prediction lines are routed.

    `auto_accept_threshold` is a Rekognition confidence (0..100): an image whose every predicted
    label is at or above it may skip humans; None (the default) sends everything to humans.
    `audit_rate` (0..1) of those still goes to humans, chosen by a hash of source-ref and `seed`
    so a retry routes exactly the same way.
    """

    auto_accept_threshold: float | None = None
    audit_rate: float = 0.0
    seed: int = 0
    label_unpredicted: bool = False

    def __post_init__(self):
        t = self.auto_accept_threshold
        if t is not None and (isinstance(t, bool) or not isinstance(t, (int, float)) or not 0 <= t <= 100):
            raise ValueError(f"auto_accept_threshold must be a confidence from 0 to 100 or None, got {t!r}")
        r = self.audit_rate
        if isinstance(r, bool) or not isinstance(r, (int, float)) or not 0 <= r <= 1:
            raise ValueError(f"audit_rate must be a share from 0 to 1, got {r!r}")
        if isinstance(self.seed, bool) or not isinstance(self.seed, int):
            raise ValueError(f"routing seed must be an integer, got {self.seed!r}")


@dataclass
class ReviewSet:
    """Review items of one predictions set, plus what could not be reviewed and why."""

    kind: str
    items: list[dict] = field(default_factory=list)
    duplicates: int = 0

    def by_route(self, *routes: str) -> list[dict]:
        return [i for i in self.items if i["route"] in routes]

    def counts(self) -> dict[str, int]:
        c = {"human": 0, "audit": 0, "auto_accept": 0, "to_label": 0, "unlabelled": 0}
        for item in self.items:
            c[item["route"].replace("-", "_")] += 1
        return c

    def label_set(self) -> list[str]:
        return sorted({lab["name"] for i in self.items for lab in i["predicted"]})


def share(source_ref: str, seed: int) -> float:
    """A uniform number in [0, 1) fixed by source-ref and seed (stable across processes, unlike hash())."""
    digest = hashlib.sha256(f"{seed}\x00{source_ref}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def parse_prediction_lines(text: str, where: str = "predictions") -> Iterator[dict]:
    """Prediction lines of one file; a malformed line raises ValueError naming file and line."""
    from rekfeedback.core.predictions import iter_jsonl

    return iter_jsonl(text, where, validate=validate_prediction)


def validate_prediction(line: dict, where: str) -> dict:
    if not isinstance(line, dict):
        raise ValueError(f"{where}: expected a JSON object, got {type(line).__name__}")
    ref = line.get("source-ref")
    if not isinstance(ref, str) or not ref.startswith("s3://"):
        raise ValueError(f"{where}: 'source-ref' must be an s3:// URI, got {ref!r}")
    labels = line.get("labels")
    if not isinstance(labels, list):
        raise ValueError(f"{where}: 'labels' must be a list (may be empty), got {labels!r}")
    for lab in labels:
        if not isinstance(lab, dict) or not isinstance(lab.get("name"), str) or not lab["name"]:
            raise ValueError(f"{where}: every label needs a non-empty 'name', got {lab!r}")
        if not isinstance(lab.get("confidence"), (int, float)):
            raise ValueError(f"{where}: label {lab['name']!r} needs a numeric 'confidence'")
    if line.get("error") is None and labels:
        for key in ("width", "height"):
            if not isinstance(line.get(key), int) or line[key] <= 0:
                raise ValueError(f"{where}: '{key}' must be a positive integer for an image with predictions")
    return line


def detect_kind(lines: Iterable[dict]) -> str:
    """`boxes` when the project detects objects (any label anywhere has a box), else `classification`."""
    for line in lines:
        if any(lab.get("box") for lab in line.get("labels") or []):
            return "boxes"
    return "classification"


def route(line: dict, policy: RoutingPolicy) -> str:
    labels = line.get("labels") or []
    if not labels:
        return "to-label" if policy.label_unpredicted and line.get("error") is None else "unlabelled"
    t = policy.auto_accept_threshold
    if t is None or min(lab["confidence"] for lab in labels) < t:
        return "human"
    return "audit" if share(line["source-ref"], policy.seed) < policy.audit_rate else "auto-accept"


def build_review_set(lines: Iterable[dict], policy: RoutingPolicy | None = None, kind: str | None = None) -> ReviewSet:
    """Review items, sorted by source-ref so batches and job contents do not depend on shard order.

    An image listed twice (overlapping shards) is kept once: the first line wins.
    """
    policy = policy or RoutingPolicy()
    lines = list(lines)
    if kind is not None and kind not in KINDS:
        raise ValueError(f"kind must be one of {KINDS} or None, got {kind!r}")
    kind = kind or detect_kind(lines)
    seen: dict[str, dict] = {}
    duplicates = 0
    for line in lines:
        ref = line["source-ref"]
        if ref in seen:
            duplicates += 1
            continue
        item = {
            "source-ref": ref,
            "width": line.get("width"),
            "height": line.get("height"),
            "kind": kind,
            "predicted": list(line.get("labels") or []),
            "route": route(line, policy),
        }
        if line.get("error") is not None:
            item["error"] = line["error"]
        # selection: why it was chosen (core.selection); candidates: the workers' answers (review round)
        for key in ("model", "predicted_at", "selection", "candidates"):
            if line.get(key) is not None:
                item[key] = line[key]
        seen[ref] = item
    return ReviewSet(kind=kind, items=[seen[k] for k in sorted(seen)], duplicates=duplicates)


def unlabelled_line(item: dict) -> dict:
    """A line of review/unlabelled.jsonl: an image nobody labels this turn, with the reason."""
    out = {"source-ref": item["source-ref"], "width": item.get("width"), "height": item.get("height"),
           "kind": item["kind"], "reason": item.get("reason") or ("error" if item.get("error") else "no-prediction")}
    if item.get("error"):
        out["error"] = item["error"]
    return out


def dumps_unlabelled(items: Iterable[dict]) -> str:
    """review/unlabelled.jsonl, written the same way by both backends: sorted by source-ref, compact."""
    import json

    lines = sorted((unlabelled_line(i) for i in items), key=lambda u: u["source-ref"])
    return "".join(json.dumps(u, sort_keys=True, separators=(",", ":")) + "\n" for u in lines)


def auto_accepted_answers(review_set: ReviewSet, answered_at_fallback=None) -> list[dict]:
    """The answers of the images that skip humans, the same for both backends: their `source` is the
    model version that predicted them, so an image gets one answer id whichever backend routed it."""
    from rekfeedback.core.answers import auto_accepted_answer

    return [auto_accepted_answer(i, i.get("model") or "auto-accept", answered_at_fallback)
            for i in review_set.by_route("auto-accept")]


def batches(items: list, size: int) -> list[list]:
    if isinstance(size, bool) or not isinstance(size, int) or size < 1:
        raise ValueError(f"batch size must be a positive integer, got {size!r}")
    return [items[i:i + size] for i in range(0, len(items), size)]


def batch_id(prefix: str, index: int) -> str:
    return f"{prefix}-{index:05d}"


def pack_by_labels(items: list[dict], max_labels: int) -> tuple[list[tuple[list[str], list[dict]]], list[dict]]:
    """Group items so each group's predicted label set fits in `max_labels` (built-in box tasks allow 10).

    Returns (groups as (labels, items), items whose own label set is too large for any group).
    Greedy first fit over items sorted by their label sets: deterministic for the same input.
    """
    groups: list[tuple[set[str], list[dict]]] = []
    too_many: list[dict] = []
    keyed = sorted(items, key=lambda i: (sorted({p["name"] for p in i["predicted"]}), i["source-ref"]))
    for item in keyed:
        names = {p["name"] for p in item["predicted"]}
        if len(names) > max_labels:
            too_many.append(item)
            continue
        for labels, members in groups:
            if len(labels | names) <= max_labels:
                labels |= names
                members.append(item)
                break
        else:
            groups.append((set(names), [item]))
    return [(sorted(labels), sorted(members, key=lambda i: i["source-ref"])) for labels, members in groups], too_many
