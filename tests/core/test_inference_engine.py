"""The inference engine with plain functions for probe/detect (no AWS)."""

from __future__ import annotations

import logging
import random
import threading
from collections import Counter

import pytest

from rekfeedback.core.imagesize import ImageProbe
from rekfeedback.core.inference_engine import ImageTask, InferenceAborted, InferenceEngine, TooManyFailures
from rekfeedback.core.throughput import AdaptiveLimiter, RetryPolicy


class ApiError(Exception):
    def __init__(self, code):
        super().__init__(code)
        self.response = {"Error": {"Code": code, "Message": f"{code} message"}}


class FakeModel:
    def __init__(self, throttle=0.0, errors=None, fatal_after=None, seed=0):
        self.calls = Counter()
        self.lock = threading.Lock()
        self.rng = random.Random(seed)
        self.throttle, self.errors, self.fatal_after = throttle, errors or {}, fatal_after
        self.total = 0

    def __call__(self, task, probe):
        with self.lock:
            self.calls[task.source_ref] += 1
            self.total += 1
            n = self.total
            throttled = self.rng.random() < self.throttle
        if self.fatal_after is not None and n > self.fatal_after:
            raise ApiError("ResourceNotReadyException")
        if task.source_ref in self.errors:
            raise ApiError(self.errors[task.source_ref])
        if throttled:
            raise ApiError("ProvisionedThroughputExceededException")
        return {"CustomLabels": [{"Name": "cat", "Confidence": 90.0,
                                  "Geometry": {"BoundingBox": {"Left": .1, "Top": .2, "Width": .3, "Height": .4}}}]}


def probe(task):
    if task.source_ref.endswith("bad.jpg"):
        return ImageProbe(None, None, None, 10, 10, {"code": "InvalidImageFormatException", "message": "not an image"})
    return ImageProbe("jpeg", 640, 480, 1000, 1000)


def tasks(n, bad=0):
    return [ImageTask(f"s3://b/img-{i:04d}.jpg") for i in range(n)] + [ImageTask(f"s3://b/x{i}-bad.jpg") for i in range(bad)]


def engine(model, **kw):
    kw.setdefault("limiter", AdaptiveLimiter(initial_rate=5000, max_rate=5000))
    kw.setdefault("policy", RetryPolicy(base=0.001, cap=0.005))
    kw.setdefault("max_workers", 8)
    kw.setdefault("max_failed_share", 0.5)
    return InferenceEngine(probe=probe, detect=model, model="arn:m", **kw)


def test_every_image_ends_with_one_line_and_throttles_are_retried():
    model = FakeModel(throttle=0.4)
    result = engine(model).run(tasks(200, bad=3))
    assert len(result.lines) == 203
    assert [l["source-ref"] for l in result.lines] == sorted(t.source_ref for t in tasks(200, bad=3))
    assert result.summary["predicted"] == 200 and result.summary["failed"] == 3
    assert result.throttles > 0 and result.calls == model.total == 200 + result.throttles
    line = next(l for l in result.lines if not l["error"])
    assert line["labels"] == [{"name": "cat", "confidence": 90.0,
                               "box": {"left": .1, "top": .2, "width": .3, "height": .4}}]
    assert not any(model.calls[t.source_ref] for t in tasks(0, bad=3))  # bad headers never sent


def test_checkpoints_at_cadence_and_resume_never_repeats_a_call():
    snapshots = []
    model = FakeModel()
    # One worker: at most two calls in flight, so at most two lines arrive between two looks at the
    # cadence; a clock that stands still: no checkpoint because time passed. The count follows the
    # cadence alone, however the threads are scheduled.
    engine(model, checkpoint=lambda lines: snapshots.append(list(lines)), checkpoint_every=25, max_workers=1,
           clock=lambda: 0.0).run(tasks(100))
    sizes = [len(s) for s in snapshots]
    assert sizes[-1] == 100 and len(sizes) in (4, 5), sizes
    assert all(25 <= b - a <= 26 for a, b in zip([0] + sizes[:-2], sizes[:-1])), sizes
    assert all(set(map(str, a)) <= set(map(str, b)) for a, b in zip(snapshots, snapshots[1:]))  # never loses a line
    partial = snapshots[1]
    again = FakeModel()
    result = engine(again).run(tasks(100), done=partial)
    assert result.resumed == len(partial)
    assert again.total == 100 - len(partial)
    assert not set(again.calls) & {l["source-ref"] for l in partial}


def test_transient_failures_are_retried_on_resume_but_image_errors_are_not():
    done = [
        {"source-ref": "s3://b/img-0000.jpg", "labels": [], "error": {"code": "ThrottlingException", "message": ""}},
        {"source-ref": "s3://b/img-0001.jpg", "labels": [], "error": {"code": "InvalidImageFormatException", "message": ""}},
    ]
    model = FakeModel()
    result = engine(model).run(tasks(3), done=done)
    assert set(model.calls) == {"s3://b/img-0000.jpg", "s3://b/img-0002.jpg"}
    assert result.resumed == 1


def test_model_not_running_aborts_and_keeps_what_is_done():
    snapshots = []
    model = FakeModel(fatal_after=30)
    with pytest.raises(InferenceAborted) as err:
        engine(model, checkpoint=lambda lines: snapshots.append(list(lines))).run(tasks(500))
    assert err.value.code == "ResourceNotReadyException"
    assert 0 < err.value.done < 500 and len(snapshots[-1]) == err.value.done
    assert model.total < 500  # stopped dispatching instead of failing every image


def test_failure_threshold_with_a_summary_of_causes():
    model = FakeModel(errors={f"s3://b/img-{i:04d}.jpg": "InvalidParameterException" for i in range(10)})
    with pytest.raises(TooManyFailures) as err:
        engine(model, max_failed_share=0.05).run(tasks(100))
    assert "10 of 100 images failed" in str(err.value) and "InvalidParameterException x10" in str(err.value)
    assert len(err.value.result.lines) == 100  # the work is kept for the output file
    assert model.total == 100  # image errors are not retried


def test_bounded_retries_record_the_error_instead_of_looping():
    model = FakeModel(throttle=1.0)
    result = engine(model, policy=RetryPolicy(max_throttle_retries=3, base=0.0001, cap=0.0002),
                    max_failed_share=1.0).run(tasks(5))
    assert all(l["error"]["code"] == "ProvisionedThroughputExceededException" for l in result.lines)
    assert model.total == 5 * 4


def test_progress_is_logged(caplog):
    with caplog.at_level(logging.INFO):
        engine(FakeModel(), progress_interval=0.0, log=logging.getLogger("t")).run(tasks(50))
    text = caplog.text
    assert "Inference progress:" in text and "images/s" in text and "ETA" in text and "throttles" in text
    assert "Inference done: 50/50" in text


def test_headers_are_read_only_as_far_ahead_as_the_limiter_lets_calls_start():
    # Eight threads, but the limiter lets two calls run at once: reading eight headers at the start
    # would only delay the first call (and every shard reads at the same moment).
    limiter = AdaptiveLimiter(initial_rate=5000, max_rate=5000, max_concurrency=2)
    lock, reading, most = threading.Lock(), [0], [0]
    crowded = threading.Event()  # set if more reads than allowed run at once: then nobody waits longer

    def slow_probe(task):
        with lock:
            reading[0] += 1
            most[0] = max(most[0], reading[0])
            if reading[0] > limiter.concurrency_limit:
                crowded.set()
        crowded.wait(0.2 if task.source_ref.endswith(("0000.jpg", "0001.jpg")) else 0)
        with lock:
            reading[0] -= 1
        return probe(task)

    result = InferenceEngine(probe=slow_probe, detect=FakeModel(), model="arn:m", limiter=limiter,
                             max_workers=8, policy=RetryPolicy(base=0.001, cap=0.005)).run(tasks(30))
    assert result.summary["predicted"] == 30
    assert limiter.concurrency_limit == 2 and most[0] <= 2 and not crowded.is_set()
