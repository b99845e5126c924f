"""Emulated Amazon Rekognition Custom Labels: projects, datasets, model versions and DetectCustomLabels.

State lives in memory for the life of the server. Asynchronous work follows AWS's shape: the call
returns at once with an *_IN_PROGRESS / STARTING / STOPPING status, and the status moves on once the
configured delay has passed (computed lazily from timestamps when read). Training itself runs on a
background thread: it reads the images from S3, fits `model.NeighbourModel`, scores it on the test set
and writes the evaluation summary to the version's OutputConfig location, as the service does.
"""

from __future__ import annotations

import random
import threading
from collections import OrderedDict
from typing import Any, Callable

from . import model
from .base import EmulatorEnv
from .capacity import AutoScaler
from .errors import ApiError
from .rekognition_admin import ADMIN_OPERATIONS, AdminOperations
from .rekognition_models import Dataset, Project, SlidingWindow, Version, _copy_entry, _paginate, _parse_mislabel, _with_token
from .rekognition_datasets import DatasetOperations
from .rekognition_training import TrainingOperations
from .rekognition_detect import DetectOperations


OPERATIONS = (
    "CreateProject", "DescribeProjects", "CreateDataset", "DescribeDataset", "ListDatasetEntries",
    "UpdateDatasetEntries", "CreateProjectVersion", "DescribeProjectVersions", "StartProjectVersion",
    "StopProjectVersion", "DeleteProjectVersion", "DetectCustomLabels", *ADMIN_OPERATIONS,
)


def handlers(env: EmulatorEnv) -> dict[str, Callable[[dict], dict]]:
    service = RekognitionService(env)
    return {op: getattr(service, op) for op in OPERATIONS}


# ------------------------------------------------------------------------------------------ service


class RekognitionService(AdminOperations, DatasetOperations, TrainingOperations, DetectOperations):
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


    # ---------------------------------------------------------------------------------- inference


    # ---------------------------------------------------------------------------------- S3 helpers


# ------------------------------------------------------------------------------------------ helpers


