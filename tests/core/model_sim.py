"""A simulated model and several limiters stepping on one fake clock (no threads, no wall time).

The model serves at most `capacity` calls in any one-second window (as the emulator and Rekognition
do), throttles `random_throttle` of the calls at random whatever the load, and answers after
`latency` seconds. Each client has `images` to get answered and calls as fast as its limiter lets it.
"""

from __future__ import annotations

import heapq
import random
from collections import deque
from dataclasses import dataclass, field

from rekfeedback.core.shard_rates import ShardRates, start_limiter
from rekfeedback.core.throughput import AdaptiveLimiter


class FakeClock:
    def __init__(self, t: float = 0.0):
        self.t = t

    def __call__(self) -> float:
        return self.t


class Store:
    """The hint object: one text shared by all shards, as the S3 object is."""

    def __init__(self):
        self.text = None
        self.writes = 0

    def read(self):
        return self.text

    def write(self, text):
        self.text = text
        self.writes += 1


@dataclass
class Client:
    limiter: AdaptiveLimiter
    images: int
    rates: ShardRates | None = None
    start: float = 0.0
    done: int = 0
    calls: int = 0
    finished_at: float | None = None
    answered_at: list = field(default_factory=list)

    def images_per_second(self) -> float:
        return self.done / ((self.finished_at or 0.0) - self.start)


class Model:
    """`capacity` calls/s, or what `scaler` (the emulator's AutoScaler) has scaled the units to."""

    def __init__(self, capacity=None, random_throttle=0.0, seed=1, scaler=None):
        self.capacity, self.random_throttle, self.scaler = capacity, random_throttle, scaler
        self.rng = random.Random(seed)
        self.window: deque[float] = deque()

    def admit(self, now: float) -> bool:
        while self.window and self.window[0] <= now - 1.0:
            self.window.popleft()
        if self.rng.random() < self.random_throttle:
            return False
        capacity = self.scaler.capacity(now) if self.scaler else self.capacity
        served = len(self.window) < capacity
        if self.scaler:
            self.scaler.record(now, served)
        if served:
            self.window.append(now)
        return served


def make_clients(n, clock, images, *, shared=True, initial_rate=10.0, store=None, starts=None, period=1.0,
                 remembered=None, **limiter_kw):
    store = store if store is not None else Store()
    clients = []
    for i in range(n):
        rates = ShardRates(shard=i, shard_count=n, read=store.read, write=store.write, period=period,
                           clock=clock) if shared else None
        limiter, _ = start_limiter(rates, remembered, n, initial_rate=initial_rate, max_rate=10_000.0,
                                   max_concurrency=64, clock=clock, **limiter_kw)
        clients.append(Client(limiter, images, rates, start=(starts or [0.0] * n)[i]))
    return clients, store


def run(model, clients, clock, *, latency=0.25, dt=0.002, until=600.0):
    """Step the clock until every client has its images answered; returns the time that took."""
    pending: list = []  # (release time, seq, client index, outcome)
    seq = 0
    while clock.t < until:
        while pending and pending[0][0] <= clock.t:
            _, _, i, outcome = heapq.heappop(pending)
            c = clients[i]
            c.limiter.release(outcome, latency if outcome == "ok" else 0.01)
            if outcome == "ok":
                c.done += 1
                c.answered_at.append(clock.t)
                if c.done == c.images:
                    c.finished_at = clock.t
                    if c.rates:
                        c.rates.leave(c.limiter)
        if all(c.finished_at is not None for c in clients):
            return max(c.finished_at for c in clients) - min(c.start for c in clients)
        order = list(range(len(clients)))
        model.rng.shuffle(order)  # nobody is always first in a step
        for i in order:
            c = clients[i]
            if c.start > clock.t or c.finished_at is not None:
                continue
            if c.rates:
                c.rates.tick(c.limiter, c.images - c.done)
            # In flight counts towards the images: the engine queues no more than are left.
            while c.done + c.limiter.snapshot()["in_flight"] < c.images and c.limiter.try_acquire() == 0.0:
                c.calls += 1
                ok = model.admit(clock.t)
                heapq.heappush(pending, (clock.t + (latency if ok else 0.01), seq, i, "ok" if ok else "throttled"))
                seq += 1
        clock.t += dt
    raise AssertionError(f"not done after {until}s: {[c.done for c in clients]}")
