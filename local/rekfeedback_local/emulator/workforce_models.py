"""The simulated Ground Truth workforce, the state it works on: data objects, failures, the names and
timestamps Ground Truth writes (shared by `workforce` and its parts)."""

from __future__ import annotations

import datetime as dt
import hashlib
import logging
from dataclasses import dataclass, field


log = logging.getLogger("rekfeedback_local.emulator.workforce")  # one logger for the workforce and its parts


EVENT_VERSION = "2018-10-16"
CUSTOM_TYPE = "groundtruth/custom"
EXPIRED_REASON = "ClientError: The worker task expired before any worker submitted an annotation."
_BATCHES = 4  # consolidation batches per job, so counters move while the job runs


class JobFailure(Exception):
    """The whole job fails; the message becomes its FailureReason."""


@dataclass
class _Object:
    index: int
    line: dict
    workers: list[dict] = field(default_factory=list)  # answers in the worker-response format
    result: tuple | None = None  # (value, metadata) once consolidated
    failure: str | None = None
    skipped: bool = False  # pre-annotation Lambda said no human annotation is required
    size: tuple = (0, 0, 3)  # width, height, depth of a box task's image
    initial: list = field(default_factory=list)  # boxes under review (adjustment, verification)
    members: list = field(default_factory=list)  # the annotators (policy.Annotator) who answered it

    @property
    def id(self) -> str:
        return str(self.index)


class _ObjectFailure(Exception):
    """One data object fails (FailedNonRetryableError); the message is its failure-reason."""


def _creation_date(ts: float) -> str:
    return dt.datetime.fromtimestamp(ts, dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%f")


def _iso_z(ts: float) -> str:
    return dt.datetime.fromtimestamp(ts, dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def _uuid_like(seed: str) -> str:
    h = hashlib.sha1(seed.encode()).hexdigest()
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:32]}"
