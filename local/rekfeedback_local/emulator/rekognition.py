"""Emulated Amazon Rekognition Custom Labels: projects, datasets, model versions and DetectCustomLabels.

State lives in memory for the life of the server. Asynchronous work follows AWS's shape: the call
returns at once with an *_IN_PROGRESS / STARTING / STOPPING status, and the status moves on once the
configured delay has passed (computed lazily from timestamps when read). Training itself runs on a
background thread: it reads the images from S3, fits `model.NeighbourModel`, scores it on the test set
and writes the evaluation summary to the version's OutputConfig location, as the service does.
"""

from __future__ import annotations

import base64
import hashlib
import json
import random
import threading
import time
from collections import OrderedDict, deque
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Callable

from botocore.exceptions import ClientError

from rekfeedback.core.boxes import pixels_to_ratio

from . import manifests, model
from .base import EmulatorEnv
from .capacity import AutoScaler
from .errors import ApiError
from .rekognition_admin import ADMIN_OPERATIONS, AdminOperations

MAX_S3_IMAGE = 15 * 1024 * 1024
MAX_BYTES_IMAGE = 4 * 1024 * 1024
MIN_SIDE, MAX_SIDE = 64, 4096
_INVALID_SHARE = 0.2  # more than 20% bad lines fails an import or a training run, per the service limits
_FEATURE_CACHE_SIZE = 20_000

OPERATIONS = (
    "CreateProject", "DescribeProjects", "CreateDataset", "DescribeDataset", "ListDatasetEntries",
    "UpdateDatasetEntries", "CreateProjectVersion", "DescribeProjectVersions", "StartProjectVersion",
    "StopProjectVersion", "DeleteProjectVersion", "DetectCustomLabels", *ADMIN_OPERATIONS,
)


def handlers(env: EmulatorEnv) -> dict[str, Callable[[dict], dict]]:
    service = RekognitionService(env)
    return {op: getattr(service, op) for op in OPERATIONS}


# -------------------------------------------------------------------------------------------- state


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


# ------------------------------------------------------------------------------------------ service


class RekognitionService(AdminOperations):
    def __init__(self, env: EmulatorEnv) -> None:
        self.env = env
        self.lock = threading.RLock()
        self.projects: dict[str, Project] = {}  # by ARN
        self.datasets: dict[str, Dataset] = {}
        self.versions: dict[str, Version] = {}
        self.tags: dict[str, dict[str, str]] = {}  # project or version ARN -> tags (TagResource)
        self._cache: OrderedDict[tuple, model.ImageInfo | model.InvalidImage] = OrderedDict()
        self._cache_lock = threading.Lock()
        self._rng = random.Random(env.config.seed)
        self._serial = int(env.clock() * 1000)

    @property
    def config(self):
        return self.env.config

    def _next_serial(self) -> int:
        # ARNs end in a creation-time number; keep it unique even for calls in the same millisecond.
        with self.lock:
            self._serial = max(self._serial + 1, int(self.env.clock() * 1000))
            return self._serial

    def _arn(self, resource: str) -> str:
        return f"arn:aws:rekognition:{self.env.region}:{self.env.account_id}:{resource}"

    # ---------------------------------------------------------------------------------- projects

    def CreateProject(self, params: dict) -> dict:
        name = params["ProjectName"]
        with self.lock:
            if any(p.name == name for p in self.projects.values()):
                raise ApiError("ResourceInUseException", f"The project {name} already exists.")
            arn = self._arn(f"project/{name}/{self._next_serial()}")
            self.projects[arn] = Project(name, arn, self.env.clock(), params.get("Feature", "CUSTOM_LABELS"), params.get("AutoUpdate"))
            self._add_tags(arn, params.get("Tags"))
        return {"ProjectArn": arn}

    def DescribeProjects(self, params: dict) -> dict:
        names = params.get("ProjectNames")
        features = params.get("Features") or ["CUSTOM_LABELS"]
        now = self.env.clock()
        with self.lock:
            chosen = [p for p in self.projects.values()
                      if (names is None or p.name in names) and p.feature in features]
            chosen.sort(key=lambda p: -p.created)
            page, token = _paginate(chosen, params)
            out = []
            for p in page:
                desc = {"ProjectArn": p.arn, "CreationTimestamp": p.created, "Status": "CREATED", "Feature": p.feature,
                        "Datasets": [self._dataset_meta(self.datasets[arn], now) for arn in p.datasets.values()]}
                if p.auto_update:
                    desc["AutoUpdate"] = p.auto_update
                out.append(desc)
        return _with_token({"ProjectDescriptions": out}, token)

    def _project(self, arn: str) -> Project:
        project = self.projects.get(arn)
        if project is None:
            raise ApiError("ResourceNotFoundException", f"The project {arn} does not exist.")
        return project

    # ---------------------------------------------------------------------------------- datasets

    def CreateDataset(self, params: dict) -> dict:
        kind = params["DatasetType"]
        source = params.get("DatasetSource")
        if source is not None and (("GroundTruthManifest" in source) == ("DatasetArn" in source)):
            raise ApiError("InvalidParameterException", "DatasetSource must contain exactly one of GroundTruthManifest or DatasetArn.")
        with self.lock:
            project = self._project(params["ProjectArn"])
            if kind in project.datasets:
                raise ApiError("ResourceAlreadyExistsException", f"A {kind} dataset already exists for project {project.name}.")
            copy_from = None
            if source and "DatasetArn" in source:
                copy_from = self._dataset(source["DatasetArn"])
                copy_from.settle(self.env.clock())
                if copy_from.busy or copy_from.status.endswith("FAILED"):
                    raise ApiError("ResourceNotReadyException", f"The source dataset {copy_from.arn} is {copy_from.status}.")
        entries: list[manifests.Entry] = []
        outcome = ("CREATE_COMPLETE", "The dataset was successfully created from the manifest file.", "SUCCESS")
        if copy_from is not None:
            with self.lock:
                entries = [_copy_entry(e) for e in copy_from.entries.values()]
            outcome = ("CREATE_COMPLETE", "The dataset was successfully created from the source dataset.", "SUCCESS")
        elif source:
            s3obj = source["GroundTruthManifest"].get("S3Object") or {}
            try:
                entries = self._import_manifest(s3obj)
            except TrainingFailure as exc:
                outcome = ("CREATE_FAILED", str(exc), "CLIENT_ERROR")
        now = self.env.clock()
        with self.lock:
            if kind in project.datasets:  # lost a race with a concurrent CreateDataset
                raise ApiError("ResourceAlreadyExistsException", f"A {kind} dataset already exists for project {project.name}.")
            arn = self._arn(f"project/{project.name}/dataset/{kind.lower()}/{self._next_serial()}")
            dataset = Dataset(arn, project, kind, now, now, "CREATE_IN_PROGRESS", outcome, now + self.config.dataset_seconds,
                              status_message="The dataset is being created.", status_code="SUCCESS")
            if outcome[0] == "CREATE_COMPLETE":
                dataset.entries.update((e.source_ref, e) for e in entries)
            self.datasets[arn] = dataset
            project.datasets[kind] = arn
        return {"DatasetArn": arn}

    def _import_manifest(self, s3obj: dict) -> list[manifests.Entry]:
        bucket, key = s3obj.get("Bucket"), s3obj.get("Name")
        try:
            text = self._read_text(bucket, key, s3obj.get("Version"))
        except LookupError:
            raise TrainingFailure("ERROR_MANIFEST_INACCESSIBLE_OR_UNSUPPORTED_FORMAT",
                                  f"The manifest file s3://{bucket}/{key} can't be read: check the bucket, key and permissions.")
        parsed = manifests.parse_manifest(text)
        if parsed.total_lines == 0:
            raise TrainingFailure("ERROR_MANIFEST_INACCESSIBLE_OR_UNSUPPORTED_FORMAT", f"The manifest file s3://{bucket}/{key} is empty.")
        bad = parsed.dropped + sum(1 for e in parsed.entries if e.errors and not e.labeled)
        if bad > _INVALID_SHARE * parsed.total_lines:
            raise TrainingFailure("ERROR_TOO_MANY_RECORDS_IN_ERROR",
                                  f"{bad} of {parsed.total_lines} lines of s3://{bucket}/{key} are invalid (more than 20%).")
        return parsed.entries

    def DescribeDataset(self, params: dict) -> dict:
        now = self.env.clock()
        with self.lock:
            ds = self._dataset(params["DatasetArn"])
            ds.settle(now)
            # The service counts a dataset's entries once it is created; while CREATE_IN_PROGRESS its
            # stats are still zero (API_DatasetStats: "statistics for the dataset" once imported).
            entries = [] if ds.status == "CREATE_IN_PROGRESS" else list(ds.entries.values())
            labels = {name for e in entries for name in e.labels}
            return {"DatasetDescription": {
                "CreationTimestamp": ds.created, "LastUpdatedTimestamp": ds.updated, "Status": ds.status,
                "StatusMessage": ds.status_message, "StatusMessageCode": ds.status_code,
                "DatasetStats": {"LabeledEntries": sum(1 for e in entries if e.labeled), "TotalEntries": len(entries),
                                 "TotalLabels": len(labels), "ErrorEntries": sum(1 for e in entries if e.errors)},
            }}

    def ListDatasetEntries(self, params: dict) -> dict:
        now = self.env.clock()
        with self.lock:
            ds = self._dataset(params["DatasetArn"])
            ds.settle(now)
            if ds.status == "CREATE_IN_PROGRESS":
                raise ApiError("ResourceNotReadyException", f"The dataset {ds.arn} is still being created.")
            if ds.status == "CREATE_FAILED":
                raise ApiError("ResourceNotReadyException", f"The dataset {ds.arn} failed to be created: {ds.status_message}")
            entries = list(ds.entries.values())
        wanted = params.get("ContainsLabels")
        if wanted is not None:
            entries = [e for e in entries if set(wanted) & set(e.labels)]
        if "Labeled" in params:
            entries = [e for e in entries if e.labeled == params["Labeled"]]
        if params.get("SourceRefContains"):
            entries = [e for e in entries if params["SourceRefContains"] in e.source_ref]
        if "HasErrors" in params:
            entries = [e for e in entries if bool(e.errors) == params["HasErrors"]]
        page, token = _paginate(entries, params)
        return _with_token({"DatasetEntries": [e.as_json() for e in page]}, token)

    def UpdateDatasetEntries(self, params: dict) -> dict:
        raw: bytes = params["Changes"]["GroundTruth"]
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError:
            raise ApiError("InvalidParameterException", "Changes.GroundTruth must be UTF-8 JSON Lines.")
        parsed = manifests.parse_manifest(text)
        if parsed.total_lines == 0:
            raise ApiError("InvalidParameterException", "Changes.GroundTruth holds no JSON lines.")
        now = self.env.clock()
        with self.lock:
            ds = self._dataset(params["DatasetArn"])
            ds.settle(now)
            if ds.busy:
                raise ApiError("ResourceInUseException", f"The dataset {ds.arn} is {ds.status}; wait until it completes.")
            if ds.status == "CREATE_FAILED":
                raise ApiError("InvalidParameterException", f"The dataset {ds.arn} failed to be created and can't be updated.")
            bad = parsed.dropped
            if bad > _INVALID_SHARE * parsed.total_lines:
                outcome = ("UPDATE_FAILED", f"{bad} of {parsed.total_lines} lines are invalid (more than 20%).", "CLIENT_ERROR")
            else:
                # source-ref is the key: a line for a known image replaces its entry, others are added.
                ds.entries.update((e.source_ref, e) for e in parsed.entries)
                outcome = ("UPDATE_COMPLETE", "The dataset was successfully updated.", "SUCCESS")
            ds.status, ds.status_message, ds.status_code = "UPDATE_IN_PROGRESS", "The dataset is being updated.", "SUCCESS"
            ds.pending, ds.ready_at, ds.updated = outcome, now + self.config.dataset_seconds, now
        return {}

    def _dataset(self, arn: str) -> Dataset:
        ds = self.datasets.get(arn)
        if ds is None:
            raise ApiError("ResourceNotFoundException", f"The dataset {arn} does not exist.")
        return ds

    def _dataset_meta(self, ds: Dataset, now: float) -> dict:
        ds.settle(now)
        return {"CreationTimestamp": ds.created, "DatasetType": ds.kind, "DatasetArn": ds.arn, "Status": ds.status,
                "StatusMessage": ds.status_message, "StatusMessageCode": ds.status_code}

    # ---------------------------------------------------------------------------------- versions

    def CreateProjectVersion(self, params: dict) -> dict:
        name = params["VersionName"]
        output = params["OutputConfig"]
        if not output.get("S3Bucket"):
            raise ApiError("InvalidParameterException", "OutputConfig.S3Bucket is required.")
        training, testing = params.get("TrainingData"), params.get("TestingData")
        mislabel = _parse_mislabel(self.config.mislabel_training)
        now = self.env.clock()
        with self.lock:
            project = self._project(params["ProjectArn"])
            if any(v.project is project and v.name == name for v in self.versions.values()):
                raise ApiError("ResourceInUseException", f"The version {name} already exists in project {project.name}.")
            if project.datasets:
                if training or testing:
                    raise ApiError("InvalidParameterException",
                                   "TrainingData and TestingData can't be given for a project that has datasets.")
                if "TRAIN" not in project.datasets:
                    raise ApiError("InvalidParameterException", f"The project {project.name} has no TRAIN dataset.")
                sources = {}
                for kind, arn in project.datasets.items():
                    ds = self.datasets[arn]
                    ds.settle(now)
                    if ds.busy:
                        raise ApiError("ResourceInUseException", f"The {kind} dataset {arn} is {ds.status}.")
                    if ds.status.endswith("FAILED") and ds.status != "UPDATE_FAILED":
                        raise ApiError("InvalidParameterException", f"The {kind} dataset {arn} is {ds.status}.")
                    sources[kind] = [_copy_entry(e) for e in ds.entries.values()]  # training sees a snapshot
                plan = {"train": sources["TRAIN"], "test": sources.get("TEST"), "assets": None}
            else:
                if not training or not training.get("Assets"):
                    raise ApiError("InvalidParameterException",
                                   "The project has no datasets: TrainingData with at least one asset is required.")
                if not testing or not (testing.get("Assets") or testing.get("AutoCreate")):
                    raise ApiError("InvalidParameterException", "TestingData (Assets or AutoCreate) is required with TrainingData.")
                plan = {"train": None, "test": None, "assets": (training, testing)}
            arn = self._arn(f"project/{project.name}/version/{name}/{self._next_serial()}")
            version = Version(name, arn, project, now, output, params.get("VersionDescription"), params.get("KmsKeyId"),
                              train_ready_at=now + self.config.training_seconds)
            self.versions[arn] = version
            self._add_tags(arn, params.get("Tags"))
        fail = self.config.fail_training
        plan["mislabel"] = mislabel
        threading.Thread(target=self._train, args=(version, plan, fail), name=f"train-{name}", daemon=True).start()
        return {"ProjectVersionArn": arn}

    def DescribeProjectVersions(self, params: dict) -> dict:
        names = params.get("VersionNames")
        now = self.env.clock()
        with self.lock:
            project = self._project(params["ProjectArn"])
            self._forget_deleted(now)
            chosen = [v for v in self.versions.values() if v.project is project and (names is None or v.name in names)]
            chosen.sort(key=lambda v: -v.created)  # newest first, as the service lists them
            page, token = _paginate(chosen, params)
            for v in page:
                v.settle(now)
            out = [self._describe_version(v) for v in page]
        return _with_token({"ProjectVersionDescriptions": out}, token)

    def _describe_version(self, v: Version) -> dict:
        desc: dict[str, Any] = {
            "ProjectVersionArn": v.arn, "CreationTimestamp": v.created, "Status": v.status, "StatusMessage": v.status_message,
            "OutputConfig": v.output_config, "Feature": v.project.feature,
        }
        if v.min_units is not None:
            desc["MinInferenceUnits"] = v.min_units
        if v.max_units is not None:
            desc["MaxInferenceUnits"] = v.max_units
        if v.description:
            desc["VersionDescription"] = v.description
        if v.kms_key_id:
            desc["KmsKeyId"] = v.kms_key_id
        if v.status == "TRAINING_IN_PROGRESS":
            return desc
        desc["TrainingEndTimestamp"] = v.training_end
        desc.update(v.data_results)
        bucket = v.output_config["S3Bucket"]
        if v.manifest_summary_key:
            desc["ManifestSummary"] = {"S3Object": {"Bucket": bucket, "Name": v.manifest_summary_key}}
        if v.status != "TRAINING_FAILED" and v.evaluation is not None:
            # Billed only for successful training; the emulated run takes the configured delay.
            desc["BillableTrainingTimeInSeconds"] = max(1, round(v.training_end - v.created))
            desc["EvaluationResult"] = {"F1Score": v.evaluation.f1,
                                        "Summary": {"S3Object": {"Bucket": bucket, "Name": v.summary_key}}}
        return desc

    def StartProjectVersion(self, params: dict) -> dict:
        min_units, max_units = params["MinInferenceUnits"], params.get("MaxInferenceUnits")
        if max_units is not None and max_units < min_units:
            raise ApiError("InvalidParameterException", "MaxInferenceUnits must be greater than or equal to MinInferenceUnits.")
        now = self.env.clock()
        with self.lock:
            v = self._version(params["ProjectVersionArn"])
            v.settle(now)
            if v.status in ("TRAINING_IN_PROGRESS", "STARTING", "RUNNING", "STOPPING"):
                raise ApiError("ResourceInUseException", f"The model {v.arn} is {v.status}.")
            if v.status == "TRAINING_FAILED":
                raise ApiError("InvalidParameterException", f"The model {v.arn} failed training and can't be started.")
            v.status, v.status_message = "STARTING", "The model is being started."
            v.min_units, v.max_units = min_units, max_units
            v.transition_at = now + self.config.start_seconds
            v.limiter = SlidingWindow()
            v.scaler = self._scaler(min_units, max_units, now)
            return {"Status": v.status}

    def _scaler(self, min_units: int | None, max_units: int | None, now: float) -> AutoScaler:
        return AutoScaler(min_units or 1, max_units, per_unit=self.config.capacity_per_unit, now=now,
                          scale_up_seconds=self.config.scale_up_seconds,
                          scale_down_seconds=self.config.scale_down_seconds)

    def StopProjectVersion(self, params: dict) -> dict:
        now = self.env.clock()
        with self.lock:
            v = self._version(params["ProjectVersionArn"])
            v.settle(now)
            if v.status != "RUNNING":
                # Starting/stopping models and models never started can't be stopped; callers check first.
                raise ApiError("ResourceInUseException", f"The model {v.arn} is {v.status}, not RUNNING.")
            v.status, v.status_message = "STOPPING", "The model is being stopped."
            v.transition_at = now + self.config.stop_seconds
            return {"Status": v.status}

    def DeleteProjectVersion(self, params: dict) -> dict:
        now = self.env.clock()
        with self.lock:
            v = self._version(params["ProjectVersionArn"])
            v.settle(now)
            # The service refuses a version that runs, trains, or is on its way in or out.
            if v.status in ("RUNNING", "STARTING", "STOPPING", "TRAINING_IN_PROGRESS", "COPYING_IN_PROGRESS"):
                raise ApiError("ResourceInUseException",
                               f"The model {v.arn} is {v.status}; stop it (or wait for training to finish) before deleting it.")
            if v.status != "DELETING":
                v.status, v.status_message = "DELETING", "The model is being deleted."
                v.transition_at = now + self.config.stop_seconds
            return {"Status": v.status}

    def _forget_deleted(self, now: float) -> None:
        for arn in [arn for arn, v in self.versions.items() if v.gone(now)]:
            del self.versions[arn]
            self.tags.pop(arn, None)

    def _version(self, arn: str) -> Version:
        self._forget_deleted(self.env.clock())
        v = self.versions.get(arn)
        if v is None:
            raise ApiError("ResourceNotFoundException", f"The model {arn} does not exist.")
        return v

    # ---------------------------------------------------------------------------------- training

    def _train(self, v: Version, plan: dict, fail: bool) -> None:
        stats: dict[str, Any] = {"training": {}, "testing": {}}
        errors: list[dict] = []
        try:
            train_entries, test_entries = plan["train"], plan["test"]
            if plan["assets"] is not None:
                training, testing = plan["assets"]
                train_entries = self._read_assets(training["Assets"], "TrainingData")
                test_entries = self._read_assets(testing["Assets"], "TestingData") if testing.get("Assets") else None
            # Unlabeled lines are valid but not trained on: the manifest summary counts them as ignored
            # (tm-debugging-scope-json-line: "WARNING_... errors are ... counted as ignored JSON lines").
            unlabeled = {"training": sum(1 for e in train_entries if not e.labeled),
                         "testing": sum(1 for e in test_entries or [] if not e.labeled)}
            train_entries = [e for e in train_entries if e.labeled]
            if test_entries is not None:
                test_entries = [e for e in test_entries if e.labeled]
            if not test_entries:
                train_entries, test_entries = _auto_split(train_entries)
            use_case = (manifests.OBJECT_LOCALIZATION
                        if any(manifests.OBJECT_LOCALIZATION in e.use_cases for e in train_entries)
                        else manifests.IMAGE_LEVEL_LABELS)
            train_items, train_rejected = self._load_items(train_entries, use_case, stats["training"], unlabeled["training"])
            test_items, test_rejected = self._load_items(test_entries, use_case, stats["testing"], unlabeled["testing"])
            if fail:
                raise TrainingFailure("ERROR_INJECTED_FAILURE", "Training failed (fail_training is set on the emulator).")
            _check_training_data(train_items, test_items, use_case)
            wrong, instead = plan.get("mislabel") or (None, None)
            examples = [(f, instead if label == wrong else label)
                        for f, label in model.training_examples(use_case, train_items)]
            fitted = model.fit(use_case, examples)
            evaluation = model.evaluate(fitted, test_items)
            v.data_results = self._write_manifests(v, (train_items, train_rejected), (test_items, test_rejected), plan)
            v.summary_key = self._write_summary(v, evaluation, len(train_items))
            v.model, v.evaluation = fitted, evaluation
        except TrainingFailure as exc:
            errors.append({"code": exc.code, "message": str(exc)})
            v.failure = f"The manifest validation failed: {exc}" if exc.code.startswith("ERROR_") else str(exc)
        except Exception as exc:  # noqa: BLE001 - a bug here must surface as a failed version, not a hung one
            v.failure = f"Internal emulator error while training: {exc!r}"
        finally:
            for part in stats.values():
                part.setdefault("errors", [])
            try:
                v.manifest_summary_key = self._put_json(v, "manifest_summary.json", {"statistics": stats, "errors": errors})
            except TrainingFailure as exc:
                v.failure = v.failure or str(exc)
            v.training_end = self.env.clock()
            v.trained.set()

    def _read_assets(self, assets: list[dict], what: str) -> list[manifests.Entry]:
        entries: list[manifests.Entry] = []
        for asset in assets:
            s3obj = (asset.get("GroundTruthManifest") or {}).get("S3Object") or {}
            try:
                text = self._read_text(s3obj.get("Bucket"), s3obj.get("Name"), s3obj.get("Version"))
            except LookupError:
                raise TrainingFailure("ERROR_MANIFEST_INACCESSIBLE_OR_UNSUPPORTED_FORMAT",
                                      f"{what} manifest s3://{s3obj.get('Bucket')}/{s3obj.get('Name')} can't be read.")
            parsed = manifests.parse_manifest(text)
            if parsed.total_lines and parsed.dropped > _INVALID_SHARE * parsed.total_lines:
                raise TrainingFailure("ERROR_TOO_MANY_INVALID_ROWS_IN_MANIFEST",
                                      f"{parsed.dropped} of {parsed.total_lines} lines of the {what} manifest are invalid.")
            entries.extend(parsed.entries)
        return entries

    def _load_items(self, entries: list[manifests.Entry], use_case: str, stats: dict, unlabeled: int = 0):
        """Decode each entry's image; bad images count as invalid lines, as the validation manifests report.

        The summary's per-dataset `errors` list names each bad line (tm-debugging-summary: "statistics and
        errors found in the training dataset"); `unlabeled` lines were set aside before and count as ignored."""
        items, bad, line_errors, rejected, buckets = [], [], [], [], set()
        for index, entry in enumerate(entries):
            if use_case not in entry.use_cases:
                continue
            bucket, key = entry.bucket_key
            buckets.add(bucket)
            try:
                info = self.image_info(bucket, key)
            except ApiError as exc:
                bad.append(index)
                line_errors.append({"code": "ERROR_INVALID_IMAGE", "message": f"line {index}: {exc.message}"})
                rejected.append((entry, line_errors[-1]))
                continue
            if not (MIN_SIDE <= info.width <= MAX_SIDE and MIN_SIDE <= info.height <= MAX_SIDE):
                bad.append(index)
                line_errors.append({"code": "ERROR_INVALID_IMAGE_DIMENSION",
                                    "message": f"line {index}: {info.width}x{info.height} is outside "
                                               f"{MIN_SIDE}..{MAX_SIDE} pixels per side"})
                rejected.append((entry, line_errors[-1]))
                continue
            items.append((entry, info))
        stats.update({"use_case": use_case, "total_json_lines": len(entries) + unlabeled,
                      "valid_json_lines": len(items), "invalid_json_lines": len(bad),
                      "ignored_json_lines": len(entries) - len(items) - len(bad) + unlabeled,
                      "error_json_line_indices": bad, "errors": line_errors})
        if len(buckets) > 1:
            raise TrainingFailure("ERROR_IMAGES_IN_MULTIPLE_S3_BUCKETS", f"Images come from several buckets: {sorted(buckets)}.")
        if entries and len(bad) > _INVALID_SHARE * len(entries):
            raise TrainingFailure("ERROR_TOO_MANY_INVALID_ROWS_IN_MANIFEST",
                                  f"{len(bad)} of {len(entries)} images could not be read or are not valid PNG/JPEG images.")
        return items, rejected

    def _write_summary(self, v: Version, ev: model.Evaluation, n_train: int) -> str:
        summary = {
            "Version": 1,
            "AggregatedEvaluationResults": _aggregated(ev),
            "EvaluationDetails": {
                "EvaluationEndTimestamp": datetime.fromtimestamp(self.env.clock(), timezone.utc).isoformat(timespec="milliseconds"),
                "Labels": sorted(ev.per_label), "NumberOfTestingImages": ev.testing_images,
                "NumberOfTrainingImages": n_train, "ProjectVersionArn": v.arn,
            },
            "LabelEvaluationResults": [
                {"Label": label, "Metrics": {k: m[k] for k in ("F1Score", "Precision", "Recall", "Threshold")},
                 "NumberOfTestingImages": m["NumberOfTestingImages"]}
                # im-summary-file: "The labels are sorted by the F1 score of each label."
                for label, m in sorted(ev.per_label.items(), key=lambda kv: (-kv[1]["F1Score"], kv[0]))
            ],
        }
        return self._put_json(v, f"EvaluationResultSummary-{v.project.name}-{v.name}.json", summary, top=True)

    def _write_manifests(self, v: Version, train_items, test_items, plan: dict) -> dict:
        """TrainingDataResult / TestingDataResult as DescribeProjectVersions gives them: `Input` echoes what
        CreateProjectVersion was given (an AutoCreate test set stays AutoCreate), `Output` the manifests
        trained and tested on, `Validation` the validation result manifests (tm-debugging-getting-validation-data)."""
        supplied = plan["assets"] or (None, None)
        result = {}
        for field_name, (items, rejected), fname, given in (
                ("TrainingDataResult", train_items, "training", supplied[0]),
                ("TestingDataResult", test_items, "testing", supplied[1])):
            body = "\n".join(json.dumps(e.line, separators=(",", ":")) for e, _ in items) + "\n"
            output = self._asset(v, self._put(v, f"{fname}.manifest", body.encode()))
            # The validation manifest is the dataset again with each bad line's errors added to it.
            checked = body + "".join(json.dumps({**e.line, "errors": [error]}, separators=(",", ":")) + "\n"
                                     for e, error in rejected)
            validation = self._asset(v, self._put(v, f"{fname}_manifest_with_validation.json", checked.encode()))
            result[field_name] = {"Input": given if given is not None else {"Assets": [output]},
                                  "Output": {"Assets": [output]}, "Validation": {"Assets": [validation]}}
        return result

    def _asset(self, v: Version, key: str) -> dict:
        return {"GroundTruthManifest": {"S3Object": {"Bucket": v.output_config["S3Bucket"], "Name": key}}}

    def _put_json(self, v: Version, name: str, doc: dict, top: bool = False) -> str:
        return self._put(v, name, json.dumps(doc, indent=1).encode(), top=top)

    def _put(self, v: Version, name: str, body: bytes, top: bool = False) -> str:
        prefix = (v.output_config.get("S3KeyPrefix") or "").strip("/")
        parts = [prefix] if prefix else []
        if not top:
            parts.append(f"{v.project.name}-{v.name}")
        key = "/".join([*parts, name])
        try:
            self.env.s3().put_object(Bucket=v.output_config["S3Bucket"], Key=key, Body=body)
        except ClientError as exc:
            raise TrainingFailure("ERROR_OUTPUT_WRITE", f"Unable to write to the output S3 bucket {v.output_config['S3Bucket']}: "
                                  f"{exc.response['Error'].get('Code')}")
        return key

    # ---------------------------------------------------------------------------------- inference

    def DetectCustomLabels(self, params: dict) -> dict:
        image = params["Image"]
        if ("Bytes" in image) == ("S3Object" in image):
            raise ApiError("InvalidParameterException", "Image must contain exactly one of Bytes or S3Object.")
        now = self.env.clock()
        with self.lock:
            v = self._version(params["ProjectVersionArn"])
            v.settle(now)
            if v.status != "RUNNING":
                raise ApiError("ResourceNotReadyException", f"ProjectVersion arn: {v.arn} is not ready. Status: {v.status}")
            if v.scaler is None:
                v.scaler = self._scaler(v.min_units, v.max_units, now)
            scaler = v.scaler
            scaler.per_unit = self.config.capacity_per_unit  # the knob may change while it runs
            throttled = self._rng.random() < self.config.throttle_rate
        served = not throttled and v.limiter.admit(scaler.capacity(now), now)
        if not throttled:
            scaler.record(now, served)  # demand the auto-scaling sees
        if not served:
            raise ApiError("ProvisionedThroughputExceededException",
                           "The number of requests exceeded your throughput limit. Consider adding inference units.")
        self._hold_detect()
        if self.config.latency > 0:
            time.sleep(self.config.latency)  # no lock held: concurrent calls overlap as they do on AWS
        if "Bytes" in image:
            data: bytes = image["Bytes"]
            if len(data) > MAX_BYTES_IMAGE:
                raise ApiError("ImageTooLargeException", "Image size is too large: image bytes must be at most 4 MB.")
            info = self._cached(("bytes", hashlib.sha1(data).hexdigest()), lambda: data)
        else:
            s3obj = image["S3Object"]
            info = self.image_info(s3obj.get("Bucket"), s3obj.get("Name"), s3obj.get("Version"))
        min_conf = params.get("MinConfidence")
        # With an explicit MinConfidence a box's rival labels come back too when they pass it, as on AWS.
        predictions = v.model.predict(info, every_label=min_conf is not None)
        for p in predictions:  # filter on the value the caller sees, so MinConfidence=<a returned value> keeps it
            p["confidence"] = round(p["confidence"], 4)
        if min_conf is None:
            predictions = [p for p in predictions if p["confidence"] >= v.model.thresholds.get(p["name"], 50.0)]
        else:
            predictions = [p for p in predictions if p["confidence"] >= min_conf]
        if params.get("MaxResults") is not None:
            predictions = predictions[: params["MaxResults"]]
        labels = []
        for p in predictions:
            label = {"Name": p["name"], "Confidence": p["confidence"]}
            if p["box"] is not None:
                ratio = pixels_to_ratio(p["box"], info.width, info.height)
                label["Geometry"] = {"BoundingBox": {"Width": ratio["width"], "Height": ratio["height"],
                                                     "Left": ratio["left"], "Top": ratio["top"]}}
            labels.append(label)
        with self.lock:
            self.env.answered["bytes" if "Bytes" in image else
                              f"s3://{image['S3Object'].get('Bucket')}/{image['S3Object'].get('Name')}"] += 1
        return {"CustomLabels": labels}

    def _hold_detect(self) -> None:
        """The `detect_hold_after` knob: let exactly that many calls through, hold the others."""
        with self.lock:
            limit = self.config.detect_hold_after
            if not limit or self.env.detect_admitted < limit:
                self.env.detect_admitted += 1
                return
        while self.config.detect_hold_after and self.env.detect_admitted >= self.config.detect_hold_after:
            time.sleep(0.01)
        raise ApiError("ThrottlingException", "Rate exceeded (held by the emulator's detect_hold_after knob).")

    # ---------------------------------------------------------------------------------- S3 helpers

    def image_info(self, bucket: str, key: str, version_id: str | None = None) -> model.ImageInfo:
        """Features of an S3 image, cached by (bucket, key, ETag) so repeated calls cost one HEAD."""
        extra = {"VersionId": version_id} if version_id else {}
        try:
            head = self.env.s3().head_object(Bucket=bucket, Key=key, **extra)
        except ClientError:
            raise ApiError("InvalidS3ObjectException",
                           "Unable to get object metadata from S3. Check object key, region and/or access permissions.")
        if head.get("ContentLength", 0) > MAX_S3_IMAGE:
            raise ApiError("ImageTooLargeException", f"Image size is too large: s3://{bucket}/{key} is over 15 MB.")

        def fetch() -> bytes:
            try:
                return self.env.s3().get_object(Bucket=bucket, Key=key, **extra)["Body"].read()
            except ClientError:
                raise ApiError("InvalidS3ObjectException", "Unable to get object from S3.")

        return self._cached(("s3", bucket, key, head.get("ETag"), version_id), fetch)

    def _cached(self, cache_key: tuple, load: Callable[[], bytes]) -> model.ImageInfo:
        with self._cache_lock:
            hit = self._cache.get(cache_key)
            if hit is not None:
                self._cache.move_to_end(cache_key)
        if hit is None:
            try:
                hit = model.analyse_image(load())
            except model.InvalidImage as exc:
                hit = exc  # remembered too: a corrupt object stays corrupt until its ETag changes
            with self._cache_lock:
                self._cache[cache_key] = hit
                if len(self._cache) > _FEATURE_CACHE_SIZE:
                    self._cache.popitem(last=False)
        if isinstance(hit, model.InvalidImage):
            raise ApiError("InvalidImageFormatException", "Request has invalid image format")
        return hit

    def _read_text(self, bucket: str | None, key: str | None, version_id: str | None = None) -> str:
        extra = {"VersionId": version_id} if version_id else {}
        try:
            body = self.env.s3().get_object(Bucket=bucket, Key=key, **extra)["Body"].read()
        except (ClientError, TypeError, ValueError) as exc:
            raise LookupError(str(exc)) from exc
        return body.decode("utf-8", errors="replace")


# ------------------------------------------------------------------------------------------ helpers


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
    """AutoCreate: a deterministic ~20% test split (by a hash of source-ref, so retries split the same way)."""
    def bucket(e: manifests.Entry) -> int:
        return int(hashlib.sha1(e.source_ref.encode()).hexdigest(), 16) % 5

    train = [e for e in entries if bucket(e) != 0]
    test = [e for e in entries if bucket(e) == 0]
    if not test and len(train) > 1:
        test = [train.pop()]
    return train, test


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
