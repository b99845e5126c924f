"""Run DetectCustomLabels over many images: concurrent, adaptive, resumable, nothing lost.

Everything that talks to AWS is injected (`probe`, `detect`, `checkpoint`), so the operator and the
benchmark share this engine and the unit tests drive it with plain functions.

Every image ends as exactly one prediction line: labels, no labels, or the error that stopped it.
Throttled calls are retried (see `throughput.RetryPolicy`); errors that mean the whole run cannot go
on (the model is not running, not found, not ours) stop the dispatching, checkpoint what is done and
raise `InferenceAborted`. On resume, lines already done are kept and their images are never sent
again, except lines whose error was throttling or a transient service error (no answer was paid for).
"""

from __future__ import annotations

import logging
import random
import statistics
import threading
import time
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from typing import Callable, Iterable

from rekfeedback.core.imagesize import ImageProbe
from rekfeedback.core.predictions import prediction_line, sort_lines, summarize
from rekfeedback.core.shard_rates import ShardRates
from rekfeedback.core.throughput import AdaptiveLimiter, RetryPolicy, call_with_retries, classify_code, error_message

# Errors that are about the run, not about one image: going on would only fail every image.
RUN_FATAL_CODES = frozenset({
    "ResourceNotReadyException",
    "ResourceNotFoundException",
    "AccessDeniedException",
    "UnrecognizedClientException",
    "InvalidSignatureException",
    "ExpiredTokenException",
})


@dataclass(frozen=True)
class ImageTask:
    source_ref: str
    size: int | None = None  # from the listing, when known (saves nothing but a header lookup)


class InferenceAborted(Exception):
    def __init__(self, code: str, message: str, done: int, total: int):
        super().__init__(f"{code}: {message} ({done}/{total} images done and checkpointed)")
        self.code, self.message, self.done, self.total = code, message, done, total


class TooManyFailures(Exception):
    def __init__(self, message: str, result: "EngineResult"):
        super().__init__(message)
        self.result = result


@dataclass
class EngineResult:
    lines: list[dict]
    total: int
    resumed: int = 0
    calls: int = 0
    throttles: int = 0
    elapsed: float = 0.0
    processed: int = 0  # images finished in this attempt
    checkpoints: int = 0  # checkpoint writes (S3 PUTs in the operator): the cost of losing little to a kill
    header_bytes: list[int] = field(default_factory=list)
    model_limit: float | None = None  # calls/s the model sustained, as the shards found it together (ShardRates)

    @property
    def summary(self) -> dict:
        return summarize(self.lines)

    @property
    def median_header_bytes(self) -> int:
        return int(statistics.median(self.header_bytes)) if self.header_bytes else 0


@dataclass
class _Done:
    line: dict | None  # None: not finished (run aborting)
    calls: int = 0
    throttles: int = 0
    header_bytes: int | None = None
    fatal: tuple[str, str] | None = None


def failure_report(lines: list[dict], total: int, threshold: float, examples: int = 3) -> str | None:
    """A summary of the causes when the failed share passes `threshold`, else None."""
    failed = [line for line in lines if line.get("error")]
    if total == 0 or len(failed) / total <= threshold:
        return None
    by_code: dict[str, list[dict]] = {}
    for line in failed:
        by_code.setdefault(line["error"]["code"], []).append(line)
    parts = []
    for code, group in sorted(by_code.items(), key=lambda kv: -len(kv[1])):
        samples = "; ".join(f"{g['source-ref']}: {g['error']['message']}" for g in group[:examples])
        parts.append(f"{code} x{len(group)} (e.g. {samples})")
    return (f"{len(failed)} of {total} images failed ({100 * len(failed) / total:.1f}% > "
            f"{100 * threshold:.1f}% allowed by max_failed_share). Causes: " + " | ".join(parts))


class _Gate:
    """At most `limit()` holders at once; the limit is read anew while waiting (it follows the rate)."""

    def __init__(self, limit: Callable[[], int]):
        self._limit, self._held, self._cond = limit, 0, threading.Condition()

    def __enter__(self) -> None:
        with self._cond:
            while self._held >= max(1, self._limit()):
                self._cond.wait(0.05)
            self._held += 1

    def __exit__(self, *exc) -> None:
        with self._cond:
            self._held -= 1
            self._cond.notify()


class InferenceEngine:
    def __init__(
        self,
        *,
        probe: Callable[[ImageTask], ImageProbe],
        detect: Callable[[ImageTask, ImageProbe], dict],
        model: str,
        limiter: AdaptiveLimiter | None = None,
        policy: RetryPolicy | None = None,
        max_workers: int = 32,
        checkpoint: Callable[[list[dict]], None] | None = None,
        checkpoint_every: int = 50,
        checkpoint_interval: float = 5.0,
        progress_interval: float = 30.0,
        max_failed_share: float = 0.1,
        run_fatal_codes: Iterable[str] = RUN_FATAL_CODES,
        log: logging.Logger | None = None,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
        rng: random.Random | None = None,
        shard_rates: ShardRates | None = None,
    ):
        if max_workers < 1:
            raise ValueError("max_workers must be >= 1")
        if not 0.0 <= max_failed_share <= 1.0:
            raise ValueError(f"max_failed_share must be between 0 and 1, got {max_failed_share!r}")
        self.probe, self.detect, self.model = probe, detect, model
        self.limiter = limiter or AdaptiveLimiter(max_concurrency=max_workers)
        self.policy = policy or RetryPolicy()
        self.max_workers = max_workers
        self.checkpoint = checkpoint
        self.checkpoint_every, self.checkpoint_interval = checkpoint_every, checkpoint_interval
        self.progress_interval = progress_interval
        self.max_failed_share = max_failed_share
        self.run_fatal_codes = frozenset(run_fatal_codes)
        self.log = log or logging.getLogger(__name__)
        self.clock, self.sleep = clock, sleep
        self.rng = rng or random.Random()
        self.shard_rates = shard_rates  # other shards on the same model: one budget, shared by work left
        self._stop = threading.Event()
        # Header reads only as far ahead as the limiter will let calls start: all `max_workers`
        # threads reading at once (every shard at the same moment, at the start) delays the first
        # call by the time the whole burst takes, and reads images the run may never get to.
        self._reading = _Gate(lambda: self.limiter.concurrency_limit)

    # --- one image ---------------------------------------------------------------------------
    def _error_line(self, task: ImageTask, code: str, message: str, probe: ImageProbe | None = None) -> dict:
        return prediction_line(task.source_ref, width=probe.width if probe else None,
                               height=probe.height if probe else None, fmt=probe.format if probe else None,
                               error={"code": code, "message": message}, model=self.model)

    def _process(self, task: ImageTask) -> _Done:
        if self._stop.is_set():
            return _Done(None)
        with self._reading:
            got = call_with_retries(lambda: self.probe(task), limiter=None, policy=self.policy, rng=self.rng,
                                    sleep=self.sleep, stop=self._stop)
        if got.error is not None:
            if self._stop.is_set():
                return _Done(None)
            return _Done(self._error_line(task, got.code, f"reading the image header: {error_message(got.error)}"))
        probe: ImageProbe = got.value
        if not probe.ok:
            return _Done(self._error_line(task, probe.error["code"], probe.error["message"], probe),
                         header_bytes=probe.bytes_read)
        if self._stop.is_set():
            return _Done(None, header_bytes=probe.bytes_read)
        out = call_with_retries(lambda: self.detect(task, probe), limiter=self.limiter, policy=self.policy,
                                rng=self.rng, sleep=self.sleep, clock=self.clock, stop=self._stop)
        done = _Done(None, calls=out.calls, throttles=out.throttles, header_bytes=probe.bytes_read)
        if out.error is None:
            done.line = prediction_line(task.source_ref, width=probe.width, height=probe.height, fmt=probe.format,
                                        response=out.value, model=self.model)
        elif out.code in self.run_fatal_codes:
            done.fatal = (out.code, error_message(out.error))
        elif not self._stop.is_set():
            message = error_message(out.error)
            if classify_code(out.code) != "fatal":
                message = f"{message} (gave up after {out.calls} calls)"
            done.line = self._error_line(task, out.code, message, probe)
        return done

    # --- the run -----------------------------------------------------------------------------
    def run(self, tasks: Iterable[ImageTask], done: Iterable[dict] = ()) -> EngineResult:
        tasks = list({t.source_ref: t for t in tasks}.values())
        wanted = {t.source_ref for t in tasks}
        finished: dict[str, dict] = {}
        for line in done:
            ref = line.get("source-ref")
            err = line.get("error")
            if ref in wanted and (not err or classify_code(err.get("code")) == "fatal"):
                finished[ref] = line
        result = EngineResult(lines=[], total=len(tasks), resumed=len(finished))
        todo = [t for t in tasks if t.source_ref not in finished]
        if finished:
            self.log.info("Resuming: %d of %d images already done (checkpoint); %d to go",
                          len(finished), len(tasks), len(todo))
        started = self.clock()
        self._stop.clear()
        fatal: tuple[str, str] | None = None
        since_checkpoint, last_checkpoint, last_progress = 0, started, started

        queue = iter(todo)
        in_flight: set[Future] = set()
        executor = ThreadPoolExecutor(max_workers=self.max_workers, thread_name_prefix="detect")
        try:
            while True:
                while not self._stop.is_set() and len(in_flight) < 2 * self.max_workers:
                    task = next(queue, None)
                    if task is None:
                        break
                    in_flight.add(executor.submit(self._process, task))
                if not in_flight:
                    break
                completed, in_flight = wait(in_flight, timeout=0.5, return_when=FIRST_COMPLETED)
                if self.shard_rates is not None:
                    self.shard_rates.tick(self.limiter, result.total - len(finished))
                for fut in completed:
                    item = fut.result()
                    result.calls += item.calls
                    result.throttles += item.throttles
                    if item.header_bytes is not None:
                        result.header_bytes.append(item.header_bytes)
                    if item.fatal and fatal is None:
                        fatal = item.fatal
                        self._stop.set()
                        self.log.error("Stopping the run: %s: %s", *fatal)
                    if item.line is not None:
                        finished[item.line["source-ref"]] = item.line
                        result.processed += 1
                        since_checkpoint += 1
                    # Counted per image, not per batch of completions: a kill loses at most checkpoint_every.
                    if self.checkpoint and since_checkpoint >= self.checkpoint_every:
                        self.checkpoint(list(finished.values()))
                        result.checkpoints += 1
                        since_checkpoint, last_checkpoint = 0, self.clock()
                now = self.clock()
                if self.checkpoint and since_checkpoint and now - last_checkpoint >= self.checkpoint_interval:
                    self.checkpoint(list(finished.values()))
                    result.checkpoints += 1
                    since_checkpoint, last_checkpoint = 0, now
                if now - last_progress >= self.progress_interval:
                    self._log_progress(result, len(finished), now - started)
                    last_progress = now
        except BaseException:
            self._stop.set()
            executor.shutdown(wait=False, cancel_futures=True)
            raise
        finally:
            executor.shutdown(wait=True)
            if self.shard_rates is not None:
                result.model_limit = self.shard_rates.leave(self.limiter)

        result.elapsed = self.clock() - started
        result.lines = sort_lines(finished.values())
        if self.checkpoint and since_checkpoint:
            self.checkpoint(list(result.lines))
            result.checkpoints += 1
        self._log_progress(result, len(finished), result.elapsed, final=True)
        if fatal is not None:
            raise InferenceAborted(fatal[0], fatal[1], len(finished), len(tasks))
        report = failure_report(result.lines, result.total, self.max_failed_share)
        if report:
            raise TooManyFailures(report, result)
        return result

    def _log_progress(self, result: EngineResult, done: int, elapsed: float, final: bool = False) -> None:
        per_second = result.processed / elapsed if elapsed > 0 else 0.0
        left = result.total - done
        eta = f"{left / per_second:.0f}s" if per_second > 0 and left else ("0s" if not left else "?")
        failed = sum(1 for line in ([] if not final else result.lines) if line.get("error"))
        lim = self.limiter.snapshot()
        self.log.info(
            "%s %d/%d images (%.1f%%), %.1f images/s, ETA %s, calls %d, throttles %d%s, "
            "rate limit %.1f/s, concurrency %d",
            "Inference done:" if final else "Inference progress:", done, result.total,
            100.0 * done / result.total if result.total else 100.0, per_second, eta,
            result.calls, result.throttles, f", failed {failed}" if final else "", lim["rate"], lim["concurrency"])
