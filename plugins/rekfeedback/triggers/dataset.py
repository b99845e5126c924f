"""Waits in the triggerer until a Rekognition Custom Labels dataset is ready (our waiter `dataset_ready`)."""

from __future__ import annotations

from airflow.providers.amazon.aws.triggers.base import AwsBaseWaiterTrigger

from rekfeedback.hooks.rekognition import RekognitionCustomLabelsHook


class DatasetReadyTrigger(AwsBaseWaiterTrigger):
    """Fires when the dataset is CREATE_COMPLETE or UPDATE_COMPLETE; an error event when it is *_FAILED.

    The hook comes from `aws_hook_class` (the amazon provider builds it with the trigger's connection).
    """

    aws_hook_class = RekognitionCustomLabelsHook

    def __init__(self, *, dataset_arn: str, waiter_delay: float = 5, waiter_max_attempts: int = 720,
                 aws_conn_id: str | None = "aws_default", region_name: str | None = None,
                 verify: bool | str | None = None, botocore_config: dict | None = None) -> None:
        super().__init__(
            serialized_fields={"dataset_arn": dataset_arn},
            waiter_name="dataset_ready",
            waiter_args={"DatasetArn": dataset_arn},
            failure_message="Rekognition dataset update failed",
            status_message="Rekognition dataset status",
            status_queries=["DatasetDescription.Status", "DatasetDescription.StatusMessage"],
            return_key="dataset_arn",
            return_value=dataset_arn,
            waiter_delay=waiter_delay,
            waiter_max_attempts=waiter_max_attempts,
            aws_conn_id=aws_conn_id,
            region_name=region_name,
            verify=verify,
            botocore_config=botocore_config,
        )

