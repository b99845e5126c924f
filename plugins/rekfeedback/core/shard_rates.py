"""Shards of one turn share one model by the work each has left, and a turn starts at the rate an
earlier turn found.

Each shard's limiter finds the model's limit by itself (`throughput.AdaptiveLimiter`), but limiters
that see only their own calls split a shared model by accident of timing: the shard that ramped
first keeps more, because every limiter cuts and probes in proportion to its own rate. So every
`period` seconds a shard reads one small JSON record under the turn prefix (the rate hint):

- `total`, the model's budget in calls/s for all shards. A shard changes it only by what its own
  limiter did since its last look (a cut on overload, a probe up), so each limiter's evidence counts
  in full and moving rate between shards never changes the total;
- one entry per shard: its rate, the images it has left, the calls/s the model answered it, the
  background throttling it saw. A shard takes the share of the budget its work left is of all the
  shards' work left, so the shards finish together; a shard that finishes leaves its rate in the
  budget, and the others take it over at their next look.

The hint is only a hint: read-modify-write without a lock, so two shards writing at the same
moment may drop one update (a limiter's step is then lost, and its next windows find it again).
An entry older than `stale_after` (a crashed or killed shard) does not count.

At the end the calls/s the model answered while all shards ran past slow start is remembered per
model version and inference units (`remembered_rate` / `memory_record`), and the next turn's
shards start from it (each its share) instead of probing up from a low rate.
"""

from __future__ import annotations

import json
import logging
import statistics
import time
from collections import deque
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


def _number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


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
        failure_pause: float = 30.0,
        clock: Callable[[], float] = time.time,  # wall clock: shards in other processes share it
        log: logging.Logger | None = None,
    ):
        self.shard, self.shard_count = str(shard), max(1, int(shard_count))
        self._read, self._write = read, write
        self.period, self.stale_after = period, stale_after
        self.failure_pause = failure_pause
        self.clock = clock
        self.log = log or logging.getLogger(__name__)
        self._last_sync: float | None = None
        self._failed = False
        self._left: int | None = None  # images left, as this shard last wrote it in the hint
        # The model's limit, as the calls/s it answered the shards running, past slow start (then the
        # shards offer more than it serves, so what it serves is its capacity): the median of those
        # looks. Not the largest of many noisy sums of the limiters' own estimates, which grew turn after
        # turn (41 -> 48 -> 52 -> 74 calls/s for a model that sustains 44) so later turns started
        # overloaded, nor their median (20% low with 8 shards). A turn starts there and grows until the
        # model throttles: the random throttling on top is found again in a window or two.
        self._served_sums: deque[float] = deque(maxlen=256)
        self._answered: tuple[float, int] | None = None  # (time, limiter.answered) at the last look

    @property
    def model_limit(self) -> float | None:
        """The model's limit in calls/s as the shards found it together (None if never measured)."""
        return statistics.median(self._served_sums) if self._served_sums else None

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
                and _number(v.get("rate")) and _number(v.get("at"))
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
            # Still growing from there until the first throttle (by FROM_MEMORY_GROWTH a window): a
            # remembered rate may be low (the workers were short of CPU), and it is what the model
            # answered, below what it takes to keep it busy with random throttling on top.
            return max(default / 4, remembered / self.shard_count), True
        return default, True

    def tick(self, limiter: AdaptiveLimiter, left: int | None = None) -> None:
        """Look at the other shards (at most once per `period`); `left` = this shard's images not yet done."""
        now = self.clock()
        if self._last_sync is not None and now - self._last_sync < self.period:
            return
        self._last_sync = now
        doc = self._load()
        if doc is None:
            return
        if not isinstance(doc.get("shards"), dict):
            doc["shards"] = {}  # a foreign object: rewritten
        shards = doc["shards"]
        peers = self._running(doc, now)
        # The model's budget (calls/s for all shards) is one number in the hint. A shard changes it only
        # by what its own limiter found since its last look (a cut on overload, a probe), and takes its
        # share of it: moving rate between shards then never changes the total, and every limiter's
        # evidence counts in full. (Averaging the shards' rates kept 1/n of each one's cuts and probes,
        # so with 8 shards the model's rate adapted 8 times slower.) The budget counts this shard at the
        # rate its entry in the same object says, so an update lost to another shard's write (shards
        # starting together all write at once) loses nothing: the next look adds what is missing. A
        # shard that finishes leaves its rate in the budget for the others to take over.
        total = self._budget(doc, peers, now) + limiter.rate
        # Each shard's share follows its share of the work left, so the shards finish together: the
        # turn ends when the last one does, and the model is billed until then. With even shares random
        # cuts put one shard seconds behind, and it ran its last images alone with too few in flight to
        # use the model. The counts compared are all as written in the hint, this shard's own too (from
        # its last look), so none is fresher than the others. Without counts, even shares.
        lefts = [p.get("left") for p in peers.values()]
        own_left = self._left
        weighted = own_left is not None and all(_number(x) for x in lefts)
        work = float(own_left) + sum(lefts) if weighted else 0.0
        share = (max(0.5, float(own_left)) / max(0.5 * (len(peers) + 1), work) if weighted and work > 0
                 else 1.0 / (len(peers) + 1))
        rate = max(limiter.min_rate, total * share)
        seen = [float(p["background"]) for p in peers.values() if _number(p.get("background"))]
        own = limiter.own_background()
        limiter.set_rate(rate, even_share=rate if peers else None, background=min(seen) if seen else None)
        doc["total"] = round(max(total, limiter.rate), 3)
        served = None
        if self._answered is not None and now > self._answered[0]:
            served = (limiter.answered - self._answered[1]) / (now - self._answered[0])
        self._answered = (now, limiter.answered)
        others = [p.get("served") for p in peers.values()]
        # Every shard running counts (shards that run one after another on few worker slots each find
        # the model alone); a shard still in slow start does not yet offer more than the model serves.
        if (served is not None and not limiter.in_slow_start
                and all(_number(x) for x in others)):
            self._served_sums.append(served + sum(others))
        shards[self.shard] = {"rate": round(limiter.rate, 3), "at": now, "done": False,
                              "background": None if own is None else round(own, 4),
                              "served": None if served is None else round(served, 3)}
        if left is not None:
            shards[self.shard]["left"] = self._left = int(left)
        self._store(doc)

    def _budget(self, doc: dict, peers: dict[str, dict], now: float) -> float:
        """The model's budget without this shard, as the hint counts it: its `total` less this shard's
        entry; or, when nobody running or just finished wrote it (a new turn, a rerun), the running
        shards' rates."""
        shards = doc["shards"]
        mine = shards.get(self.shard)
        recent_done = any(isinstance(v, dict) and v.get("done") and _number(v.get("at"))
                          and now - v["at"] <= self.stale_after for k, v in shards.items() if k != self.shard)
        if not _number(doc.get("total")) or not (peers or recent_done):
            return sum(float(p["rate"]) for p in peers.values())
        return float(doc["total"]) - (float(mine["rate"]) if isinstance(mine, dict) and _number(mine.get("rate"))
                                      else 0.0)

    def leave(self, limiter: AdaptiveLimiter) -> float | None:
        """Mark this shard done (the others take over its rate); return the model's limit in calls/s as
        the shards measured it together (None if never: nothing worth remembering)."""
        doc = self._load()
        if doc is not None:
            doc.setdefault("shards", {})[self.shard] = {"rate": round(limiter.rate, 3), "at": self.clock(),
                                                        "done": True}
            self._store(doc)
        return self.model_limit


# Slow start's growth per window from a remembered rate: doubling from a rate near the model's limit
# overshot it threefold before the shards' first windows judged (8 shards offered 135 calls/s to a
# 44 calls/s model); half again per window still reaches a limit twice the memory in two windows.
FROM_MEMORY_GROWTH = 1.5


def start_limiter(rates: ShardRates | None, remembered: float | None, shard_count: int, *, initial_rate: float,
                  max_rate: float, max_concurrency: int, **limiter_options) -> tuple[AdaptiveLimiter, str]:
    """A shard's limiter, started at the running shards' rate or its share of a remembered rate; and why."""
    if rates is not None:
        rate, slow_start = rates.start_rate(initial_rate, remembered)
    else:
        rate, slow_start = (remembered / max(1, shard_count) if remembered else initial_rate), True
    why = ("the running shards' rate" if not slow_start else "probing up from low" if not remembered
           else "its share of the rate remembered for this model and inference units")
    limiter = AdaptiveLimiter(initial_rate=min(max_rate, max(0.5, rate)), slow_start=slow_start, max_rate=max_rate,
                              max_concurrency=max_concurrency,
                              slow_start_growth=FROM_MEMORY_GROWTH if remembered and slow_start else 2.0,
                              **limiter_options)
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
    """What the next turn reads: the calls/s the model answered the shards, and facts for a human reader."""
    return json.dumps({"rate": round(float(rate), 3), **facts}, sort_keys=True, indent=1)
