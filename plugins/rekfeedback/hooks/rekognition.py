"""Hook for Amazon Rekognition Custom Labels: projects, their datasets and their versions (models)."""

from __future__ import annotations

from functools import cached_property
from pathlib import Path

from airflow.providers.amazon.aws.hooks.base_aws import AwsBaseHook
from airflow.sdk.exceptions import AirflowException
from botocore.exceptions import ClientError, WaiterError

from rekfeedback.core import arns
from rekfeedback.core.arns import ProjectVersionRef, parse_project_version_arn  # noqa: F401 (public here)
from rekfeedback.core.training import attempt_version_name

# Statuses from which StartProjectVersion is accepted.
STARTABLE = frozenset({"TRAINING_COMPLETED", "STOPPED", "FAILED", "COPYING_COMPLETED"})


class RekognitionCustomLabelsHook(AwsBaseHook):
    """Interact with Rekognition Custom Labels through a boto3 `rekognition` client.

    Waiters: botocore's `project_version_running` and `project_version_training_completed`, and ours in
    `rekfeedback/waiters/rekognition.json` (botocore has none for them): `project_version_stopped`,
    `project_version_settled` (RUNNING, FAILED or STOPPED: StopProjectVersion is refused while STARTING)
    and `dataset_ready`. The triggers in `rekfeedback.triggers` wait on the same waiters in the triggerer.

    Additional arguments (such as ``aws_conn_id``) may be specified and are passed down to the
    underlying AwsBaseHook.
    """

    def __init__(self, *args, **kwargs) -> None:
        kwargs["client_type"] = "rekognition"
        super().__init__(*args, **kwargs)
        self._project_arns: dict[str, str] = {}

    parse_project_version_arn = staticmethod(parse_project_version_arn)

    @cached_property
    def waiter_path(self) -> Path | None:
        # Our file adds to botocore's rekognition waiters for this hook; botocore's stay available.
        path = Path(__file__).resolve().parents[1] / "waiters" / "rekognition.json"
        return path if path.exists() else None

    # -- projects ------------------------------------------------------------------------------
    def describe_project(self, project_name: str) -> dict:
        found = self.conn.describe_projects(ProjectNames=[project_name]).get("ProjectDescriptions") or []
        if not found:
            raise AirflowException(f"Rekognition project {project_name!r} does not exist in "
                                   f"{self.conn_region_name}; check the ARN and the connection's region.")
        self._project_arns[project_name] = found[0]["ProjectArn"]
        return found[0]

    def get_project_arn(self, project_name: str) -> str:
        if project_name not in self._project_arns:
            self.describe_project(project_name)
        return self._project_arns[project_name]

    def project_arn_for_version(self, project_version_arn: str) -> str:
        return self.get_project_arn(parse_project_version_arn(project_version_arn).project_name)

    # -- versions ------------------------------------------------------------------------------
    def waiter_args(self, project_version_arn: str, project_arn: str | None = None) -> dict:
        """Arguments of the version waiters (DescribeProjectVersions) for one model."""
        ref = parse_project_version_arn(project_version_arn)
        return {"ProjectArn": project_arn or self.get_project_arn(ref.project_name), "VersionNames": [ref.version_name]}

    def describe_project_version(self, project_version_arn: str, project_arn: str | None = None) -> dict:
        """The model's ProjectVersionDescriptions entry; a clear error when it does not exist."""
        args = self.waiter_args(project_version_arn, project_arn)
        found = self.conn.describe_project_versions(**args).get("ProjectVersionDescriptions") or []
        for desc in found:
            if desc["ProjectVersionArn"] == project_version_arn:
                return desc
        raise AirflowException(f"Model {project_version_arn} not found in project {args['ProjectArn']}; "
                               "check project_version_arn.")

    def get_project_version_status(self, project_version_arn: str) -> str:
        return self.describe_project_version(project_version_arn)["Status"]

    def find_version(self, project_arn: str, version_name: str) -> dict | None:
        """The version of that name in the project, or None."""
        found = self.conn.describe_project_versions(ProjectArn=project_arn, VersionNames=[version_name])
        return (found.get("ProjectVersionDescriptions") or [None])[0]

    def find_run_version(self, project_arn: str, base_name: str) -> tuple[str, dict | None, list[dict]]:
        """A run's version to wait for: (name, description, failed earlier attempts), or (name to train, None, failed).

        Versions of earlier attempts that failed training took their names for good: they are passed
        over; the first one that did not fail is reused whatever its status (training, trained, running).
        """
        failed: list[dict] = []
        attempt = 0
        while True:
            attempt += 1
            name = attempt_version_name(base_name, attempt)
            found = self.find_version(project_arn, name)
            if found is None or found["Status"] != "TRAINING_FAILED":
                return name, found, failed
            failed.append(found)

    def create_project_version(self, project_arn: str, version_name: str, output_bucket: str, output_prefix: str,
                               description: str | None = None) -> str:
        """CreateProjectVersion, safe to retry: a version of that name created meanwhile is returned."""
        kwargs = {"ProjectArn": project_arn, "VersionName": version_name,
                  "OutputConfig": {"S3Bucket": output_bucket, "S3KeyPrefix": output_prefix}}
        if description:
            kwargs["VersionDescription"] = str(description)[:255]
        try:
            return self.conn.create_project_version(**kwargs)["ProjectVersionArn"]
        except ClientError as exc:
            found = self.find_version(project_arn, version_name)
            if exc.response.get("Error", {}).get("Code") != "ResourceInUseException" or found is None:
                raise
            return found["ProjectVersionArn"]  # another attempt of this run created it between check and call

    def start_project_version(self, project_version_arn: str, min_inference_units: int = 1,
                              max_inference_units: int | None = None) -> str:
        kwargs: dict = {"ProjectVersionArn": project_version_arn, "MinInferenceUnits": int(min_inference_units)}
        if max_inference_units is not None:
            kwargs["MaxInferenceUnits"] = int(max_inference_units)
        return self.conn.start_project_version(**kwargs)["Status"]

    def stop_project_version(self, project_version_arn: str) -> str:
        return self.conn.stop_project_version(ProjectVersionArn=project_version_arn)["Status"]

    def wait_for_project_version(self, project_version_arn: str, waiter_name: str = "project_version_running",
                                 waiter_delay: float = 30, waiter_max_attempts: int = 40,
                                 project_arn: str | None = None) -> str:
        """Block on a version waiter (botocore's or ours, see the class); returns the status it reached."""
        try:
            self.get_waiter(waiter_name).wait(
                **self.waiter_args(project_version_arn, project_arn),
                WaiterConfig={"Delay": waiter_delay, "MaxAttempts": max(1, int(waiter_max_attempts))},
            )
        except WaiterError as exc:
            desc = ((exc.last_response or {}).get("ProjectVersionDescriptions") or [{}])[0]
            raise AirflowException(f"Model {project_version_arn} is {desc.get('Status', 'unknown')} "
                                   f"({desc.get('StatusMessage') or exc}); {waiter_name} was not reached.") from exc
        return self.describe_project_version(project_version_arn, project_arn)["Status"]

    def list_project_versions(self, project_arn: str) -> list[dict]:
        """Every version of a project (DescribeProjectVersions, all pages), newest first."""
        out: list[dict] = []
        for page in self.conn.get_paginator("describe_project_versions").paginate(ProjectArn=project_arn):
            out.extend(page.get("ProjectVersionDescriptions") or [])
        return out

    def delete_project_version(self, project_version_arn: str) -> str:
        """DeleteProjectVersion; the service refuses a running or training version (ResourceInUseException)."""
        return self.conn.delete_project_version(ProjectVersionArn=project_version_arn)["Status"]

    def detect_custom_labels(self, project_version_arn: str, bucket: str, key: str, **options) -> dict:
        """DetectCustomLabels on one S3 image (`options`: MinConfidence, MaxResults)."""
        return self.conn.detect_custom_labels(ProjectVersionArn=project_version_arn,
                                              Image={"S3Object": {"Bucket": bucket, "Name": key}}, **options)

    @staticmethod
    def testing_manifests(description: dict) -> list[dict]:
        """S3 objects ({"Bucket", "Name"}) of the TEST images a trained version was evaluated on."""
        result = (description.get("TestingDataResult") or {}).get("Output") or {}
        return [a["GroundTruthManifest"]["S3Object"] for a in result.get("Assets") or []
                if (a.get("GroundTruthManifest") or {}).get("S3Object")]

    @staticmethod
    def evaluation_summary_object(description: dict) -> dict | None:
        """The S3 object ({"Bucket", "Name"}) of a trained version's evaluation summary, or None."""
        s3obj = ((description.get("EvaluationResult") or {}).get("Summary") or {}).get("S3Object") or {}
        return s3obj if s3obj.get("Bucket") and s3obj.get("Name") else None

    # -- datasets ------------------------------------------------------------------------------
    def project_datasets(self, project_arn: str) -> dict[str, str]:
        """The project's dataset ARNs by type ("TRAIN", "TEST")."""
        match = arns.match(arns.PROJECT, project_arn)
        if not match:
            raise ValueError(f"not a Rekognition project ARN: {project_arn!r}")
        project = self.describe_project(match["project"])
        return {d["DatasetType"]: d["DatasetArn"] for d in project.get("Datasets") or []}

    def create_dataset(self, project_arn: str, dataset_type: str, bucket: str, key: str) -> str:
        """CreateDataset of that type from a manifest in S3; returns its ARN (wait with `dataset_ready`)."""
        return self.conn.create_dataset(
            ProjectArn=project_arn, DatasetType=dataset_type,
            DatasetSource={"GroundTruthManifest": {"S3Object": {"Bucket": bucket, "Name": key}}},
        )["DatasetArn"]

    def describe_dataset(self, dataset_arn: str) -> dict:
        return self.conn.describe_dataset(DatasetArn=dataset_arn)["DatasetDescription"]

    def wait_for_dataset(self, dataset_arn: str, waiter_delay: float = 5, waiter_max_attempts: int = 720) -> None:
        """Block on the `dataset_ready` waiter; a failed dataset raises with the service's message."""
        try:
            self.get_waiter("dataset_ready").wait(
                DatasetArn=dataset_arn,
                WaiterConfig={"Delay": waiter_delay, "MaxAttempts": max(1, int(waiter_max_attempts))})
        except WaiterError as exc:
            desc = (exc.last_response or {}).get("DatasetDescription") or {}
            raise AirflowException(f"Dataset {dataset_arn} is {desc.get('Status', 'not ready')}: "
                                   f"{desc.get('StatusMessage') or exc} ({desc.get('StatusMessageCode')})") from exc

    def update_dataset_entries(self, dataset_arn: str, chunk: bytes) -> None:
        """UpdateDatasetEntries with one chunk of JSON Lines (under the API's 5 MB); an entry replaces the one
        with the same source-ref. The service refuses an update while another one runs: wait with `dataset_ready`."""
        self.conn.update_dataset_entries(DatasetArn=dataset_arn, Changes={"GroundTruth": chunk})
