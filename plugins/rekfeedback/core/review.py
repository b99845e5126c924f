"""Review items (the `ReviewItem` record): what goes to humans, what is auto-accepted, what stays unlabelled.

Backend-neutral (Ground Truth and Label Studio both start here). The review operators write every
item of the turn once to `review/items.jsonl` (`dumps_items`); both collect steps join the
backend's answers to it (`read_items`), never to what they sent the backend. Formats:
docs/data-formats.md, sections "Prediction line" and "Review item".
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Iterable, Literal

from pydantic import Field

from rekfeedback.core import records
from rekfeedback.core.predictions import ImageError, PredictedLabel
from rekfeedback.core.records import Record, SourceRef

ROUTES = ("human", "audit", "auto-accept", "unlabelled", "to-label")
KINDS = ("classification", "boxes")


ITEMS_FILE = ("review", "items.jsonl")  # under the turn prefix (the operator's output_prefix)


class ReviewItem(Record):
    """One image of the turn with its route; `selection` and `candidates` ride along when present."""

    source_ref: SourceRef = Field(alias="source-ref")
    width: int | None
    height: int | None
    kind: Literal["classification", "boxes"]
    predicted: list[PredictedLabel]
    route: Literal["human", "audit", "auto-accept", "unlabelled", "to-label"]
    error: ImageError | None = None
    model: str | None = None
    predicted_at: str | None = None


def dumps_items(items: Iterable[dict]) -> str:
    """review/items.jsonl: every item of the review set, whatever its route, written once by the review operator."""
    return records.dumps(ReviewItem, items, "review item")


def read_items(text: str | bytes, where: str = "review items") -> dict[str, dict]:
    """source-ref -> review item, from review/items.jsonl: what the collect steps join answers to."""
    return {item["source-ref"]: item for item in records.read(ReviewItem, text, where)}


def items_uri_beside(answers_uri: str) -> str:
    """The review items of the turn an answers file belongs to (`<turn>/answers/<backend>.jsonl`)."""
    turn, sep, _ = str(answers_uri).rpartition("/answers/")
    if not sep:
        raise ValueError(f"answers_uri {answers_uri!r} is not <turn prefix>/answers/<file>: pass items_uri "
                         "(the review operator's `items_uri`)")
    return "/".join((turn, *ITEMS_FILE))


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


class UnlabelledImage(Record):
    """A line of review/unlabelled.jsonl: an image nobody labels this turn, with the reason."""

    source_ref: SourceRef = Field(alias="source-ref")
    width: int | None
    height: int | None
    kind: Literal["classification", "boxes"]
    reason: str
    error: ImageError | None = None


def unlabelled_line(item: dict) -> dict:
    out = {"source-ref": item["source-ref"], "width": item.get("width"), "height": item.get("height"),
           "kind": item["kind"], "reason": item.get("reason") or ("error" if item.get("error") else "no-prediction")}
    if item.get("error"):
        out["error"] = item["error"]
    return out


def dumps_unlabelled(items: Iterable[dict]) -> str:
    """review/unlabelled.jsonl, written the same way by both backends: sorted by source-ref, compact."""
    return records.dumps(UnlabelledImage, (unlabelled_line(i) for i in items), "unlabelled image")


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
