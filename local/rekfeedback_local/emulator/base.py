"""What every emulated service gets from the server: knobs, a clock, S3 and the account identity.

A service module exposes `handlers(env: EmulatorEnv) -> dict[str, Callable[[dict], dict]]`, mapping an
operation name (e.g. "CreateLabelingJob") to a function from the request parameters to the response.
Raise `ApiError` for AWS errors. Requests are validated against botocore's model before the handler runs.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from dataclasses import dataclass, field, fields
from typing import Any, Callable

from rekfeedback.core.templated import as_bool

ACCOUNT_ID = "123456789012"


@dataclass
class EmulatorConfig:
    """Fault and load knobs (command-line flags, REKFEEDBACK_EMULATOR_* environment, POST /_rekfeedback/config)."""

    # A real model answers DetectCustomLabels in a few hundred milliseconds, so one sequential client makes
    # at most 1 / latency = 4 calls/s and is never throttled by one unit's 5 calls/s, as on AWS. Tests set
    # latency 0 (tests/fixtures/emulator.py) and benchmarks their own values.
    latency: float = 0.25  # seconds added to every DetectCustomLabels call
    capacity_per_unit: float = 5.0  # DetectCustomLabels transactions per second per inference unit
    throttle_rate: float = 0.0  # share of DetectCustomLabels calls throttled at random
    scale_up_seconds: float = 2.0  # overload this long adds an inference unit, up to MaxInferenceUnits
    scale_down_seconds: float = 30.0  # load that fits in fewer units this long removes one
    training_seconds: float = 1.0
    start_seconds: float = 0.5
    stop_seconds: float = 0.5
    labeling_seconds: float = 1.0  # time the simulated workforce takes for a whole job
    hold_labeling_jobs: bool = False  # new jobs wait InProgress, unworked, until this is set back to false
    workforce_policy: str = "oracle"  # oracle | accept-all | reject-all
    error_rate: float = 0.0  # oracle's share of wrong answers
    workers_per_object: int | None = None  # overrides NumberOfHumanWorkersPerDataObject when set
    annotators: str = ""  # a crew of different quality, "name=policy:error_rate,..." (policy.parse_crew); blank: everyone is workforce_policy/error_rate
    fail_labeling_jobs: bool = False  # every new labeling job fails with a FailureReason
    unlabelled_share: float = 0.0  # share of objects the workforce leaves unlabelled
    max_active_labeling_jobs: int = 50  # CreateLabelingJob answers ResourceLimitExceeded beyond this
    fail_training: bool = False  # every new project version fails training
    # "circle>square": versions created from now on learn every `circle` example as `square` (a systematic
    # labelling mistake that slipped into the dataset), so that label's F1 regresses. "" is off.
    mislabel_training: str = ""
    dataset_seconds: float = 0.2  # CreateDataset / UpdateDatasetEntries stay *_IN_PROGRESS this long
    # After this many admitted DetectCustomLabels calls (since reset_stats), later calls wait while the knob
    # holds, then are refused with ThrottlingException (unpaid): inference freezes at a known point, e.g.
    # for a test that kills the worker there. 0: off.
    detect_hold_after: int = 0
    seed: int = 7
    # Lambda routes for a running server: "function-name=path/to/handler.py:function;other=package.module.fn"
    lambdas: str = ""

    def update(self, values: dict[str, Any]) -> None:
        known = {f.name: f for f in fields(self)}
        for key, value in values.items():
            if key not in known:
                raise KeyError(f"unknown emulator knob {key!r}; known: {sorted(known)}")
            setattr(self, key, _coerce(key, value, getattr(self, key), known[key]))

    def as_dict(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in fields(self)}


def _coerce(name: str, value: Any, current: Any, spec) -> Any:
    """Knobs arrive as strings from flags, environment variables and JSON; cast them to the knob's type."""
    if value is None:
        return None
    kind = type(spec.default) if spec.default is not None else int  # only workers_per_object defaults to None
    if kind is bool:
        return bool(as_bool(value, f"emulator knob {name!r}", False))  # the provider's reading of true/false
    try:
        return kind(value)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"emulator knob {name!r} expects {kind.__name__}, got {value!r}") from exc


@dataclass
class EmulatorEnv:
    config: EmulatorConfig
    endpoint_url: str
    region: str = "us-east-1"
    account_id: str = ACCOUNT_ID
    calls: Counter = field(default_factory=Counter)  # "Service.Operation" -> count
    errors: Counter = field(default_factory=Counter)  # "Service.Operation.ErrorCode" -> count
    answered: Counter = field(default_factory=Counter)  # DetectCustomLabels answers per image: what AWS bills
    detect_admitted: int = 0  # DetectCustomLabels calls let through detect_hold_after since reset_stats
    lock: threading.RLock = field(default_factory=threading.RLock)
    s3_factory: Callable[[], Any] | None = None
    _local: threading.local = field(default_factory=threading.local)
    clock_offset: float = 0.0  # seconds added to the wall clock: tests move time on instead of waiting

    def clock(self) -> float:
        return time.time() + self.clock_offset

    def advance_clock(self, seconds: float) -> None:
        """Move the emulator's time forward (never back, so no deadline is un-passed)."""
        if seconds < 0:
            raise ValueError("the emulator's clock only moves forward")
        with self.lock:
            self.clock_offset += seconds

    def reset_stats(self) -> None:
        with self.lock:
            self.calls.clear()
            self.errors.clear()
            self.answered.clear()
            self.detect_admitted = 0

    def stats(self) -> dict:
        with self.lock:
            return {"calls": dict(self.calls), "errors": dict(self.errors), "answered": dict(self.answered)}

    def s3(self):
        """A boto3 S3 client talking to this same endpoint, shared by all request threads.

        botocore clients are thread-safe to use but slow and not thread-safe to create, and the server
        runs every request on a fresh thread, so one client is created under the lock and reused.
        """
        client = getattr(self, "_s3_client", None)
        if client is None:
            with self.lock:
                client = getattr(self, "_s3_client", None)
                if client is None:
                    client = self.s3_factory()
                    self._s3_client = client
        return client
