"""Adaptive limiter and bounded, jittered retries."""

from __future__ import annotations

import random
import threading
import time

import pytest

from rekfeedback.core.throughput import (
    AdaptiveLimiter, RetryPolicy, call_with_retries, classify_code, error_code,
)


class FakeClock:
    def __init__(self):
        self.t = 0.0

    def __call__(self):
        return self.t


class ApiError(Exception):
    def __init__(self, code):
        super().__init__(code)
        self.response = {"Error": {"Code": code, "Message": f"{code} happened"}}


def simulate(capacity: float, random_throttle: float, seconds: float = 60.0, seed: int = 1):
    """Drive the limiter against a model that serves `capacity` calls/s and throttles the rest.

    Returns the successful calls per second over the last half (after the limiter has settled).
    """
    rng = random.Random(seed)
    clock = FakeClock()
    limiter = AdaptiveLimiter(initial_rate=2.0, max_concurrency=1000, clock=clock)
    dt = 0.001
    served_in_second, second = 0, 0
    ok_late = 0
    while clock.t < seconds:
        if limiter.try_acquire() == 0.0:
            if int(clock.t) != second:
                second, served_in_second = int(clock.t), 0
            if served_in_second >= capacity:
                limiter.release("throttled", 0.01)
            elif rng.random() < random_throttle:
                limiter.release("throttled", 0.01)
            else:
                served_in_second += 1
                limiter.release("ok", 0.01)
                if clock.t >= seconds / 2:
                    ok_late += 1
        else:
            clock.t += dt
    return ok_late / (seconds / 2), limiter


@pytest.mark.parametrize("capacity", [10, 40, 200])
def test_limiter_finds_capacity_without_being_told(capacity):
    goodput, limiter = simulate(capacity, 0.0)
    assert goodput >= 0.85 * capacity
    assert limiter.decreases >= 1  # it had to find the ceiling by hitting it


def test_random_throttling_does_not_collapse_the_rate():
    goodput, limiter = simulate(40, 0.10)
    # 10% of calls fail at random whatever the load: at best 90% of the capacity succeeds
    # per call, but retries of throttled calls fill the rest of the capacity.
    assert goodput >= 0.85 * 40


def test_throttle_backs_off():
    clock = FakeClock()
    limiter = AdaptiveLimiter(initial_rate=100, clock=clock, window=0.5, min_window_samples=10)
    waits = [limiter.try_acquire() for _ in range(20)]
    assert waits[0] == 0.0 and all(w > 0 for w in waits[1:])  # one permit at once, a burst beyond it must wait
    clock.t = 1.0
    before = limiter.rate
    for _ in range(20):
        limiter.release("throttled", 0.01)
    assert limiter.rate < before


def test_success_probes_upward():
    clock = FakeClock()
    limiter = AdaptiveLimiter(initial_rate=5, clock=clock)
    for step in range(1, 6):
        clock.t = step
        for _ in range(10):
            limiter.release("ok", 0.01)
    assert limiter.rate > 5


def test_acquire_is_thread_safe_and_paced():
    limiter = AdaptiveLimiter(initial_rate=50, max_rate=50, max_concurrency=4)
    peak, in_flight, lock, count = [0], [0], threading.Lock(), [0]

    def worker():
        for _ in range(10):
            limiter.acquire()
            with lock:
                in_flight[0] += 1
                count[0] += 1
                peak[0] = max(peak[0], in_flight[0])
            time.sleep(0.005)
            with lock:
                in_flight[0] -= 1
            limiter.release("ok", 0.005)

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert count[0] == 80
    assert peak[0] <= 4
    assert limiter.calls == 80


def test_pacing_holds_the_rate_on_the_limiters_clock():
    """Over 2 s of a fake clock at 50 calls/s, 100 permits and the small burst: no more, whatever the machine."""
    clock = FakeClock()
    limiter = AdaptiveLimiter(initial_rate=50, max_rate=50, clock=clock)
    admitted = 0
    for step in range(2001):
        clock.t = step / 1000
        while limiter.try_acquire() == 0.0:
            admitted += 1
            limiter.release("ok", 0.001)
    assert 100 <= admitted <= 100 + 50 * 0.05 + 1


def test_retry_policy_full_jitter_is_bounded():
    policy = RetryPolicy(base=0.1, cap=1.0)
    rng = random.Random(3)
    delays = [policy.delay(n, rng) for n in range(1, 30)]
    assert all(0 <= d <= 1.0 for d in delays)
    assert len(set(delays)) > 20  # jittered, not a fixed schedule


def test_throttled_call_is_retried_until_it_succeeds():
    answers = iter([ApiError("ProvisionedThroughputExceededException")] * 5 + ["ok"])

    def fn():
        a = next(answers)
        if isinstance(a, Exception):
            raise a
        return a

    sleeps = []
    out = call_with_retries(fn, limiter=AdaptiveLimiter(initial_rate=1000, max_rate=1000),
                            policy=RetryPolicy(), sleep=sleeps.append)
    assert out.value == "ok" and out.error is None
    assert out.calls == 6 and out.throttles == 5 and len(sleeps) == 5


def test_retries_are_bounded_and_the_error_is_returned():
    def always(code):
        def fn():
            raise ApiError(code)
        return fn

    policy = RetryPolicy(max_throttle_retries=4, max_error_retries=2)
    out = call_with_retries(always("ThrottlingException"), limiter=None, policy=policy, sleep=lambda s: None)
    assert out.calls == 5 and out.code == "ThrottlingException"
    out = call_with_retries(always("InternalServerError"), limiter=None, policy=policy, sleep=lambda s: None)
    assert out.calls == 3 and out.code == "InternalServerError"
    out = call_with_retries(always("InvalidImageFormatException"), limiter=None, policy=policy, sleep=lambda s: None)
    assert out.calls == 1 and out.code == "InvalidImageFormatException"


def test_error_classification():
    assert classify_code("ProvisionedThroughputExceededException") == "throttled"
    assert classify_code("ThrottlingException") == "throttled"
    assert classify_code("InternalServerError") == "transient"
    assert classify_code("ImageTooLargeException") == "fatal"
    assert error_code(ApiError("X")) == "X"
    assert error_code(ValueError("boom")) == "ValueError"


class _MaxRng:
    """Every jittered wait at its upper bound, so the test sees the schedule itself."""

    def random(self):
        return 1.0


def test_a_throttle_under_the_limiter_is_retried_soon_and_backs_off_only_when_it_persists():
    # The limiter paces every call (and cuts the rate on overload), so a throttled image need not
    # wait longer per throttle: waits of seconds for an unlucky image are the run's tail.
    answers = iter([ApiError("ProvisionedThroughputExceededException")] * 8 + ["ok"])

    def fn():
        a = next(answers)
        if isinstance(a, Exception):
            raise a
        return a

    policy = RetryPolicy(base=0.05, cap=5.0, paced_retries=6)
    paced, alone = [], []
    out = call_with_retries(fn, limiter=AdaptiveLimiter(initial_rate=1000, max_rate=1000), policy=policy,
                            rng=_MaxRng(), sleep=paced.append)
    assert out.value == "ok" and out.throttles == 8
    assert paced == pytest.approx([0.05] * 6 + [0.1, 0.2])
    # Without a limiter nothing else slows the calls down: exponential from the first throttle.
    assert [policy.delay(n, _MaxRng()) for n in (1, 2, 3)] == pytest.approx([0.1, 0.2, 0.4])
    # A transient error under the limiter says nothing about load: still exponential.
    assert policy.delay(3, _MaxRng(), paced=False) == pytest.approx(0.4)


def test_permits_keep_the_rate_when_every_wake_up_is_late():
    # A shard's threads on busy cores wake up after their permit was due; the limiter must not
    # lose that time, or the rate it set (and shares with other shards) is not the rate it makes.
    now = [0.0]
    limiter = AdaptiveLimiter(initial_rate=10.0, max_rate=10.0, clock=lambda: now[0])
    permits = 0
    for _ in range(10):  # the waiter sleeps 0.1 s (the permit's due time) but wakes at 0.13 s
        while limiter.try_acquire() == 0.0:
            permits += 1
            limiter.release("error")  # says nothing about load: the rate stays
        now[0] += 0.13
    assert limiter.rate == 10.0
    assert permits >= 12  # by 1.17 s: the first permit and 11 more at 10/s (room for one permit only: 10)
