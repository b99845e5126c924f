"""Triggers that wait on a Rekognition Custom Labels model: botocore's waiters and ours (waiters/rekognition.json)."""

from __future__ import annotations

from airflow.providers.amazon.aws.triggers.base import AwsBaseWaiterTrigger

from rekfeedback.hooks.rekognition import RekognitionCustomLabelsHook

_STATUS = ["ProjectVersionDescriptions[].Status", "ProjectVersionDescriptions[].StatusMessage"]


class _ProjectVersionTrigger(AwsBaseWaiterTrigger):
    aws_hook_class = RekognitionCustomLabelsHook
    _waiter_name: str
    _failure_message: str

    def __init__(
        self,
        *,
        project_arn: str,
        version_name: str,
        project_version_arn: str | None = None,
        waiter_delay: int = 30,
        waiter_max_attempts: int = 60,
        aws_conn_id: str | None = "aws_default",
        region_name: str | None = None,
        verify: bool | str | None = None,
        botocore_config: dict | None = None,
    ) -> None:
        super().__init__(
            serialized_fields={"project_arn": project_arn, "version_name": version_name,
                               "project_version_arn": project_version_arn},
            waiter_name=self._waiter_name,
            waiter_args={"ProjectArn": project_arn, "VersionNames": [version_name]},
            failure_message=self._failure_message,
            status_message="Rekognition model status",
            status_queries=_STATUS,
            return_key="project_version_arn",
            return_value=project_version_arn,
            waiter_delay=waiter_delay,
            waiter_max_attempts=waiter_max_attempts,
            aws_conn_id=aws_conn_id,
            region_name=region_name,
            verify=verify,
            botocore_config=botocore_config,
        )

    def hook(self) -> RekognitionCustomLabelsHook:
        # Older amazon 9.x releases only know an overridden hook(); 9.39 also reads aws_hook_class.
        return RekognitionCustomLabelsHook(aws_conn_id=self.aws_conn_id, region_name=self.region_name,
                                           verify=self.verify, config=self.botocore_config)


class ProjectVersionRunningTrigger(_ProjectVersionTrigger):
    """Fires when the model is RUNNING (boto3 waiter `project_version_running`); error when it FAILED."""

    _waiter_name = "project_version_running"
    _failure_message = "Rekognition model failed to start"


class ProjectVersionTrainedTrigger(_ProjectVersionTrigger):
    """Fires when training completed (waiter `project_version_training_completed`); error on TRAINING_FAILED."""

    _waiter_name = "project_version_training_completed"
    _failure_message = "Rekognition model training failed"


class ProjectVersionStoppedTrigger(_ProjectVersionTrigger):
    """Fires when the model is STOPPED or FAILED (our waiter `project_version_stopped`); error if it runs again."""

    _waiter_name = "project_version_stopped"
    _failure_message = "Rekognition model did not stop"


class ProjectVersionSettledTrigger(_ProjectVersionTrigger):
    """Fires when a STARTING model settled: RUNNING, FAILED or STOPPED (our waiter `project_version_settled`)."""

    _waiter_name = "project_version_settled"
    _failure_message = "Rekognition model did not settle"
