"""Emulated Rekognition Custom Labels, the state (moto's models): projects, datasets, model versions, the sliding window of
DetectCustomLabels capacity, and the pure helpers the operations share."""

from __future__ import annotations

import base64
import hashlib
import json
import threading
from collections import OrderedDict, deque
from dataclasses import dataclass, field

from . import manifests, model
from .capacity import AutoScaler
from .errors import ApiError


MAX_S3_IMAGE = 15 * 1024 * 1024
MAX_BYTES_IMAGE = 4 * 1024 * 1024
MIN_SIDE, MAX_SIDE = 64, 4096
_INVALID_SHARE = 0.2  # more than 20% bad lines fails an import or a training run, per the service limits
_FEATURE_CACHE_SIZE = 20_000


@dataclass
class Project:
    name: str
    arn: str
    created: float
    feature: str
    auto_update: str | None
    datasets: dict[str, str] = field(default_factory=dict)  # "TRAIN" | "TEST" -> dataset ARN


@dataclass
class Dataset:
    arn: str
    project: Project
    kind: str  # TRAIN | TEST
    created: float
    updated: float
    status: str
    pending: tuple[str, str, str] | None  # (final status, message, message code) due at ready_at
    ready_at: float
    status_message: str = ""
    status_code: str = "SUCCESS"
    entries: "OrderedDict[str, manifests.Entry]" = field(default_factory=OrderedDict)

    def settle(self, now: float) -> None:
        if self.pending and now >= self.ready_at:
            self.status, self.status_message, self.status_code = self.pending
            self.pending = None
            self.updated = self.ready_at

    @property
    def busy(self) -> bool:
        return self.status.endswith("_IN_PROGRESS")


class SlidingWindow:
    """Calls admitted over the last second; a real limiter, so bursts above capacity are refused."""

    def __init__(self) -> None:
        self._times: deque[float] = deque()
        self._lock = threading.Lock()

    def admit(self, capacity: float, now: float) -> bool:
        with self._lock:
            while self._times and self._times[0] <= now - 1.0:
                self._times.popleft()
            if len(self._times) >= capacity:
                return False
            self._times.append(now)
            return True


@dataclass
class Version:
    name: str
    arn: str
    project: Project
    created: float
    output_config: dict
    description: str | None
    kms_key_id: str | None
    status: str = "TRAINING_IN_PROGRESS"
    status_message: str = "The model is being trained."
    train_ready_at: float = 0.0
    trained: threading.Event = field(default_factory=threading.Event)
    failure: str | None = None
    model: model.NeighbourModel | None = None
    evaluation: model.Evaluation | None = None
    training_end: float | None = None
    summary_key: str | None = None
    manifest_summary_key: str | None = None
    data_results: dict = field(default_factory=dict)  # TrainingDataResult / TestingDataResult
    min_units: int | None = None
    max_units: int | None = None
    transition_at: float = 0.0  # when STARTING -> RUNNING, STOPPING -> STOPPED or DELETING -> gone happens
    limiter: SlidingWindow = field(default_factory=SlidingWindow)
    scaler: AutoScaler | None = None  # inference units in service, from StartProjectVersion's range

    def settle(self, now: float) -> None:
        if self.status == "TRAINING_IN_PROGRESS" and self.trained.is_set() and now >= self.train_ready_at:
            self.training_end = max(self.train_ready_at, self.training_end or 0.0)
            if self.failure:
                self.status, self.status_message = "TRAINING_FAILED", self.failure
            else:
                self.status, self.status_message = "TRAINING_COMPLETED", "The model is ready to run."
        elif self.status == "STARTING" and now >= self.transition_at:
            self.status, self.status_message = "RUNNING", "The model is running."
        elif self.status == "STOPPING" and now >= self.transition_at:
            self.status, self.status_message = "STOPPED", "The model is ready to run."
        elif self.status == "COPYING_IN_PROGRESS" and now >= self.transition_at:
            self.status, self.status_message = "COPYING_COMPLETED", "The model was copied."

    def gone(self, now: float) -> bool:
        """A deleted version is listed as DELETING for a moment, then no more."""
        return self.status == "DELETING" and now >= self.transition_at


class TrainingFailure(Exception):
    def __init__(self, code: str, message: str):
        super().__init__(f"{code}: {message}")
        self.code = code


def _aggregated(ev: model.Evaluation) -> dict:
    """im-summary-file: Precision, Recall and F1Score for every model; AverageRecall (mAR) and
    AveragePrecision (mAP) for object detection, a ConfusionMatrix for classification."""
    out = {"F1Score": ev.f1, "Precision": ev.precision, "Recall": ev.recall}
    if ev.average_precision is not None:
        out.update(AveragePrecision=ev.average_precision, AverageRecall=ev.average_recall)
    else:
        out["ConfusionMatrix"] = ev.confusion
    return out


def _parse_mislabel(knob: str) -> tuple[str, str] | None:
    if not knob:
        return None
    wrong, sep, instead = knob.partition(">")
    if not sep or not wrong.strip() or not instead.strip():
        raise ApiError("InvalidParameterException", f"emulator knob mislabel_training must look like 'circle>square', got {knob!r}")
    return wrong.strip(), instead.strip()


def _copy_entry(entry: manifests.Entry) -> manifests.Entry:
    return manifests.Entry(json.loads(json.dumps(entry.line)), entry.source_ref, list(entry.labels),
                           [dict(b) for b in entry.boxes], set(entry.use_cases), list(entry.errors))


def _auto_split(entries: list[manifests.Entry]):
    """AutoCreate: ~20% of each label's images become the test set, as AWS splits per label (hence its
    ERROR_INSUFFICIENT_IMAGES_PER_LABEL_FOR_AUTOSPLIT). Within a label, images are taken in the order of a
    hash of their source-ref, so a retry splits the same way and the outcome never depends on names."""
    def rank(e: manifests.Entry) -> str:
        return hashlib.sha1(e.source_ref.encode()).hexdigest()

    by_label: dict[str, list[manifests.Entry]] = {}
    for e in sorted(entries, key=rank):
        by_label.setdefault(e.labels[0] if e.labels else "", []).append(e)
    chosen: set[int] = set()
    for group in by_label.values():
        if len(group) > 1:
            chosen.update(id(e) for e in group[:max(1, round(0.2 * len(group)))])
    return [e for e in entries if id(e) not in chosen], [e for e in entries if id(e) in chosen]


def _check_training_data(train_items, test_items, use_case: str) -> None:
    train_labels = {name for e, _ in train_items for name in e.labels}
    test_labels = {name for e, _ in test_items for name in e.labels}
    needed = 1 if use_case == manifests.OBJECT_LOCALIZATION else 2
    if len(train_labels) < needed:
        raise TrainingFailure("ERROR_MANIFEST_TOO_FEW_LABELS",
                              f"The training data has {len(train_labels)} label(s); {use_case} needs at least {needed}.")
    if not test_items:
        raise TrainingFailure("ERROR_INSUFFICIENT_IMAGES_PER_LABEL_FOR_AUTOSPLIT", "There are no usable test images.")
    if len(train_labels & test_labels) < 0.5 * len(train_labels):
        raise TrainingFailure("ERROR_INSUFFICIENT_LABEL_OVERLAP",
                              f"Test labels {sorted(test_labels)} overlap less than 50% of training labels {sorted(train_labels)}.")


def _paginate(items: list, params: dict) -> tuple[list, str | None]:
    start = 0
    if params.get("NextToken"):
        try:
            start = int(base64.urlsafe_b64decode(params["NextToken"].encode()).decode())
        except (ValueError, UnicodeDecodeError):
            raise ApiError("InvalidPaginationTokenException", "Invalid pagination token.")
    size = params.get("MaxResults") or 100
    if size > 100:
        raise ApiError("InvalidParameterException", "MaxResults must be at most 100.")
    end = start + size
    token = base64.urlsafe_b64encode(str(end).encode()).decode() if end < len(items) else None
    return items[start:end], token


def _with_token(body: dict, token: str | None) -> dict:
    if token:
        body["NextToken"] = token
    return body
