"""Start and stop a Rekognition Custom Labels model (billed per inference-unit hour while running)."""

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
from rekfeedback.triggers.project_version import ProjectVersionRunningTrigger

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


def _model_records(operator: AwsBaseOperator, records_prefix: str, owned_models_uri: str | None) -> ModelRecords:
    from airflow.providers.amazon.aws.hooks.s3 import S3Hook

    s3 = S3Hook(aws_conn_id=operator.aws_conn_id, region_name=operator.region_name, verify=operator.verify,
                config=operator.botocore_config).conn
    return ModelRecords(LoopStore(s3), records_prefix, None if _blank(owned_models_uri) else owned_models_uri)


class RekognitionStartProjectVersionOperator(AwsBaseOperator[RekognitionCustomLabelsHook]):
    """Start a model (project version) unless it is already running, and wait until it is RUNNING.

    Already RUNNING is success; STARTING is waited for; STOPPING is waited out, then started.
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
        return None if _blank(self.records_prefix) else _model_records(self, self.records_prefix, self.owned_models_uri)

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
            status = self.hook.wait_for_status(arn, {"STOPPED"}, self.waiter_delay, self.waiter_max_attempts)
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
            ref = parse_project_version_arn(arn)
            self.defer(
                trigger=ProjectVersionRunningTrigger(
                    project_arn=self.hook.get_project_arn(ref.project_name), version_name=ref.version_name,
                    project_version_arn=arn, waiter_delay=self.waiter_delay,
                    waiter_max_attempts=self.waiter_max_attempts, aws_conn_id=self.aws_conn_id,
                    region_name=self.region_name, verify=self.verify, botocore_config=self.botocore_config,
                ),
                method_name="execute_complete",
                kwargs={"started_by_this_run": started, "start_requested_at": requested_at},
                timeout=timedelta(seconds=self.waiter_delay * self.waiter_max_attempts + 60),
            )
        if self.wait_for_completion:
            self.hook.wait_for_project_version(arn, "project_version_running", self.waiter_delay,
                                               self.waiter_max_attempts)
            status = "RUNNING"
        return self._result(status, started, requested_at, records)

    def execute_complete(self, context: Context, event: dict[str, Any] | None = None,
                         started_by_this_run: bool | None = None, start_requested_at: str | None = None) -> dict:
        event = validate_execute_complete_event(event)
        records = self._records()
        if records is not None:
            # The durable record, not the defer kwargs (dag.test drops them, a killed try loses them).
            started_by_this_run = self._owned(records, context)
        if started_by_this_run is None:
            # Defer kwargs are not carried by every runner (dag.test passes only the event): fall back
            # on what the model was when the run began.
            before = (self.status_before_run or "").strip().upper()
            started_by_this_run = bool(before) and before not in ("RUNNING", "STARTING")
        if event["status"] != "success":
            raise AirflowException(f"Model {self.project_version_arn} did not reach RUNNING: "
                                   f"{event.get('message', event)}")
        status = self.hook.get_project_version_status(self.project_version_arn)
        self.log.info("Model %s is %s", self.project_version_arn, status)
        return self._result(status, started_by_this_run, start_requested_at, records)


class RekognitionStopProjectVersionOperator(AwsBaseOperator[RekognitionCustomLabelsHook]):
    """Stop a model, by default only if this DAG run started it. Safe as a teardown task.

    Who started it is read, in this order, from: ``force=True`` (always stop);
    ``started_by_this_run`` (a bool or a template such as
    ``"{{ ti.xcom_pull('start_model')['started_by_this_run'] }}"``); the XCom of ``start_task_id``;
    and when none is given, the XCom of the DAG's RekognitionStartProjectVersionOperator task(s) for
    the same model. Without any of these it does not stop the model (never stop a model that
    something else relies on) and says so in the log.

    Already STOPPED / STOPPING / never started is success. Returns
    ``{"project_version_arn", "stopped": bool, "status", "reason", "running_seconds"}`` where
    `running_seconds` is how long the model ran for this DAG run (from the start task's XCom), or None.

    :param project_version_arn: the model's ARN. (templated)
    :param started_by_this_run: override of who started it. (templated)
    :param start_task_id: task id of the start task whose XCom says whether it started the model. (templated)
    :param force: stop even if this run did not start it.
    :param wait_for_completion: wait until STOPPED.
    :param waiter_delay: seconds between status checks.
    :param waiter_max_attempts: number of status checks.
    :param records_prefix: S3 folder of this run's model records (`<turn>/model/`, core.ownership): when
        it holds the run's ownership record, that decides (before any XCom), and the model hours count
        from the run's first start request. (templated)
    :param owned_models_uri: the loop's folder of owned-model records: this run's is removed once the
        model is stopped. (templated)
    """

    aws_hook_class = RekognitionCustomLabelsHook
    template_fields: Sequence[str] = aws_template_fields("project_version_arn", "started_by_this_run", "start_task_id",
                                                         "records_prefix", "owned_models_uri")
    operator_extra_links = (RekognitionProjectVersionLink(),)
    ui_color = "#ffd8a8"

    def __init__(
        self,
        *,
        project_version_arn: str,
        started_by_this_run: bool | str | None = None,
        start_task_id: str | None = None,
        force: bool = False,
        wait_for_completion: bool = True,
        waiter_delay: int = 10,
        waiter_max_attempts: int = 60,
        records_prefix: str | None = None,
        owned_models_uri: str | None = None,
        **kwargs,
    ) -> None:
        super().__init__(**kwargs)
        self.records_prefix = records_prefix
        self.owned_models_uri = owned_models_uri
        self.project_version_arn = project_version_arn
        self.started_by_this_run = started_by_this_run
        self.start_task_id = start_task_id
        self.force = force
        self.wait_for_completion = wait_for_completion
        self.waiter_delay = waiter_delay
        self.waiter_max_attempts = waiter_max_attempts

    def _start_task_ids(self) -> list[str]:
        if self.start_task_id:
            return [self.start_task_id]
        try:
            dag = self.dag
        except Exception:  # noqa: BLE001 - an operator outside a DAG (e.g. called directly)
            return []
        if dag is None:
            return []
        # Every start task of the DAG; _start_records keeps those whose XCom names this model.
        return [t.task_id for t in dag.tasks
                if isinstance(t, RekognitionStartProjectVersionOperator) and t.task_id != self.task_id]

    def _start_records(self, context: Context) -> list[dict]:
        ti = context.get("ti") if hasattr(context, "get") else None
        if ti is None:
            return []
        records = []
        for task_id in self._start_task_ids():
            value = ti.xcom_pull(task_ids=task_id)
            values = value if isinstance(value, list) else [value]
            records.extend(v for v in values if isinstance(v, dict) and "started_by_this_run" in v
                           and v.get("project_version_arn") in (None, self.project_version_arn))
        return records

    def _decide(self, context: Context) -> tuple[bool, str, list[dict]]:
        if self.force:
            return True, "force=True", []
        explicit = templated.as_bool(self.started_by_this_run, "started_by_this_run")
        if explicit is not None:
            return explicit, f"started_by_this_run={explicit}", []
        if not _blank(self.records_prefix):
            record = _model_records(self, self.records_prefix, self.owned_models_uri).ownership()
            if record is not None:
                owned = bool(record.get("owned"))
                return owned, (f"this run's ownership record: owned={owned} (the model was "
                               f"{record.get('status_before_run')} when the run began)"), []
        records = self._start_records(context)
        if records:
            started = any(r["started_by_this_run"] for r in records)
            return started, f"start task XCom: started_by_this_run={started}", records
        return False, ("no record that this DAG run started the model (no start task XCom; set start_task_id, "
                       "started_by_this_run or force=True to stop it)"), []

    def execute(self, context: Context) -> dict:
        arn = self.project_version_arn
        parse_project_version_arn(arn)
        RekognitionProjectVersionLink.persist_for_arn(context, self, arn, self.hook.conn_region_name,
                                                      self.hook.conn_partition)
        should_stop, reason, records = self._decide(context)
        status = self.hook.get_project_version_status(arn)
        result = {"project_version_arn": arn, "stopped": False, "status": status, "reason": reason,
                  "running_seconds": None}
        if not should_stop:
            self.log.info("Not stopping model %s (%s): %s", arn, status, reason)
            return result
        if status == "STARTING":
            # StopProjectVersion is refused while starting; wait for it to settle first.
            status = self.hook.wait_for_status(arn, {"RUNNING", "FAILED", "STOPPED"}, self.waiter_delay,
                                               self.waiter_max_attempts)
        if status == "RUNNING":
            status = self.hook.stop_project_version(arn)
            result["stopped"] = True
            self.log.info("Stopping model %s (%s); status %s", arn, reason, status)
        else:
            self.log.info("Model %s is %s: nothing to stop.", arn, status)
        if self.wait_for_completion and status == "STOPPING":
            status = self.hook.wait_for_status(arn, {"STOPPED"}, self.waiter_delay, self.waiter_max_attempts)
        result["status"] = status
        result["running_seconds"] = self._running_seconds(records) if result["stopped"] else None
        if not _blank(self.records_prefix):
            model_records = _model_records(self, self.records_prefix, self.owned_models_uri)
            if result["stopped"]:
                result["running_seconds"] = ownership.running_seconds(model_records.start()) \
                    or result["running_seconds"]
            if status in ("STOPPED", "STOPPING", "TRAINING_COMPLETED"):
                model_records.forget_owned(context["run_id"])  # nothing of ours is billing any more
        return result

    @staticmethod
    def _running_seconds(records: list[dict]) -> float | None:
        """Time the model ran for this DAG run: from RUNNING (or the start request) to now."""
        times = []
        for r in records:
            if not r.get("started_by_this_run"):
                continue
            stamp = r.get("start_requested_at") or r.get("running_at")
            if stamp:
                times.append(datetime.strptime(stamp, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=timezone.utc))
        if not times:
            return None
        return round((datetime.now(timezone.utc) - min(times)).total_seconds(), 1)
