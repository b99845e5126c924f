"""Emulated Rekognition Custom Labels: CreateDataset, DescribeDataset, ListDatasetEntries, UpdateDatasetEntries.
Mixed into `rekognition.RekognitionService`."""

from __future__ import annotations

from . import manifests
from .errors import ApiError
from .rekognition_models import Dataset, TrainingFailure, Version, _INVALID_SHARE, _copy_entry, _paginate, _with_token


class DatasetOperations:
    """Dataset operations of RekognitionService (its lock, env and state)."""

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
