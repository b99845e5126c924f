"""Which images humans review this turn, under a budget: spend their time where it changes the model.

Applied to the prediction lines before review, the same for Ground Truth and Label Studio. Routing
(core.review) comes first: auto-accepted and unlabelled images are not candidates (they cost no
review); audited images always go to humans and take budget first, so auto-accept with audit keeps
its guarantee. The candidates (route `human` or `to-label`) are then ranked by the strategy and the
first `limit` are selected; the rest are *deferred*: nobody reviews them this turn, nothing is
merged for them, so they stay candidates for a later turn.

Strategies:
- `all`: every candidate (no budget), as before selection existed;
- `random`: a stable hash of source-ref and seed;
- `uncertainty`: highest uncertainty first (small margin to a rival label, confidence near the
  threshold, near misses below it, no prediction at all);
- `balanced`: a greedy pick that adds, at each step, the image with the best uncertainty (scaled by
  the square root of novelty) plus novelty (descriptor distance to what is already picked: bursts of near-duplicates cost one review,
  not twenty), weighted by label rarity (labels with few labelled examples so far and few picks this
  turn weigh up to 1, labels with many less: sqrt((1 + fewest) / (1 + count))).

Every selected line records why: `{"strategy", "reason", "rank", "score"}` with `reason` the term
that weighed most (`uncertainty`, `diversity`, `rare-label`), or `audit`, `random`, `all`, or
`within-budget` when every candidate fits. Deterministic:
the same lines, seed and counts give the same choice. No Airflow or boto3 import.
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass, field
from typing import Iterable

from rekfeedback.core.review import RoutingPolicy, route, share
from rekfeedback.core.signals import descriptor_distance
from rekfeedback.core.templated import is_blank

STRATEGIES = ("all", "random", "uncertainty", "balanced")
SETTING_CHOICES = ("auto", *STRATEGIES)  # auto: balanced under a budget or cost cap, else all
SIGNAL_STRATEGIES = ("uncertainty", "balanced")  # the ones that read signals kept at inference
CANDIDATE_ROUTES = ("human", "to-label")
DIVERSITY_WEIGHT = 0.6


@dataclass(frozen=True)
class SelectionPolicy:
    """`budget`: images humans review per turn (None: no cap); `cost_cap` (USD per turn) with
    `price_per_image` caps it too. `strategy` None picks `balanced` under a cap, else `all`."""

    strategy: str | None = None
    budget: int | None = None
    cost_cap: float | None = None
    price_per_image: float = 0.0
    seed: int = 0

    def __post_init__(self):
        if self.strategy is not None and self.strategy not in STRATEGIES:
            raise ValueError(f"selection must be one of {', '.join(STRATEGIES)}, got {self.strategy!r}")
        if self.budget is not None and (isinstance(self.budget, bool) or not isinstance(self.budget, int)
                                        or self.budget < 0):
            raise ValueError(f"review_budget must be a whole number of images >= 0 or blank, got {self.budget!r}")
        if self.cost_cap is not None and (not isinstance(self.cost_cap, (int, float)) or self.cost_cap < 0):
            raise ValueError(f"review_cost_cap must be an amount >= 0 (USD) or blank, got {self.cost_cap!r}")
        if self.cost_cap is not None and not self.price_per_image > 0:
            raise ValueError("review_cost_cap needs a price per reviewed image above 0")
        if self.strategy == "all" and self.limit is not None:
            raise ValueError("selection 'all' sends every image to humans and cannot keep a review_budget or "
                             "review_cost_cap: clear them, or choose random, uncertainty or balanced")

    @property
    def limit(self) -> int | None:
        caps = []
        if self.budget is not None:
            caps.append(self.budget)
        if self.cost_cap is not None:
            caps.append(math.floor(self.cost_cap / self.price_per_image + 1e-9))
        return min(caps) if caps else None

    @property
    def effective_strategy(self) -> str:
        return self.strategy or ("balanced" if self.limit is not None else "all")


def policy_from_settings(strategy, review_budget, review_cost_cap, price_per_image: float,
                         seed: int = 0) -> SelectionPolicy:
    """The policy from the turn's settings (as the form, a Variable or the environment give them);
    a bad value raises ValueError naming the setting."""
    name = None if is_blank(strategy) or strategy == "auto" else str(strategy)
    if name is not None and name not in STRATEGIES:
        raise ValueError(f"selection must be one of {', '.join(SETTING_CHOICES)}, got {strategy!r}")
    try:
        budget = None if is_blank(review_budget) else int(review_budget)
    except (TypeError, ValueError):
        raise ValueError(f"review_budget must be a whole number of images or blank, got {review_budget!r}") from None
    if budget is not None and float(review_budget) != budget:
        raise ValueError(f"review_budget must be a whole number of images or blank, got {review_budget!r}")
    try:
        cap = None if is_blank(review_cost_cap) else float(review_cost_cap)
    except (TypeError, ValueError):
        raise ValueError(f"review_cost_cap must be an amount in USD or blank, got {review_cost_cap!r}") from None
    return SelectionPolicy(strategy=name, budget=budget, cost_cap=cap, price_per_image=price_per_image, seed=seed)


def needs_signals(config: dict) -> bool:
    """Whether inference should keep the signals (a lower MinConfidence, a full read for the descriptor):
    only for the strategies that use them, so the header-only path stays when selection is off."""
    try:
        policy = policy_from_settings(config.get("selection"), config.get("review_budget"),
                                      config.get("review_cost_cap"), 1.0)
    except ValueError:
        return False  # preflight reports the setting; inference needs no signals for a turn that will fail
    return policy.effective_strategy in SIGNAL_STRATEGIES


@dataclass
class Selection:
    """Lines for review (with their `selection` record), deferred lines, and the figures."""

    strategy: str
    limit: int | None
    for_review: list[dict] = field(default_factory=list)  # everything the review step routes, selected ones marked
    deferred: list[dict] = field(default_factory=list)

    def summary(self) -> dict:
        picked = [line for line in self.for_review if line.get("selection")]
        reasons = Counter(line["selection"]["reason"] for line in picked)
        labels: Counter = Counter()
        for line in picked:
            labels.update(sorted(label_names(line)) or ["(none)"])
        return {
            "strategy": self.strategy, "limit": self.limit, "selected": len(picked), "deferred": len(self.deferred),
            "by_reason": dict(sorted(reasons.items())), "by_label": dict(sorted(labels.items())),
            "deferred_by_label": dict(sorted(Counter(n for line in self.deferred
                                                     for n in (sorted(label_names(line)) or ["(none)"])).items())),
        }


def label_names(line: dict) -> set[str]:
    """What the model says is in the image: its shown labels, else its best guess below the threshold."""
    names = {lab["name"] for lab in line.get("labels") or []}
    if not names:
        below = (line.get("signals") or {}).get("below") or []
        names = {below[0]["name"]} if below else set()
    return names


def uncertainty(line: dict) -> float:
    """0 (the model is sure) .. 1 (the model cannot tell), from the signals when inference kept them."""
    signals = line.get("signals") or {}
    labels = line.get("labels") or []
    threshold = signals.get("threshold")
    threshold = 50.0 if threshold is None else float(threshold)
    below = signals.get("below") or []
    # A near miss: a candidate just under the threshold may be an object the model did not dare name.
    miss = max((0.9 * float(b["confidence"]) / threshold for b in below), default=0.0) if threshold > 0 else 0.0
    if not labels:
        return max(0.8, miss)  # nothing shown: humans label from scratch, the most there is to learn
    lowest = min(float(lab["confidence"]) for lab in labels)
    margin = float(signals["margin"]) if signals.get("margin") is not None else lowest
    near = 0.05 * min(int(signals.get("near_threshold") or 0), 4)
    return max(0.0, min(1.0, max(1.0 - margin / 100.0, 1.0 - lowest / 100.0, miss) + near))


def select(lines: Iterable[dict], routing: RoutingPolicy, policy: SelectionPolicy,
           labelled_counts: dict[str, int] | None = None) -> Selection:
    """Mark the lines chosen for humans and set the rest aside; lines that are not candidates pass as they are."""
    strategy, limit = policy.effective_strategy, policy.limit
    out = Selection(strategy, limit)
    audits, candidates = [], []
    seen: set[str] = set()
    for line in sorted(lines, key=lambda x: x["source-ref"]):
        if line["source-ref"] in seen:
            continue  # the review step keeps the first line of a repeated image, so do we
        seen.add(line["source-ref"])
        r = route(line, routing)
        if r == "audit":
            audits.append(line)
        elif r in CANDIDATE_ROUTES:
            candidates.append(line)
        else:
            out.for_review.append(line)
    audit_order = sorted(audits, key=lambda x: share(x["source-ref"], policy.seed))
    kept = audit_order if limit is None else audit_order[:limit]
    ranked: list[tuple[dict, str, float]] = [(line, "audit", 1.0) for line in kept]
    # An audit that does not fit the budget is not auto-accepted either: it waits, like any deferred image.
    out.deferred.extend(audit_order[len(kept):])
    room = None if limit is None else limit - len(kept)
    picked, rest = _rank(candidates, strategy, room, policy.seed, labelled_counts or {})
    ranked.extend(picked)
    out.deferred.extend(rest)
    for rank, (line, reason, score) in enumerate(ranked, start=1):
        out.for_review.append({**line, "selection": {"strategy": strategy, "reason": reason, "rank": rank,
                                                     "score": round(score, 4)}})
    out.for_review.sort(key=lambda x: x["source-ref"])
    out.deferred.sort(key=lambda x: x["source-ref"])
    return out


def _rank(candidates: list[dict], strategy: str, room: int | None, seed: int,
          labelled: dict[str, int]) -> tuple[list[tuple[dict, str, float]], list[dict]]:
    if strategy == "all":
        return [(line, "all", 1.0) for line in candidates], []
    if room is None or room >= len(candidates):
        return [(line, "within-budget", uncertainty(line)) for line in candidates], []
    if strategy == "random":
        order = sorted(candidates, key=lambda x: share(x["source-ref"], seed))
        return [(line, "random", 1.0) for line in order[:room]], order[room:]
    if strategy == "uncertainty":
        order = sorted(candidates, key=lambda x: (-uncertainty(x), share(x["source-ref"], seed)))
        return [(line, "uncertainty", uncertainty(line)) for line in order[:room]], order[room:]
    return _balanced(candidates, room, seed, labelled)


def _balanced(candidates: list[dict], room: int, seed: int,
              labelled: dict[str, int]) -> tuple[list[tuple[dict, str, float]], list[dict]]:
    """Greedy: uncertainty + novelty + rarity; novelty is updated after each pick (k-centre style)."""
    remaining = sorted(candidates, key=lambda x: share(x["source-ref"], seed))
    unc = {id(x): uncertainty(x) for x in remaining}
    novelty = {id(x): 1.0 for x in remaining}
    names = {id(x): sorted(label_names(x)) for x in remaining}
    counts = Counter({k: int(v) for k, v in labelled.items()})
    picked: list[tuple[dict, str, float]] = []
    while remaining and len(picked) < room:
        present = {n for x in remaining for n in names[id(x)]} | {n for n, c in counts.items() if c > 0}
        fewest = min((counts[n] for n in present), default=0)
        best, best_score, best_parts, sums = None, -1.0, None, Counter()
        for line in remaining:
            # 1 for the label with the fewest examples so far, less for labels with many.
            rarity = max((math.sqrt((1.0 + fewest) / (1.0 + counts[n])) for n in names[id(line)]), default=1.0)
            parts = {"uncertainty": unc[id(line)], "diversity": DIVERSITY_WEIGHT * novelty[id(line)],
                     "rare-label": rarity}
            sums.update(parts)
            # A near-duplicate of a pick teaches little however uncertain: its uncertainty counts by novelty.
            score = (parts["uncertainty"] * math.sqrt(novelty[id(line)]) + parts["diversity"]) * rarity
            if score > best_score:
                best, best_score, best_parts = line, score, parts
        # The reason is the term that sets the pick apart most from the images it was chosen over.
        reason = max(best_parts, key=lambda k: (best_parts[k] - sums[k] / len(remaining), k))
        remaining.remove(best)
        picked.append((best, reason, best_score))
        counts.update(names[id(best)])
        descriptor = (best.get("signals") or {}).get("descriptor")
        for line in remaining:
            other = (line.get("signals") or {}).get("descriptor")
            if descriptor and other:
                novelty[id(line)] = min(novelty[id(line)], descriptor_distance(descriptor, other) * 2.0)
    return picked, remaining
