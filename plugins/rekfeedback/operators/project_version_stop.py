"""Stop a Rekognition Custom Labels model, by default only if this DAG run started it (a teardown task)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

from airflow.providers.amazon.aws.operators.base_aws import AwsBaseOperator
from airflow.providers.amazon.aws.utils.mixins import aws_template_fields
from airflow.providers.common.compat.sdk import conf

from rekfeedback.core import ownership, templated
from rekfeedback.hooks.rekognition import RekognitionCustomLabelsHook, parse_project_version_arn
from rekfeedback.links.rekognition import RekognitionProjectVersionLink
from rekfeedback.operators.project_version import (
    RekognitionStartProjectVersionOperator, defer_on_model, model_records, waited)
from rekfeedback.triggers.project_version import ProjectVersionSettledTrigger, ProjectVersionStoppedTrigger

if TYPE_CHECKING:
    from airflow.sdk import Context

_blank = templated.is_blank


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
    :param deferrable: wait in the triggerer (default: Airflow's `[operators] default_deferrable`, True
        when unset): for a STARTING model to settle (StopProjectVersion is refused while starting) and
        for STOPPED.
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
        deferrable: bool = conf.getboolean("operators", "default_deferrable", fallback=True),
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
        self.deferrable = deferrable

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
            record = model_records(self, self.records_prefix, self.owned_models_uri).ownership()
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
            # StopProjectVersion is refused while starting; wait for it to settle, then decide again.
            if self.deferrable:
                defer_on_model(self, ProjectVersionSettledTrigger, "execute_after_settled", {})
            status = self.hook.wait_for_project_version(arn, "project_version_settled", self.waiter_delay,
                                                        self.waiter_max_attempts)
        if status == "RUNNING":
            status = self.hook.stop_project_version(arn)
            result["stopped"] = True
            self.log.info("Stopping model %s (%s); status %s", arn, reason, status)
        else:
            self.log.info("Model %s is %s: nothing to stop.", arn, status)
        if self.wait_for_completion and status == "STOPPING":
            if self.deferrable:
                defer_on_model(self, ProjectVersionStoppedTrigger, "execute_complete", {"result": result, "records": records})
            status = self.hook.wait_for_project_version(arn, "project_version_stopped", self.waiter_delay,
                                                        self.waiter_max_attempts)
        return self._finish(context, result, status, records)

    def execute_after_settled(self, context: Context, event: dict[str, Any] | None = None) -> dict:
        waited(self, event, "did not settle after STARTING, so it cannot be stopped")
        return self.execute(context)

    def execute_complete(self, context: Context, event: dict[str, Any] | None = None, result: dict | None = None,
                         records: list[dict] | None = None) -> dict:
        waited(self, event, "did not reach STOPPED")
        if result is None:  # a runner that drops defer kwargs: only a stop this task asked for defers here
            should_stop, reason, records = self._decide(context)
            result = {"project_version_arn": self.project_version_arn, "stopped": should_stop, "reason": reason,
                      "running_seconds": None}
        return self._finish(context, result, self.hook.get_project_version_status(self.project_version_arn),
                            records or [])

    def _finish(self, context: Context, result: dict, status: str, records: list[dict]) -> dict:
        result["status"] = status
        result["running_seconds"] = self._running_seconds(records) if result["stopped"] else None
        if not _blank(self.records_prefix):
            records_of_run = model_records(self, self.records_prefix, self.owned_models_uri)
            if result["stopped"]:
                result["running_seconds"] = ownership.running_seconds(records_of_run.start()) \
                    or result["running_seconds"]
            if status in ("STOPPED", "STOPPING", "TRAINING_COMPLETED"):
                records_of_run.forget_owned(context["run_id"])  # nothing of ours is billing any more
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
