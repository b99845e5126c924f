"""Find a model's throughput by itself, and retry throttled calls without losing them.

A Rekognition Custom Labels model serves a fixed number of transactions per second per inference
unit, and nobody tells the client that number. `AdaptiveLimiter` paces calls with a token bucket
whose rate it adapts per measurement window (AIMD with slow start):

- it starts low and grows by `slow_start_growth` each clean window until the first overload (slow start);
- a window whose throttled share exceeds `tolerance` above the background share (the lowest share
  of the recent windows: random throttling that happens at any load), by more than chance would
  explain in a window that size, is an overload: the rate drops to the rate that sustains what
  succeeded in that window (at least rate * `decrease`, at most rate * 0.9), so a cut lands near the
  capacity the model just showed;
- otherwise it probes upward by `probe_gain` of the rate per `window` seconds, faster after each
  further clean window (capacity freed by a finished shard or added by auto-scaling is taken
  within seconds, not minutes).

Several shards on one model each run a limiter; `core.shard_rates` keeps one budget for the model
and sets each shard's rate to its share of it (`set_rate`). `initial_rate` may come from the running
shards (`slow_start=False`: no probing from low) or from a rate remembered from an earlier turn.

Judging windows rather than single responses matters: the service also throttles at random (a few
per cent of calls regardless of load), and reacting to each of those would collapse the rate.
Concurrency follows the rate (Little's law: rate x latency, with headroom), capped by
`max_concurrency`, so a slow model does not pile up calls.
"""

from __future__ import annotations

import math
from collections import deque
import random
import threading
import time
from dataclasses import dataclass
from typing import Callable

THROTTLE_CODES = frozenset({
    "ProvisionedThroughputExceededException",
    "ThrottlingException",
    "Throttling",
    "TooManyRequestsException",
    "RequestLimitExceeded",
    "SlowDown",
})
TRANSIENT_CODES = frozenset({
    "InternalServerError",
    "InternalError",
    "ServiceUnavailable",
    "ServiceUnavailableException",
    "RequestTimeout",
    "RequestTimeoutException",
    "EndpointConnectionError",
    "ConnectionError",
    "ReadTimeoutError",
})


class AdaptiveLimiter:
    """Thread-safe adaptive rate and concurrency limit. Use `acquire()` before a call, `release()` after."""

    def __init__(
        self,
        *,
        initial_rate: float = 10.0,
        min_rate: float = 0.5,
        max_rate: float = 10_000.0,
        max_concurrency: int = 64,
        tolerance: float = 0.2,
        background_windows: int = 8,
        max_background: float = 0.3,
        decrease: float = 0.5,
        probe_gain: float = 0.05,
        window: float = 0.5,
        min_window_samples: int = 10,
        max_window: float = 2.0,
        significance: float = 1.5,
        concurrency_headroom: float = 1.5,
        max_acceleration: int = 8,
        share_band: float = 0.2,
        demand_share: float = 0.7,
        slow_start: bool = True,
        slow_start_growth: float = 2.0,
        clock: Callable[[], float] = time.monotonic,
    ):
        if not 0 < min_rate <= initial_rate <= max_rate:
            raise ValueError("need 0 < min_rate <= initial_rate <= max_rate")
        if max_concurrency < 1:
            raise ValueError("max_concurrency must be >= 1")
        self.min_rate, self.max_rate = float(min_rate), float(max_rate)
        self.max_concurrency = int(max_concurrency)
        self.tolerance, self.decrease, self.probe_gain = tolerance, decrease, probe_gain
        self.max_background = max_background
        self._recent_shares: deque[float] = deque(maxlen=background_windows)
        self.window, self.min_window_samples, self.max_window = window, min_window_samples, max_window
        self.significance = significance
        self.headroom = concurrency_headroom
        self._clock = clock
        self._cond = threading.Condition()
        self._rate = float(initial_rate)
        self._tokens = 1.0
        self._last_refill = clock()
        self._in_flight = 0
        self._latency: float | None = None
        self._slow_start = bool(slow_start)
        self.slow_start_growth = max(1.0, float(slow_start_growth))
        self.max_acceleration = max(1, int(max_acceleration))
        self.share_band, self.demand_share = share_band, demand_share
        self._clean_windows = 0  # consecutive windows without overload since the last cut
        self._even_share: float | None = None
        self.limit: float | None = None  # calls/s that sustain what the model served when it last throttled
        self._shared_background: float | None = None
        self._capacity: float | None = None  # successful calls/s measured in overloaded windows
        self._win_start = clock()
        self._win_ok = 0
        self._win_throttled = 0
        self.calls = 0
        self.throttles = 0
        self.answered = 0  # calls that came back 'ok'
        self.decreases = 0

    # --- state -------------------------------------------------------------------------------
    @property
    def rate(self) -> float:
        return self._rate

    @property
    def concurrency_limit(self) -> int:
        with self._cond:
            return self._concurrency_limit()

    def _concurrency_limit(self) -> int:
        latency = self._latency if self._latency is not None else 0.5
        return max(2, min(self.max_concurrency, math.ceil(self._rate * latency * self.headroom) + 1))

    def background(self) -> float:
        """Throttled share that is not about load: the lowest of the recent windows, capped.

        The minimum, because a window just after a cut is below capacity and shows only the
        background; a mean would learn persistent overload as "background" and stop backing off.
        """
        own = None if len(self._recent_shares) < 2 else min(self._recent_shares)
        if self._shared_background is not None:
            # Other shards' calls overload the model too, so a shard alone may never see a window
            # below capacity; the lowest share any shard saw is the model's background.
            own = self._shared_background if own is None else min(own, self._shared_background)
        return 0.0 if own is None else min(self.max_background, own)

    def own_background(self) -> float | None:
        with self._cond:
            return None if len(self._recent_shares) < 2 else min(self._recent_shares)

    @property
    def in_slow_start(self) -> bool:
        return self._slow_start

    def set_rate(self, rate: float, even_share: float | None = None, background: float | None = None) -> None:
        """Move the rate (a shared decision); the adaptation goes on from there.

        `even_share`, the share of the model the shards gave this one, sizes the upward probe, and
        until the next look the rate stays within `share_band` of it (after slow start), so one
        shard's lucky or unlucky windows do not undo the sharing.
        """
        with self._cond:
            self._rate = max(self.min_rate, min(self.max_rate, float(rate)))
            self._even_share = even_share
            self._shared_background = background
            self._cond.notify_all()

    def snapshot(self) -> dict:
        with self._cond:
            return {"rate": round(self._rate, 2), "concurrency": self._concurrency_limit(),
                    "in_flight": self._in_flight, "calls": self.calls, "throttles": self.throttles,
                    "latency": None if self._latency is None else round(self._latency, 4)}

    # --- pacing ------------------------------------------------------------------------------
    def _refill(self, now: float) -> None:
        # Room for two permits (a tenth of a second's worth at high rates): a thread that wakes late for
        # its permit (busy cores, the GIL) leaves the next one due sooner, so the calls keep the rate
        # asked for; with room for one, every late wake-up was lost for good (at 10 calls/s a shard made
        # 8). Still small bursts: a model's throughput is per second.
        burst = max(2.0, self._rate * 0.1)
        self._tokens = min(burst, self._tokens + (now - self._last_refill) * self._rate)
        self._last_refill = now

    def try_acquire(self) -> float:
        """Take a permit now and return 0.0, or return how long to wait before trying again."""
        with self._cond:
            return self._try_acquire_locked()

    def _try_acquire_locked(self) -> float:
        if self._in_flight >= self._concurrency_limit():
            return 0.05  # woken by release() anyway when waiting in acquire()
        now = self._clock()
        self._refill(now)
        if self._tokens >= 1.0:
            self._tokens -= 1.0
            self._in_flight += 1
            self.calls += 1
            return 0.0
        return (1.0 - self._tokens) / self._rate

    def acquire(self, timeout: float | None = None) -> bool:
        """Block until a call may start. Returns False only if `timeout` passed first."""
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._cond:
            while True:
                wait = self._try_acquire_locked()
                if wait == 0.0:
                    return True
                if deadline is not None:
                    left = deadline - time.monotonic()
                    if left <= 0:
                        return False
                    wait = min(wait, left)
                self._cond.wait(wait)

    def release(self, outcome: str, latency: float | None = None) -> None:
        """Report a finished call: outcome is 'ok', 'throttled' or 'error' (an error says nothing about load)."""
        with self._cond:
            self._in_flight = max(0, self._in_flight - 1)
            if latency is not None and outcome != "throttled":
                self._latency = latency if self._latency is None else 0.8 * self._latency + 0.2 * latency
            if outcome == "ok":
                self._win_ok += 1
                self.answered += 1
            elif outcome == "throttled":
                self._win_throttled += 1
                self.throttles += 1
            self._maybe_adapt(self._clock())
            self._cond.notify_all()

    def _maybe_adapt(self, now: float) -> None:
        elapsed = now - self._win_start
        samples = self._win_ok + self._win_throttled
        # At low rates a longer window with fewer samples, so slow start does not crawl.
        if elapsed < self.window or (samples < self.min_window_samples
                                     and (elapsed < self.max_window or samples < 5)):
            return
        throttled_share = self._win_throttled / samples
        goodput = self._win_ok / elapsed
        call_rate = samples / elapsed
        # Only windows below the capacity seen so far teach the background share; otherwise
        # persistent overload would pass for background and the rate would stop backing off.
        if self._capacity is None or call_rate <= 1.05 * self._capacity:
            self._recent_shares.append(throttled_share)
        # Overload only when the throttles are more than chance could give at the tolerated share:
        # a small window with a few unlucky random throttles must not cut the rate.
        allowed = min(0.95, self.tolerance + self.background())
        limit = samples * allowed + self.significance * math.sqrt(samples * allowed * (1 - allowed))
        if self._win_throttled > limit:
            self._slow_start = False
            self._clean_windows = 0
            self.decreases += 1
            self._capacity = goodput if self._capacity is None else 0.5 * self._capacity + 0.5 * goodput
            # The calls needed to keep what just succeeded, given the background throttling.
            sustain = goodput / max(0.5, 1.0 - self.background())
            if call_rate >= self.demand_share * self._rate:  # a window short of calls shows less than the limit
                self.limit = sustain if self.limit is None else 0.5 * self.limit + 0.5 * sustain
            self._rate = max(self.min_rate, min(self._rate * 0.9, max(sustain, self._rate * self.decrease)))
        elif call_rate < self.demand_share * self._rate:
            pass  # fewer calls than allowed (the last images, or waits): no evidence the model takes more
        elif self._slow_start:
            self._rate = min(self.max_rate, self._rate * self.slow_start_growth)
        else:
            # Probe per second, not per window (a slower shard has longer windows and must not fall
            # behind), doubling the step with each further clean window up to max_acceleration.
            self._clean_windows += 1
            boost = min(self.max_acceleration, 2 ** max(0, self._clean_windows - 2))
            base = self._even_share or self._rate
            step = (base * self.probe_gain + 0.5) * boost * min(4.0, elapsed / self.window)
            self._rate = min(self.max_rate, self._rate + step)
        if self._even_share and not self._slow_start:
            # Between two looks at the other shards, stay near this shard's share: one shard's unlucky or
            # lucky windows must not undo the sharing (the share itself moves at every look).
            self._rate = max(self.min_rate, min(self._rate, self._even_share * (1 + self.share_band)),
                             self._even_share * (1 - self.share_band))
        self._win_start = now
        self._win_ok = self._win_throttled = 0


@dataclass(frozen=True)
class RetryPolicy:
    """Bounded retries with "full jitter" exponential backoff (a random wait in [0, min(cap, base*2^n)]).

    A throttled call paced by an `AdaptiveLimiter` waits only `base` for its first `paced_retries`
    throttles: the limiter is the back-off there (it slows every call when the model is overloaded,
    and its permits space the retries), so a wait growing per call would only hold the unluckiest
    images back to the end of the run, a tail at a fraction of the model (10% random throttling
    makes a few of 1,000 images meet 4 throttles in a row). Beyond that the model refuses this call
    persistently and the usual exponential backoff applies.
    """

    max_throttle_retries: int = 30  # throttling is load, not a fault: retried far longer than errors
    max_error_retries: int = 3
    base: float = 0.05
    cap: float = 5.0
    paced_retries: int = 6

    def delay(self, attempt: int, rng: random.Random | None = None, paced: bool = False) -> float:
        r = (rng or random).random()
        if paced:
            attempt = 0 if attempt <= self.paced_retries else attempt - self.paced_retries
        return r * min(self.cap, self.base * (2 ** max(0, attempt)))

    def should_retry(self, kind: str, attempt: int) -> bool:
        """attempt = number of failed tries so far of this kind."""
        if kind == "throttled":
            return attempt <= self.max_throttle_retries
        if kind == "transient":
            return attempt <= self.max_error_retries
        return False


def classify_code(code: str | None) -> str:
    """'throttled', 'transient' (worth retrying) or 'fatal' (the image's own problem or the caller's)."""
    if code in THROTTLE_CODES:
        return "throttled"
    if code in TRANSIENT_CODES:
        return "transient"
    return "fatal"


def error_code(exc: BaseException) -> str:
    """AWS error code of an exception without importing botocore: ClientError has .response['Error']['Code']."""
    response = getattr(exc, "response", None)
    if isinstance(response, dict):
        code = (response.get("Error") or {}).get("Code")
        if code:
            return str(code)
    name = type(exc).__name__
    if name in ("EndpointConnectionError", "ConnectionClosedError", "ReadTimeoutError", "ConnectTimeoutError"):
        return "ConnectionError" if name != "ReadTimeoutError" else "ReadTimeoutError"
    return name


def error_message(exc: BaseException) -> str:
    response = getattr(exc, "response", None)
    if isinstance(response, dict):
        msg = (response.get("Error") or {}).get("Message")
        if msg:
            return str(msg)
    return str(exc) or type(exc).__name__


@dataclass
class CallOutcome:
    value: object = None
    error: BaseException | None = None
    code: str | None = None
    calls: int = 0
    throttles: int = 0


def call_with_retries(
    fn: Callable[[], object],
    *,
    limiter: AdaptiveLimiter | None,
    policy: RetryPolicy,
    rng: random.Random | None = None,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
    stop: threading.Event | None = None,
) -> CallOutcome:
    """Call `fn` under the limiter; retry throttles and transient errors with jittered backoff.

    Never raises what `fn` raises: the last error comes back in the outcome, so the caller records it.
    `stop`, when set, ends the retries early (the run is being aborted) with the last error.
    """
    out = CallOutcome()
    throttled = transient = 0
    while True:
        if limiter is not None:
            limiter.acquire()
        started = clock()
        out.calls += 1
        try:
            out.value = fn()
        except Exception as exc:  # noqa: BLE001 - classified below, recorded by the caller
            code = error_code(exc)
            kind = classify_code(code)
            if limiter is not None:
                limiter.release("throttled" if kind == "throttled" else "error", clock() - started)
            out.error, out.code = exc, code
            if kind == "throttled":
                out.throttles += 1
                throttled += 1
                attempt = throttled
            elif kind == "transient":
                transient += 1
                attempt = transient
            else:
                return out
            if not policy.should_retry(kind, attempt) or (stop is not None and stop.is_set()):
                return out
            sleep(policy.delay(attempt, rng, paced=limiter is not None and kind == "throttled"))
            continue
        if limiter is not None:
            limiter.release("ok", clock() - started)
        out.error, out.code = None, None
        return out
