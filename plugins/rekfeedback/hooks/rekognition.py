"""Hook for Amazon Rekognition Custom Labels project versions (models)."""

from __future__ import annotations

import time

from airflow.providers.amazon.aws.hooks.base_aws import AwsBaseHook
from airflow.sdk.exceptions import AirflowException

from rekfeedback.core.arns import ProjectVersionRef, parse_project_version_arn  # noqa: F401 (public here)

# Statuses from which StartProjectVersion is accepted.
STARTABLE = frozenset({"TRAINING_COMPLETED", "STOPPED", "FAILED", "COPYING_COMPLETED"})


class RekognitionCustomLabelsHook(AwsBaseHook):
    """Interact with Rekognition Custom Labels through a boto3 `rekognition` client.

    Additional arguments (such as ``aws_conn_id``) may be specified and are passed down to the
    underlying AwsBaseHook.
    """

    def __init__(self, *args, **kwargs) -> None:
        kwargs["client_type"] = "rekognition"
        super().__init__(*args, **kwargs)
        self._project_arns: dict[str, str] = {}

    parse_project_version_arn = staticmethod(parse_project_version_arn)

    def get_project_arn(self, project_name: str) -> str:
        if project_name not in self._project_arns:
            found = self.conn.describe_projects(ProjectNames=[project_name]).get("ProjectDescriptions") or []
            if not found:
                raise AirflowException(f"Rekognition project {project_name!r} does not exist in "
                                       f"{self.conn_region_name}; check the ARN and the connection's region.")
            self._project_arns[project_name] = found[0]["ProjectArn"]
        return self._project_arns[project_name]

    def project_arn_for_version(self, project_version_arn: str) -> str:
        return self.get_project_arn(parse_project_version_arn(project_version_arn).project_name)

    def waiter_args(self, project_version_arn: str) -> dict:
        """Arguments of the boto3 waiters (DescribeProjectVersions) for one model."""
        ref = parse_project_version_arn(project_version_arn)
        return {"ProjectArn": self.get_project_arn(ref.project_name), "VersionNames": [ref.version_name]}

    def describe_project_version(self, project_version_arn: str) -> dict:
        """The model's ProjectVersionDescriptions entry; a clear error when it does not exist."""
        args = self.waiter_args(project_version_arn)
        found = self.conn.describe_project_versions(**args).get("ProjectVersionDescriptions") or []
        for desc in found:
            if desc["ProjectVersionArn"] == project_version_arn:
                return desc
        raise AirflowException(f"Model {project_version_arn} not found in project {args['ProjectArn']}; "
                               "check project_version_arn.")

    def get_project_version_status(self, project_version_arn: str) -> str:
        return self.describe_project_version(project_version_arn)["Status"]

    def start_project_version(self, project_version_arn: str, min_inference_units: int = 1,
                              max_inference_units: int | None = None) -> str:
        kwargs: dict = {"ProjectVersionArn": project_version_arn, "MinInferenceUnits": int(min_inference_units)}
        if max_inference_units is not None:
            kwargs["MaxInferenceUnits"] = int(max_inference_units)
        return self.conn.start_project_version(**kwargs)["Status"]

    def stop_project_version(self, project_version_arn: str) -> str:
        return self.conn.stop_project_version(ProjectVersionArn=project_version_arn)["Status"]

    def wait_for_project_version(self, project_version_arn: str, waiter_name: str = "project_version_running",
                                 waiter_delay: int = 30, waiter_max_attempts: int = 40) -> None:
        """Block on a boto3 waiter: `project_version_running` or `project_version_training_completed`."""
        self.get_waiter(waiter_name).wait(
            **self.waiter_args(project_version_arn),
            WaiterConfig={"Delay": waiter_delay, "MaxAttempts": waiter_max_attempts},
        )

    def wait_for_status(self, project_version_arn: str, statuses: set[str] | frozenset[str],
                        waiter_delay: float = 10, waiter_max_attempts: int = 60) -> str:
        """Poll until the status is one of `statuses` (botocore has no "stopped" waiter). Returns it."""
        status = None
        for attempt in range(max(1, int(waiter_max_attempts))):
            status = self.get_project_version_status(project_version_arn)
            if status in statuses:
                return status
            self.log.info("Model %s is %s; waiting for %s", project_version_arn, status, "/".join(sorted(statuses)))
            time.sleep(waiter_delay)
        raise AirflowException(f"Model {project_version_arn} still {status} after {waiter_max_attempts} checks "
                               f"{waiter_delay}s apart; expected {'/'.join(sorted(statuses))}.")

    def list_project_versions(self, project_arn: str) -> list[dict]:
        """Every version of a project (DescribeProjectVersions, all pages), newest first."""
        out: list[dict] = []
        for page in self.conn.get_paginator("describe_project_versions").paginate(ProjectArn=project_arn):
            out.extend(page.get("ProjectVersionDescriptions") or [])
        return out

    def delete_project_version(self, project_version_arn: str) -> str:
        """DeleteProjectVersion; the service refuses a running or training version (ResourceInUseException)."""
        return self.conn.delete_project_version(ProjectVersionArn=project_version_arn)["Status"]

    @staticmethod
    def testing_manifests(description: dict) -> list[dict]:
        """S3 objects ({"Bucket", "Name"}) of the TEST images a trained version was evaluated on."""
        result = (description.get("TestingDataResult") or {}).get("Output") or {}
        return [a["GroundTruthManifest"]["S3Object"] for a in result.get("Assets") or []
                if (a.get("GroundTruthManifest") or {}).get("S3Object")]
