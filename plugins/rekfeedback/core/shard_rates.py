"""Shards of one turn share one model evenly, and a turn starts at the rate an earlier turn found.

Each shard's limiter finds the model's limit by itself (`throughput.AdaptiveLimiter`), but limiters
that see only their own calls split a shared model by accident of timing: the shard that ramped
first keeps more, because every limiter cuts and probes in proportion to its own rate. So every
`period` seconds a shard reads one small JSON record under the turn prefix (the rate hint), writes
its own rate into it, and moves its rate (by `gain`) to the mean rate of the shards running:
the rates converge to an even share while each limiter's cuts and probes keep the total at the
model's capacity. A shard that finishes marks itself done and the others take over its rate at
once, so the last shard running is not left at a fraction of the model.

The hint is only a hint: read-modify-write without a lock, so two shards writing at the same
moment may drop one update, which the next period repeats. An entry older than `stale_after`
(a crashed or killed shard) does not count.

At the end the total rate the shards ran at is remembered per model version and inference units
(`remembered_rate` / `memory_record`), and the next turn's shards start from it (each its share)
instead of probing up from a low rate.
"""

from __future__ import annotations

import json
import logging
import time
from typing import Callable

from rekfeedback.core.arns import parse_project_version_arn
from rekfeedback.core.throughput import AdaptiveLimiter


def _parse(text: str | bytes | None) -> dict:
    if not text:
        return {}
    try:
        doc = json.loads(text)
    except ValueError:
        return {}  # a torn or foreign object is no reason to stop inference; it is rewritten
    return doc if isinstance(doc, dict) else {}


class ShardRates:
    """One shard's view of the turn's shared rate hint. `tick` often, `leave` once at the end."""

    def __init__(
        self,
        *,
        shard: int,
        shard_count: int,
        read: Callable[[], str | bytes | None],
        write: Callable[[str], None],
        period: float = 1.0,
        stale_after: float = 10.0,
        gain: float = 1.0,
        failure_pause: float = 30.0,
        clock: Callable[[], float] = time.time,  # wall clock: shards in other processes share it
        log: logging.Logger | None = None,
    ):
        if not 0 < gain <= 1:
            raise ValueError("gain must be in (0, 1]")
        self.shard, self.shard_count = str(shard), max(1, int(shard_count))
        self._read, self._write = read, write
        self.period, self.stale_after, self.gain = period, stale_after, gain
        self.failure_pause = failure_pause
        self.clock = clock
        self.log = log or logging.getLogger(__name__)
        self._last_sync: float | None = None
        self._peers: dict[str, float] = {}  # rates of the shards running at the last sync
        self._taken_over: set[str] = set()
        self._failed = False
        self.syncs = 0
        # Most calls/s the running shards' limits added up to: the model's, when all of them found it.
        self.model_limit: float | None = None

    # --- I/O, never fatal -------------------------------------------------------------------------
    def _load(self) -> dict | None:
        try:
            return _parse(self._read())
        except Exception as exc:  # noqa: BLE001 - the hint only helps; inference goes on without it
            self._warn(exc)
            return None

    def _store(self, doc: dict) -> None:
        try:
            self._write(json.dumps(doc, sort_keys=True))
        except Exception as exc:  # noqa: BLE001 - as above
            self._warn(exc)

    def _warn(self, exc: BaseException) -> None:
        # The sync runs in the engine's dispatch loop: an unreachable store must not stall it every second.
        self._last_sync = self.clock() + self.failure_pause - self.period
        if not self._failed:
            self.log.warning("Shared rate hint unavailable (%s); this shard adapts on its own", exc)
            self._failed = True

    def _running(self, doc: dict, now: float) -> dict[str, dict]:
        shards = doc.get("shards") if isinstance(doc.get("shards"), dict) else {}
        return {k: v for k, v in shards.items()
                if k != self.shard and isinstance(v, dict) and not v.get("done")
                and isinstance(v.get("rate"), (int, float)) and isinstance(v.get("at"), (int, float))
                and now - v["at"] <= self.stale_after}

    # --- the shard's life -----------------------------------------------------------------------
    def start_rate(self, default: float, remembered: float | None = None) -> tuple[float, bool]:
        """(initial rate, slow start?): the running shards' mean rate if any, else an even share of the
        rate remembered for this model, else `default` with slow start."""
        doc = self._load() or {}
        peers = self._running(doc, self.clock())
        if peers:
            return sum(float(p["rate"]) for p in peers.values()) / len(peers), False
        if remembered:
            # Still doubling from there until the first throttle: a remembered rate may be low (fewer
            # shards ran then, or the workers were short of CPU), and one overloaded window costs little.
            return max(default / 4, remembered / self.shard_count), True
        return default, True

    def tick(self, limiter: AdaptiveLimiter) -> None:
        now = self.clock()
        if self._last_sync is not None and now - self._last_sync < self.period:
            return
        self._last_sync = now
        doc = self._load()
        if doc is None:
            return
        self.syncs += 1
        shards = doc.setdefault("shards", {})
        peers = self._running(doc, now)
        rate = limiter.rate
        # Take over, in even parts, the rate of each shard that finished since the last sync.
        for k in set(self._peers) - set(peers) - self._taken_over:
            entry = shards.get(k) or {}
            if entry.get("done"):
                self._taken_over.add(k)
                rate += float(entry.get("rate") or self._peers[k]) / (len(peers) + 1)
        mean = None
        if peers:
            mean = (rate + sum(float(p["rate"]) for p in peers.values())) / (len(peers) + 1)
            rate += self.gain * (mean - rate)
        seen = [float(p["background"]) for p in peers.values() if isinstance(p.get("background"), (int, float))]
        own = limiter.own_background()
        limiter.set_rate(rate, even_share=mean, background=min(seen) if seen else None)
        self._peers = {k: float(v["rate"]) for k, v in peers.items()}
        limits = [float(p["limit"]) for p in peers.values() if isinstance(p.get("limit"), (int, float))]
        if limiter.limit is not None and len(limits) == len(peers):
            self.model_limit = max(self.model_limit or 0.0, limiter.limit + sum(limits))
        shards[self.shard] = {"rate": round(limiter.rate, 3), "at": now, "done": False,
                              "background": None if own is None else round(own, 4),
                              "limit": None if limiter.limit is None else round(limiter.limit, 3)}
        self._store(doc)

    def leave(self, limiter: AdaptiveLimiter) -> float | None:
        """Mark this shard done (the others take over its rate); return the model's limit in calls/s as
        the shards found it together (None if they never all found it: nothing worth remembering)."""
        if self.model_limit is None and limiter.limit is not None and not self._peers:
            self.model_limit = limiter.limit  # alone on the model all along
        doc = self._load()
        if doc is not None:
            doc.setdefault("shards", {})[self.shard] = {"rate": round(limiter.rate, 3), "at": self.clock(),
                                                        "done": True}
            self._store(doc)
        return self.model_limit


def start_limiter(rates: ShardRates | None, remembered: float | None, shard_count: int, *, initial_rate: float,
                  max_rate: float, max_concurrency: int) -> tuple[AdaptiveLimiter, str]:
    """A shard's limiter, started at the running shards' rate or its share of a remembered rate; and why."""
    if rates is not None:
        rate, slow_start = rates.start_rate(initial_rate, remembered)
    else:
        rate, slow_start = (remembered / max(1, shard_count) if remembered else initial_rate), True
    why = ("the running shards' rate" if not slow_start else "probing up from low" if not remembered
           else "its share of the rate remembered for this model and inference units")
    limiter = AdaptiveLimiter(initial_rate=min(max_rate, max(0.5, rate)), slow_start=slow_start, max_rate=max_rate,
                              max_concurrency=max_concurrency)
    return limiter, why


# --- the rate remembered per model version and inference units -----------------------------------
def memory_key(project_version_arn: str, min_units: int | None, max_units: int | None) -> str:
    """`<project>/<version>/units-<min>-<max>.json`: one record per model version and unit range."""
    ref = parse_project_version_arn(project_version_arn)
    lo = int(min_units or 1)
    hi = max(lo, int(max_units or lo))
    return f"{ref.project_name}/{ref.version_name}/units-{lo}-{hi}.json"


def remembered_rate(text: str | bytes | None) -> float | None:
    rate = _parse(text).get("rate")
    return float(rate) if isinstance(rate, (int, float)) and rate > 0 else None


def memory_record(rate: float, **facts) -> str:
    """What the next turn reads: the total calls/s the shards offered, and facts for a human reader."""
    return json.dumps({"rate": round(float(rate), 3), **facts}, sort_keys=True, indent=1)
