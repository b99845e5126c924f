"""Which answer wins for an image: one rule for the merge and the report.

A human answer beats an auto-accepted one; among equals the newest ``answered_at`` wins (compared
as instants, whatever the zone), then the larger ``answer_id``, then the answer's canonical JSON
text, so any order and any repetition of the inputs gives the same winner. An answer whose
reviewers disagreed (consensus ``pending``) never wins: it is not verified. An answer without a
date never wins either: the merge rejects it rather than invent one.

``Ranking`` keeps the winner and the others, best first, because the merge writes the next answer
when the winner cannot become a manifest line (an invalid newest answer never discards an older
valid one).
"""

from __future__ import annotations

import json
import operator
from typing import Generic, Iterable, Iterator, Mapping, TypeVar

import orjson

from rekfeedback.core.consensus import is_pending
from rekfeedback.core.manifest import manifest_date

T = TypeVar("T")
_rank_of = operator.itemgetter(0)


def canonical_text(answer: Mapping) -> str:
    """The answer as sorted compact JSON (how ``core.answers.dumps_jsonl`` writes it): the last tie-break."""
    try:
        return orjson.dumps(answer, option=orjson.OPT_SORT_KEYS).decode("utf-8")
    except TypeError:  # integers beyond 64 bits, keys that are not strings: json takes them
        return json.dumps(answer, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def answer_rank(answer: Mapping) -> tuple:
    """The answer's rank; the larger rank wins. Raises ValueError when ``answered_at`` is no date."""
    try:
        when = manifest_date(answer["answered_at"])
    except (KeyError, TypeError) as exc:
        raise ValueError(f"answered_at {answer.get('answered_at')!r} is not an ISO-8601 date") from exc
    return (answer.get("human") is True, when, str(answer.get("answer_id") or ""), canonical_text(answer))


class Ranking(Generic[T]):
    """Per image (source-ref), the answers offered so far by rank; ``T`` is what the caller keeps of each."""

    def __init__(self) -> None:
        self.winners: dict[str, tuple[tuple, T]] = {}  # ref -> (rank, item)
        self._others: dict[str, dict[tuple, tuple[tuple, T]]] = {}  # ref -> {rank: (rank, item)}, losers only

    def offer(self, ref: str, rank: tuple, item: T) -> str:
        """Add one answer: "new" (first for its image), "repeated" (same rank as the winner) or "superseded"."""
        held = self.winners.get(ref)
        if held is None:
            self.winners[ref] = (rank, item)
            return "new"
        if held[0] == rank:
            return "repeated"
        # Only images with several answers pay for keeping the losers.
        others = self._others.setdefault(ref, {})
        if rank > held[0]:
            self.winners[ref] = (rank, item)
            others[held[0]] = held
        else:
            others.setdefault(rank, (rank, item))
        return "superseded"

    def best_first(self, ref: str) -> list[tuple[tuple, T]]:
        """The image's answers as (rank, item), the winner first."""
        others = self._others.get(ref)
        if not others:
            return [self.winners[ref]]
        return [self.winners[ref], *sorted(others.values(), key=_rank_of, reverse=True)]

    def __len__(self) -> int:
        return len(self.winners)

    def __iter__(self) -> Iterator[str]:
        return iter(self.winners)


def winning_answers(answers: Iterable[Mapping]) -> dict[str, Mapping]:
    """One answer per image, the one the merge writes for it (unless that one cannot become a line):
    pending and undated answers are left out, as the merge leaves them out."""
    ranking: Ranking[Mapping] = Ranking()
    for n, answer in enumerate(answers, 1):
        ref = answer.get("source-ref") if isinstance(answer, Mapping) else None
        if not ref:
            raise ValueError(f"answer line {n} has no 'source-ref'; see docs/data-formats.md")
        if is_pending(answer):
            continue
        try:
            rank = answer_rank(answer)
        except ValueError:
            continue
        ranking.offer(ref, rank, answer)
    return {ref: item for ref, (_, item) in ranking.winners.items()}
