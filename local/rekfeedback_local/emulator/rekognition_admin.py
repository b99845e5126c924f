"""Emulated Rekognition Custom Labels housekeeping: deleting projects and datasets, distributing a training
dataset, tags, and copying a model version. Mixed into `rekognition.RekognitionService`.

Each rule cites the API reference page it comes from; where the documentation is silent the emulator is
lenient and says so in a comment.
"""

from __future__ import annotations

import hashlib
from typing import TYPE_CHECKING

from .errors import ApiError

if TYPE_CHECKING:  # the mixin's host; imported for type names only
    from .rekognition import Dataset

ADMIN_OPERATIONS = (
    "DeleteProject", "DeleteDataset", "DistributeDatasetEntries", "TagResource", "UntagResource",
    "ListTagsForResource", "CopyProjectVersion",
)
# botocore's model caps one request at 200 tags; AWS's tagging guide caps a resource at 50 user tags.
MAX_TAGS = 50
_DISTRIBUTED_SHARE = 0.2  # DistributeDatasetEntries "moves 20% of the training dataset images to the test dataset"


class AdminOperations:
    """Needs the host's `lock`, `projects`, `datasets`, `versions`, `env`, `config`, `_project`, `_dataset`,
    `_version`, `_arn` and `_next_serial`."""

    # ------------------------------------------------------------------------------------- deleting

    def DeleteProject(self, params: dict) -> dict:
        # API_DeleteProject: "To delete a project you must first delete all models or adapters associated
        # with the project." The page does not say datasets block it (the console deletes them for you), so
        # the project's datasets go with it.
        with self.lock:
            project = self._project(params["ProjectArn"])
            self._forget_deleted(self.env.clock())  # a deleted model stops blocking once it is gone
            models = [v.name for v in self.versions.values() if v.project is project]
            if models:
                raise ApiError("ResourceInUseException",
                               f"The project {project.name} still has models ({', '.join(sorted(models))}): "
                               "delete them with DeleteProjectVersion first.")
            for arn in project.datasets.values():
                self.datasets.pop(arn, None)
            project.datasets.clear()
            del self.projects[project.arn]
            self.tags.pop(project.arn, None)
        return {"Status": "DELETING"}

    def DeleteDataset(self, params: dict) -> dict:
        # API_DeleteDataset: "You can't delete a dataset while it is creating (CREATE_IN_PROGRESS) or if the
        # dataset is updating (UPDATE_IN_PROGRESS)."
        with self.lock:
            ds = self._dataset(params["DatasetArn"])
            ds.settle(self.env.clock())
            if ds.busy:
                raise ApiError("ResourceInUseException", f"The dataset {ds.arn} is {ds.status}; wait until it completes.")
            del self.datasets[ds.arn]
            if ds.project.datasets.get(ds.kind) == ds.arn:
                del ds.project.datasets[ds.kind]
        return {}

    # ----------------------------------------------------------------------------------- distributing

    def DistributeDatasetEntries(self, params: dict) -> dict:
        # API_DistributeDatasetEntries: exactly two datasets of one project, a training dataset holding the
        # images and an empty test dataset; 20% of the training images move; both end UPDATE_COMPLETE.
        arns = [d["Arn"] for d in params["Datasets"]]
        if len(arns) != 2:
            raise ApiError("InvalidParameterException", "Datasets must hold exactly two items: a TRAIN and a TEST dataset.")
        now = self.env.clock()
        with self.lock:
            pair = [self._dataset(arn) for arn in arns]
            for ds in pair:
                ds.settle(now)
                if ds.busy:
                    raise ApiError("ResourceInUseException", f"The dataset {ds.arn} is {ds.status}.")
            kinds = {ds.kind: ds for ds in pair}
            if set(kinds) != {"TRAIN", "TEST"}:
                raise ApiError("InvalidParameterException", "Datasets must be one TRAIN and one TEST dataset.")
            train, test = kinds["TRAIN"], kinds["TEST"]
            if train.project is not test.project:
                raise ApiError("InvalidParameterException", "The datasets must belong to the same project.")
            if test.entries:
                raise ApiError("InvalidParameterException", f"The test dataset {test.arn} must be empty.")
            if not train.entries:
                raise ApiError("InvalidParameterException", f"The training dataset {train.arn} has no entries to distribute.")
            moving = _share_to_move(list(train.entries), _DISTRIBUTED_SHARE)
            for ref in moving:
                test.entries[ref] = train.entries.pop(ref)
            outcome = ("UPDATE_COMPLETE", "The dataset was successfully updated.", "SUCCESS")
            for ds in (train, test):
                _start_update(ds, outcome, now, self.config.dataset_seconds)
        return {}

    # ------------------------------------------------------------------------------------------- tags

    def _tagged(self, arn: str) -> None:
        """Tags exist on projects and models (API_TagResource); anything else is not found."""
        if arn not in self.projects and arn not in self.versions:
            raise ApiError("ResourceNotFoundException", f"The resource {arn} does not exist.")

    def _add_tags(self, arn: str, tags: dict | None) -> None:
        if not tags:
            return
        merged = {**self.tags.get(arn, {}), **tags}
        if len(merged) > MAX_TAGS:
            raise ApiError("ServiceQuotaExceededException", f"The resource {arn} would have {len(merged)} tags; "
                                                            f"at most {MAX_TAGS} are allowed.")
        self.tags[arn] = merged

    def TagResource(self, params: dict) -> dict:
        with self.lock:
            self._tagged(params["ResourceArn"])
            self._add_tags(params["ResourceArn"], params["Tags"])
        return {}

    def UntagResource(self, params: dict) -> dict:
        with self.lock:
            self._tagged(params["ResourceArn"])
            current = self.tags.get(params["ResourceArn"], {})
            for key in params["TagKeys"]:
                current.pop(key, None)
        return {}

    def ListTagsForResource(self, params: dict) -> dict:
        with self.lock:
            self._tagged(params["ResourceArn"])
            return {"Tags": dict(self.tags.get(params["ResourceArn"], {}))}

    # ---------------------------------------------------------------------------------------- copying

    def CopyProjectVersion(self, params: dict) -> dict:
        # API_CopyProjectVersion: copies a trained model into a destination project; the copy's status goes
        # COPYING_IN_PROGRESS -> COPYING_COMPLETED. Only a model that finished training can be copied.
        # Copies across accounts need a project policy; the emulator has one account, so it never asks.
        from .rekognition import Version

        now = self.env.clock()
        with self.lock:
            source_project = self._project(params["SourceProjectArn"])
            source = self._version(params["SourceProjectVersionArn"])
            source.settle(now)
            if source.project is not source_project:
                raise ApiError("InvalidParameterException",
                               f"The model {source.arn} does not belong to project {source_project.arn}.")
            if source.model is None or source.status in ("TRAINING_IN_PROGRESS", "TRAINING_FAILED",
                                                         "COPYING_IN_PROGRESS", "COPYING_FAILED"):
                raise ApiError("ResourceNotReadyException", f"The model {source.arn} is {source.status}; "
                                                            "only a trained model can be copied.")
            target = self._project(params["DestinationProjectArn"])
            name = params["VersionName"]
            if any(v.project is target and v.name == name for v in self.versions.values()):
                raise ApiError("ResourceInUseException", f"The version {name} already exists in project {target.name}.")
            arn = self._arn(f"project/{target.name}/version/{name}/{self._next_serial()}")
            copy = Version(name, arn, target, now, params["OutputConfig"], source.description, params.get("KmsKeyId"),
                           status="COPYING_IN_PROGRESS", status_message="The model is being copied.")
            copy.model, copy.evaluation, copy.training_end = source.model, source.evaluation, source.training_end
            copy.summary_key, copy.manifest_summary_key = source.summary_key, source.manifest_summary_key
            copy.data_results = dict(source.data_results)
            copy.transition_at = now + self.config.dataset_seconds
            copy.trained.set()
            self.versions[arn] = copy
            self._add_tags(arn, params.get("Tags"))
        return {"ProjectVersionArn": arn}


def _share_to_move(refs: list[str], share: float) -> list[str]:
    """A deterministic ~share of the refs (at least one), chosen by hash so reruns move the same images."""
    count = max(1, round(share * len(refs)))
    return sorted(refs, key=lambda ref: hashlib.sha256(ref.encode()).hexdigest())[:count]


def _start_update(ds: "Dataset", outcome: tuple[str, str, str], now: float, seconds: float) -> None:
    ds.status, ds.status_message, ds.status_code = "UPDATE_IN_PROGRESS", "The dataset is being updated.", "SUCCESS"
    ds.pending, ds.ready_at, ds.updated = outcome, now + seconds, now
