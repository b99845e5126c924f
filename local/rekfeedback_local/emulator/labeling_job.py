"""State of one emulated labeling job, shared by the API handlers and the simulated workforce thread."""

from __future__ import annotations

import copy
import hashlib
import threading

TERMINAL = ("Completed", "Failed", "Stopped")
COUNTERS = ("TotalLabeled", "HumanLabeled", "MachineLabeled", "FailedNonRetryableError", "Unlabeled")


class LabelingJob:
    def __init__(self, request: dict, arn: str, now: float, account_id: str):
        self.request = copy.deepcopy(request)
        self.name: str = request["LabelingJobName"]
        self.arn = arn
        self.created = self.modified = now
        self.status = "Initializing"
        self.counters = {k: 0 for k in COUNTERS}
        self.failure_reason: str | None = None
        self.output_uri: str | None = None
        self.stop_requested = threading.Event()
        self.stop_requested_at: float | None = None
        self.fail_injected = False
        self.lock = threading.Lock()
        digest = hashlib.sha1(f"{account_id}/{self.name.lower()}/{now}".encode()).hexdigest()
        self.reference_code = f"{account_id}{digest[:20]}"

    @property
    def output_prefix(self) -> str:
        return self.request["OutputConfig"]["S3OutputPath"].rstrip("/") + "/" + self.name

    def update(self, now: float, *, status: str | None = None, failure_reason: str | None = None,
               output_uri: str | None = None, **counter_deltas: int) -> None:
        with self.lock:
            if status:
                self.status = status
            if failure_reason is not None:
                self.failure_reason = failure_reason[:1024]
            if output_uri:
                self.output_uri = output_uri
            for key, delta in counter_deltas.items():
                self.counters[key] = max(0, self.counters[key] + delta)
            self.counters["TotalLabeled"] = self.counters["HumanLabeled"] + self.counters["MachineLabeled"]
            self.modified = now

    def request_stop(self, now: float) -> None:
        with self.lock:
            self.status = "Stopping"
            self.modified = now
            self.stop_requested_at = now
        self.stop_requested.set()

    def describe(self) -> dict:
        with self.lock:
            out = copy.deepcopy(self.request)
            out.update({
                "LabelingJobStatus": self.status,
                "LabelCounters": dict(self.counters),
                "CreationTime": self.created,
                "LastModifiedTime": self.modified,
                "JobReferenceCode": self.reference_code,
                "LabelingJobArn": self.arn,
            })
            if self.failure_reason:
                out["FailureReason"] = self.failure_reason
            if self.output_uri:
                out["LabelingJobOutput"] = {"OutputDatasetS3Uri": self.output_uri}
            return out

    def summary(self) -> dict:
        with self.lock:
            task = self.request["HumanTaskConfig"]
            out = {
                "LabelingJobName": self.name,
                "LabelingJobArn": self.arn,
                "CreationTime": self.created,
                "LastModifiedTime": self.modified,
                "LabelingJobStatus": self.status,
                "LabelCounters": dict(self.counters),
                "WorkteamArn": task["WorkteamArn"],
                "InputConfig": copy.deepcopy(self.request["InputConfig"]),
            }
            if task.get("PreHumanTaskLambdaArn"):
                out["PreHumanTaskLambdaArn"] = task["PreHumanTaskLambdaArn"]
            consolidation = (task.get("AnnotationConsolidationConfig") or {}).get("AnnotationConsolidationLambdaArn")
            if consolidation:
                out["AnnotationConsolidationLambdaArn"] = consolidation
            if self.failure_reason:
                out["FailureReason"] = self.failure_reason
            if self.output_uri:
                out["LabelingJobOutput"] = {"OutputDatasetS3Uri": self.output_uri}
            return out
