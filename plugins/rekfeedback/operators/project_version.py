"""Start a Rekognition Custom Labels model (billed per inference-unit hour while running); stop: model_stop.py."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta, timezone
from typing import TYPE_CHECKING, Any

from airflow.providers.amazon.aws.operators.base_aws import AwsBaseOperator
from airflow.providers.amazon.aws.utils import validate_execute_complete_event
from airflow.providers.amazon.aws.utils.mixins import aws_template_fields
from airflow.sdk.exceptions import AirflowException
from airflow.providers.common.compat.sdk import conf

from rekfeedback.core import templated
from rekfeedback.core import ownership
from rekfeedback.hooks.loop_store import LoopStore, ModelRecords
from rekfeedback.hooks.rekognition import STARTABLE, RekognitionCustomLabelsHook, parse_project_version_arn
from rekfeedback.links.rekognition import RekognitionProjectVersionLink
from rekfeedback.triggers.project_version import ProjectVersionRunningTrigger, ProjectVersionStoppedTrigger

if TYPE_CHECKING:
    from airflow.sdk import Context

_NOT_STARTABLE = {
    "TRAINING_IN_PROGRESS": "is still training; wait for training to complete "
                            "(RekognitionTrainProjectVersionOperator / ProjectVersionTrainedTrigger) before starting it",
    "TRAINING_FAILED": "failed training and can never run; fix the training data and train a new version",
    "DEPRECATED": "is deprecated and can no longer be started; train a new version",
    "EXPIRED": "has expired and can no longer be started; train a new version",
    "DELETING": "is being deleted",
    "COPYING_IN_PROGRESS": "is still being copied; retry when the copy completed",
    "COPYING_FAILED": "failed to copy and can never run",
}


def _now() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def _blank(value: Any) -> bool:
    return templated.is_blank(value)


def model_records(operator: AwsBaseOperator, records_prefix: str, owned_models_uri: str | None) -> ModelRecords:
    from airflow.providers.amazon.aws.hooks.s3 import S3Hook

    s3 = S3Hook(aws_conn_id=operator.aws_conn_id, region_name=operator.region_name, verify=operator.verify,
                config=operator.botocore_config).conn
    return ModelRecords(LoopStore(s3), records_prefix, None if _blank(owned_models_uri) else owned_models_uri)


def defer_on_model(operator: AwsBaseOperator, trigger_class, method_name: str, kwargs: dict) -> None:
    """Defer `operator` (start or stop) to one of the model's waiter triggers, resuming in `method_name`."""
    ref = parse_project_version_arn(operator.project_version_arn)
    operator.defer(
        trigger=trigger_class(
            project_arn=operator.hook.get_project_arn(ref.project_name), version_name=ref.version_name,
            project_version_arn=operator.project_version_arn, waiter_delay=operator.waiter_delay,
            waiter_max_attempts=operator.waiter_max_attempts, aws_conn_id=operator.aws_conn_id,
            region_name=operator.region_name, verify=operator.verify, botocore_config=operator.botocore_config,
        ),
        method_name=method_name, kwargs=kwargs,
        timeout=timedelta(seconds=operator.waiter_delay * operator.waiter_max_attempts + 60),
    )


def waited(operator: AwsBaseOperator, event: dict[str, Any] | None, what: str) -> dict:
    """The trigger's event of a model wait; an AirflowException saying `what` did not happen otherwise."""
    event = validate_execute_complete_event(event)
    if event["status"] != "success":
        raise AirflowException(f"Model {operator.project_version_arn} {what}: {event.get('message', event)}")
    return event


class RekognitionStartProjectVersionOperator(AwsBaseOperator[RekognitionCustomLabelsHook]):
    """Start a model (project version) unless it is already running, and wait until it is RUNNING.

    Already RUNNING is success; STARTING is waited for; STOPPING is waited out (waiter
    `project_version_stopped`, in the triggerer when deferrable), then started.
    Returns ``{"project_version_arn", "started_by_this_run", "status", "start_requested_at",
    "running_at"}`` (times in UTC ISO format, `start_requested_at` None when this run did not start it);
    the stop operator reads it to stop only what this run started.

    :param project_version_arn: the model's ARN. (templated)
    :param min_inference_units: inference units to start with (>= 1). (templated)
    :param max_inference_units: turns on auto-scaling up to this many units. (templated)
    :param wait_for_completion: wait until RUNNING (always true when deferrable).
    :param waiter_delay: seconds between status checks.
    :param waiter_max_attempts: number of status checks before giving up.
    :param deferrable: wait in the triggerer (default: Airflow's
        `[operators] default_deferrable`, True when unset).
    :param start_if_stopped: when False, never start the model: succeed if it is RUNNING, fail with
        what to do otherwise (for teams that run the model themselves). (templated)
    :param status_before_run: the model's status when this DAG run first looked at it (the DAG passes
        preflight's `model_status`). A retry of this task that finds the model RUNNING, when it was
        not running before the run, knows an earlier try started it, so the stop task still stops it. (templated)
    :param records_prefix: S3 folder of this run's model records (`<turn>/model/`, core.ownership). With
        it, whether this run owns the model is read from `ownership.json` (written once by preflight, or
        by this task's first try from `status_before_run`), never re-decided by a retry. (templated)
    :param owned_models_uri: the loop's folder of owned-model records (`<dataset>/owned-models/`): written
        before a start, removed by the stop task; the next preflight stops what a dead turn left. (templated)
    :param images_to_predict: how many images need a DetectCustomLabels call (preflight's `to_predict`):
        0 starts nothing (a rerun whose predictions are complete, only reusable or unusable images). (templated)
    """

    aws_hook_class = RekognitionCustomLabelsHook
    template_fields: Sequence[str] = aws_template_fields(
        "project_version_arn", "min_inference_units", "max_inference_units", "start_if_stopped",
        "status_before_run", "records_prefix", "owned_models_uri", "images_to_predict",
    )
    operator_extra_links = (RekognitionProjectVersionLink(),)
    ui_color = "#ffd8a8"

    def __init__(
        self,
        *,
        project_version_arn: str,
        min_inference_units: int | str = 1,
        max_inference_units: int | str | None = None,
        wait_for_completion: bool = True,
        waiter_delay: int = 30,
        waiter_max_attempts: int = 60,
        deferrable: bool = conf.getboolean("operators", "default_deferrable", fallback=True),
        start_if_stopped: bool | str = True,
        status_before_run: str | None = None,
        records_prefix: str | None = None,
        owned_models_uri: str | None = None,
        images_to_predict: int | str | None = None,
        **kwargs,
    ) -> None:
        super().__init__(**kwargs)
        self.project_version_arn = project_version_arn
        self.start_if_stopped = start_if_stopped
        self.status_before_run = status_before_run
        self.records_prefix = records_prefix
        self.owned_models_uri = owned_models_uri
        self.images_to_predict = images_to_predict
        self.min_inference_units = min_inference_units
        self.max_inference_units = max_inference_units
        self.wait_for_completion = wait_for_completion
        self.waiter_delay = waiter_delay
        self.waiter_max_attempts = waiter_max_attempts
        self.deferrable = deferrable

    def _units(self) -> tuple[int, int | None]:
        try:
            low = int(self.min_inference_units)
            high = None if self.max_inference_units in (None, "", "None") else int(self.max_inference_units)
        except (TypeError, ValueError):
            raise ValueError(f"min_inference_units/max_inference_units must be integers, got "
                             f"{self.min_inference_units!r}/{self.max_inference_units!r}") from None
        if low < 1 or (high is not None and high < low):
            raise ValueError(f"need 1 <= min_inference_units <= max_inference_units; got {low} and {high}")
        return low, high

    def _result(self, status: str, started: bool, requested_at: str | None,
                records: ModelRecords | None = None) -> dict:
        if records is not None and started and requested_at is None:
            requested_at = (records.start() or {}).get("start_requested_at")
        return {"project_version_arn": self.project_version_arn, "started_by_this_run": started,
                "status": status, "start_requested_at": requested_at,
                "running_at": _now() if status == "RUNNING" else None}

    def _records(self) -> ModelRecords | None:
        return None if _blank(self.records_prefix) else model_records(self, self.records_prefix, self.owned_models_uri)

    def _owned(self, records: ModelRecords | None, context: Context) -> bool | None:
        """This run's ownership, from its durable record; None without records (then: what this try did)."""
        if records is None:
            before = (self.status_before_run or "").strip().upper()
            return (bool(before) and before not in ownership.NOT_OURS) or None
        record = records.ownership()
        if record is None:  # no preflight wrote it (the operator used alone): this first try decides
            record = records.store.put_json_once(records.ownership_uri, ownership.decide(
                project_version_arn=self.project_version_arn, status_before_run=self.status_before_run
                or self.hook.get_project_version_status(self.project_version_arn),
                start_model=templated.as_bool(self.start_if_stopped, "start_if_stopped") is not False,
                run_id=context["run_id"]))
        return bool(record.get("owned"))

    def execute(self, context: Context) -> dict:
        arn = self.project_version_arn
        parse_project_version_arn(arn)  # a clear message for a malformed ARN before any call
        low, high = self._units()
        RekognitionProjectVersionLink.persist_for_arn(context, self, arn, self.hook.conn_region_name,
                                                      self.hook.conn_partition)
        records = self._records()
        owned = self._owned(records, context)
        status = self.hook.get_project_version_status(arn)
        self.log.info("Model %s is %s%s", arn, status, "" if owned is None else
                      f"; this run {'owns' if owned else 'does not own'} it")
        if not _blank(self.images_to_predict) and int(self.images_to_predict) == 0:
            self.log.info("No image needs DetectCustomLabels (predictions complete, reused or unusable): "
                          "not starting the model.")
            return self._result(status, bool(owned), None, records)
        if status == "RUNNING":
            if owned:
                # An earlier try of this task (or an earlier attempt of the run) started it.
                self.log.info("Running, and this run owns it (it was not running when the run began): "
                              "the stop task will stop it.")
                return self._result(status, True, None, records)
            self.log.info("Already running: nothing to start, and this run will not stop it.")
            return self._result(status, False, None, records)
        if templated.as_bool(self.start_if_stopped, "start_if_stopped") is False:
            raise AirflowException(
                f"Model {arn} is {status} and start_if_stopped (the DAG's start_model) is False: start it "
                "yourself (Rekognition console or StartProjectVersion) or trigger the run with start_model=true.")
        if status in _NOT_STARTABLE:
            raise AirflowException(f"Model {arn} {_NOT_STARTABLE[status]} (status {status}).")

        started, requested_at = False, None
        if status == "STOPPING":
            if self.deferrable:  # then execute again from the top: the model is STOPPED (or FAILED)
                defer_on_model(self, ProjectVersionStoppedTrigger, "execute_after_stopped", {})
            status = self.hook.wait_for_project_version(arn, "project_version_stopped", self.waiter_delay,
                                                        self.waiter_max_attempts)
        if status in STARTABLE:
            requested_at = _now()
            if records is not None:
                requested_at = records.record_start(arn, context["run_id"])["start_requested_at"]
            status = self.hook.start_project_version(arn, low, high)
            started = True
            self.log.info("Started model %s with %d inference unit(s)%s; status %s", arn, low,
                          f" (auto-scaling to {high})" if high else "", status)
        elif status != "STARTING":
            raise AirflowException(f"Model {arn} is {status}; cannot start it from that status.")
        elif owned:
            started = True
            self.log.info("Starting (an earlier try of this run started it); waiting. The stop task will stop it.")
        else:
            self.log.info("Another process is starting it; waiting. This run will not stop it.")

        if self.deferrable:
            defer_on_model(self, ProjectVersionRunningTrigger, "execute_complete",
                        {"started_by_this_run": started, "start_requested_at": requested_at})
        if self.wait_for_completion:
            self.hook.wait_for_project_version(arn, "project_version_running", self.waiter_delay,
                                               self.waiter_max_attempts)
            status = "RUNNING"
        return self._result(status, started, requested_at, records)

    def execute_after_stopped(self, context: Context, event: dict[str, Any] | None = None) -> dict:
        waited(self, event, "did not stop, so it cannot be started")
        return self.execute(context)

    def execute_complete(self, context: Context, event: dict[str, Any] | None = None,
                         started_by_this_run: bool | None = None, start_requested_at: str | None = None) -> dict:
        waited(self, event, "did not reach RUNNING")
        records = self._records()
        if records is not None:
            # The durable record, not the defer kwargs (dag.test drops them, a killed try loses them).
            started_by_this_run = self._owned(records, context)
        if started_by_this_run is None:
            # Defer kwargs are not carried by every runner (dag.test passes only the event): fall back
            # on what the model was when the run began.
            before = (self.status_before_run or "").strip().upper()
            started_by_this_run = bool(before) and before not in ("RUNNING", "STARTING")
        status = self.hook.get_project_version_status(self.project_version_arn)
        self.log.info("Model %s is %s", self.project_version_arn, status)
        return self._result(status, started_by_this_run, start_requested_at, records)
