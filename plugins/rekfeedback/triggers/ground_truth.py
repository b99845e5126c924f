"""Waits in the triggerer, holding no worker slot, until Ground Truth labeling jobs end."""

from __future__ import annotations

from collections.abc import AsyncIterator

from airflow.providers.amazon.aws.triggers.base import AwsBaseWaiterTrigger
from airflow.providers.amazon.aws.utils.waiter_with_logging import async_wait
from airflow.triggers.base import TriggerEvent

from rekfeedback.hooks.ground_truth import GroundTruthHook

STATUS_QUERIES = ["LabelingJobStatus", "LabelCounters", "FailureReason"]


class GroundTruthLabelingJobTrigger(AwsBaseWaiterTrigger):
    """Poll DescribeLabelingJob until every job in `job_names` ends.

    Success event: `{"status": "success", "job_names": [...]}`. Failure event: `{"status": "error",
    "message": ..., "job_names": [...], "job_name": <the job that failed>, "failure_reason": ...}`.
    The job status and LabelCounters are logged at every poll.

    :param job_names: one job name or a list of them.
    :param allow_stopped: treat a Stopped job as ended well (partial results) instead of a failure.
    """

    aws_hook_class = GroundTruthHook

    def __init__(self, *, job_names: str | list[str], allow_stopped: bool = False, waiter_delay: int = 60,
                 waiter_max_attempts: int = 10080, aws_conn_id: str | None = "aws_default",
                 region_name: str | None = None, verify: bool | str | None = None,
                 botocore_config: dict | None = None):
        names = [job_names] if isinstance(job_names, str) else list(job_names)
        super().__init__(
            serialized_fields={"job_names": names, "allow_stopped": allow_stopped},
            waiter_name="labeling_job_complete_or_stopped" if allow_stopped else "labeling_job_complete",
            waiter_args={"LabelingJobName": names[0] if names else ""},
            failure_message="Ground Truth labeling job did not complete",
            status_message="Ground Truth labeling job",
            status_queries=STATUS_QUERIES,
            return_key="job_names",
            return_value=names,
            waiter_delay=waiter_delay,
            waiter_max_attempts=waiter_max_attempts,
            aws_conn_id=aws_conn_id,
            region_name=region_name,
            verify=verify,
            botocore_config=botocore_config,
        )
        self.job_names = names

    def hook(self) -> GroundTruthHook:
        # Older amazon 9.x releases call hook() instead of reading aws_hook_class.
        return GroundTruthHook(aws_conn_id=self.aws_conn_id, region_name=self.region_name,
                               verify=self.verify, config=self.botocore_config)

    async def run(self) -> AsyncIterator[TriggerEvent]:
        # Jobs run in parallel on AWS, so waiting for them one after the other costs no extra time.
        hook = self.hook()
        event = None
        async with await hook.get_async_conn() as client:
            waiter = hook.get_waiter(self.waiter_name, deferrable=True, client=client,
                                     config_overrides=self.waiter_config_overrides)
            for name in self.job_names:
                try:
                    await async_wait(waiter, self.waiter_delay, self.attempts, {"LabelingJobName": name},
                                     f"{self.failure_message} ({name})", f"{self.status_message} {name}",
                                     self.status_queries)
                except Exception as error:  # the waiter raises AirflowException subclasses
                    event = self._failure_event(name, error)
                    break
        # Yield outside the client's context: a triggerer that closes the generator then has nothing to clean up.
        yield event or TriggerEvent({"status": "success", "job_names": self.job_names})

    def _failure_event(self, name: str, error: Exception) -> TriggerEvent:
        last = getattr(error, "last_response", None) or {}
        reason = last.get("FailureReason")
        status = last.get("LabelingJobStatus")
        message = str(error)
        if status or reason:
            message = f"labeling job {name} ended {status or 'badly'}: {reason or 'no FailureReason given'}"
        return TriggerEvent({"status": "error", "message": message, "job_names": self.job_names,
                             "job_name": name, "failure_reason": reason, "job_status": status})
