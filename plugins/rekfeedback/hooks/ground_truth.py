"""SageMaker Ground Truth labeling jobs: a thin hook over the `sagemaker` client."""

from __future__ import annotations

from functools import cached_property
from pathlib import Path
from typing import Any

from airflow.providers.amazon.aws.hooks.base_aws import AwsBaseHook
from airflow.sdk.exceptions import AirflowFailException
from botocore.exceptions import ClientError

TERMINAL_STATES = ("Completed", "Failed", "Stopped")
_NOT_FOUND = ("ResourceNotFound", "ResourceNotFoundException")


class GroundTruthHook(AwsBaseHook):
    """Interact with SageMaker Ground Truth labeling jobs.

    Custom waiters (botocore has none for labeling jobs) live in `rekfeedback/waiters/ground_truth.json`:
    `labeling_job_complete` (Stopped fails), `labeling_job_complete_or_stopped` and `labeling_job_stopped`.

    Additional arguments (such as ``aws_conn_id``) may be specified and are passed down to the
    underlying AwsBaseHook.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs["client_type"] = "sagemaker"
        super().__init__(*args, **kwargs)

    @cached_property
    def waiter_path(self) -> Path | None:
        # Our file replaces amazon's sagemaker.json for this hook only; botocore's waiters stay available.
        path = Path(__file__).resolve().parents[1] / "waiters" / "ground_truth.json"
        return path if path.exists() else None

    def describe_labeling_job(self, name: str) -> dict | None:
        """DescribeLabelingJob, or None when no job has that name."""
        try:
            return self.conn.describe_labeling_job(LabelingJobName=name)
        except ClientError as err:
            if err.response.get("Error", {}).get("Code") in _NOT_FOUND:
                return None
            raise

    def current_job(self, names: list[str], output: str, log) -> tuple[str, dict | None]:
        """The job of one plan: the first of its attempt `names` that did not fail, and its description (None:
        to create). Only failed attempts are passed over, so there is never a second live job for the same
        items. A job of that name writing elsewhere is another loop's: never adopted."""
        for name in names:
            existing = self.describe_labeling_job(name)
            written_to = ((existing or {}).get("OutputConfig") or {}).get("S3OutputPath", "").rstrip("/")
            if existing is not None and written_to != output.rstrip("/"):
                raise AirflowFailException(
                    f"labeling job {name} exists but writes to {written_to or 'nowhere'}, not to this turn's "
                    f"{output}; it belongs to another loop. Use another output_uri or dag_id.")
            if existing is None or existing.get("LabelingJobStatus") != "Failed":
                return name, existing
            log.info("labeling job %s failed (%s): redoing it as the next attempt", name,
                     existing.get("FailureReason") or "no FailureReason")
        raise AirflowFailException(f"the job {names[0]} failed {len(names)} times; see the jobs' FailureReason, "
                                   "fix the cause, and rerun the turn")

    def create_or_reuse_labeling_job(self, request: dict) -> tuple[dict, bool]:
        """Create the job described by `request` unless a job of that name exists.

        Returns (DescribeLabelingJob of the job, whether this call created it). Job names are
        single-use in an account, so an existing job is the one an earlier try of the same task
        created: it is reused whatever its state, never duplicated.
        """
        name = request["LabelingJobName"]
        existing = self.describe_labeling_job(name)
        if existing is not None:
            return existing, False
        try:
            self.conn.create_labeling_job(**request)
        except ClientError as err:
            # Another try raced us between describe and create: that job is ours too.
            if err.response.get("Error", {}).get("Code") != "ResourceInUse":
                raise
            return self.describe_labeling_job(name) or {}, False
        return self.describe_labeling_job(name) or {"LabelingJobName": name}, True

    def list_labeling_jobs_by_prefix(self, prefix: str) -> list[dict]:
        """Summaries of every labeling job whose name starts with `prefix` (case-insensitive, as names are)."""
        out = []
        for page in self.conn.get_paginator("list_labeling_jobs").paginate(NameContains=prefix):
            out.extend(j for j in page.get("LabelingJobSummaryList", [])
                       if j["LabelingJobName"].lower().startswith(prefix.lower()))
        return sorted(out, key=lambda j: j["LabelingJobName"])

    def stop_labeling_job(self, name: str) -> None:
        self.conn.stop_labeling_job(LabelingJobName=name)

    @staticmethod
    def output_manifest_uri(description: dict) -> str | None:
        """Where the job's output manifest is (or will be): `<S3OutputPath>/<name>/manifests/output/output.manifest`."""
        uri = (description.get("LabelingJobOutput") or {}).get("OutputDatasetS3Uri")
        if uri:
            return uri
        base = (description.get("OutputConfig") or {}).get("S3OutputPath")
        if not base:
            return None
        return f"{base.rstrip('/')}/{description['LabelingJobName']}/manifests/output/output.manifest"
