"""The champion steps of a turn: the promotion gate, the optional human approval, the record, keep_versions.

The logic lives in `rekfeedback.core.champion` and `core.champion_approval`; the champion record
(`<output_uri>/<dag_id>/dataset/champion.json`) is `hooks/champion_record.py`; these operators order the
steps and call Rekognition through the hook.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta, timezone
from typing import TYPE_CHECKING, Any

from airflow.providers.amazon.aws.hooks.s3 import S3Hook
from airflow.providers.amazon.aws.links.base_aws import BaseAwsLink
from airflow.providers.amazon.aws.operators.base_aws import AwsBaseOperator
from airflow.providers.amazon.aws.utils.mixins import aws_template_fields
from airflow.providers.standard.operators.hitl import HITLOperator
from botocore.exceptions import ClientError

from rekfeedback.core import champion as core
from rekfeedback.core.champion_approval import APPROVE, REJECT, asset_extra, final_decision, promotion
from rekfeedback.core.paths import parse_s3_uri
from rekfeedback.core.templated import as_bool, as_dict, as_float, as_int
from rekfeedback.hooks.rekognition import RekognitionCustomLabelsHook
from rekfeedback.hooks.champion_record import ChampionRecord
from rekfeedback.links.s3 import TurnReportLink
from rekfeedback.operators.asset_events import add_asset_extra

if TYPE_CHECKING:
    from airflow.sdk import Context



def _now() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


class _ChampionOperator(AwsBaseOperator[RekognitionCustomLabelsHook]):
    aws_hook_class = RekognitionCustomLabelsHook
    ui_color = "#fff3bf"

    def _store(self, uri: str) -> ChampionRecord:
        s3 = S3Hook(aws_conn_id=self.aws_conn_id, region_name=self.region_name, verify=self.verify,
                    config=self.botocore_config)
        return ChampionRecord(s3, uri)


class ChampionGateOperator(_ChampionOperator):
    """Decide whether this turn's challenger may replace the champion, and say why.

    Checks (core.champion.gate): the challenger's F1 is at least ``min_f1``, beats the champion's
    by more than ``improvement_margin``, no label's F1 drops by more than ``max_label_regression``,
    and both were evaluated on the same TEST images (else "not like with like", refused). Without a
    challenger (training off, or skipped under ``min_new_labels``) it records why. Writes nothing:
    ``champion.record`` writes the decision, after the approval when one is required.

    Returns ``{"decision", "reasons", "checks", "needs_approval", "approval_body", "comparison",
    "new_verified_images", "served_by", "champion_arn", "test_sets", "timeline"}``.
    """

    template_fields: Sequence[str] = aws_template_fields(
        "training_result", "merge_summary", "champion_record_uri", "champion_arn", "served_by", "train",
        "improvement_margin", "max_label_regression", "min_f1", "min_new_labels", "require_approval", "report_uri",
    )

    def __init__(self, *, training_result: Any, merge_summary: Any, champion_record_uri: str, champion_arn: str | None,
                 served_by: str | None = None, train: Any = True, improvement_margin: Any = 0.0,
                 max_label_regression: Any = 0.05, min_f1: Any = 0.0, min_new_labels: Any = None,
                 require_approval: Any = False, report_uri: str | None = None, **kwargs) -> None:
        super().__init__(**kwargs)
        self.training_result = training_result
        self.merge_summary = merge_summary
        self.champion_record_uri = champion_record_uri
        self.champion_arn = champion_arn
        self.served_by = served_by
        self.train = train
        self.improvement_margin = improvement_margin
        self.max_label_regression = max_label_regression
        self.min_f1 = min_f1
        self.min_new_labels = min_new_labels
        self.require_approval = require_approval
        self.report_uri = report_uri

    def execute(self, context: Context) -> dict:
        settings = core.Gate(
            improvement_margin=as_float(self.improvement_margin, "improvement_margin", 0.0, minimum=0, maximum=1),
            max_label_regression=as_float(self.max_label_regression, "max_label_regression", 0.0, minimum=0, maximum=1),
            min_f1=as_float(self.min_f1, "min_f1", 0.0, minimum=0, maximum=1))
        run = str(context["run_id"])
        record = self._store(self.champion_record_uri).read()
        comparison = as_dict(self.training_result, "training_result")
        merge = as_dict(self.merge_summary, "merge_summary") or {}
        new_verified = int(((merge.get("answers") or {}).get("applied_human")) or 0)
        out: dict[str, Any] = {"served_by": self.served_by, "champion_arn": self.champion_arn,
                               "new_verified_images": new_verified, "needs_approval": False, "approval_body": None,
                               "checks": [], "test_sets": {}, "comparison": None}
        if comparison is None or not comparison.get("new_version_arn"):
            since = core.verified_since_champion(record, exclude_run=run)
            trains, why = core.should_train(as_int(self.min_new_labels, "min_new_labels", minimum=0), since, new_verified)
            if as_bool(self.train, "train", True) and not trains:
                out.update(decision=core.TRAINING_SKIPPED, reasons=[why])
            else:
                out.update(decision=core.NOT_TRAINED, reasons=["no challenger this turn (train is off)"])
        else:
            store = self._store(self.champion_record_uri)
            test_sets = {"champion": store.test_set(self.hook, comparison.get("base_version_arn"), self.log),
                         "challenger": store.test_set(self.hook, comparison["new_version_arn"], self.log)}
            verdict = core.gate(comparison, settings, champion_test_set=test_sets["champion"],
                                challenger_test_set=test_sets["challenger"])
            keys = ("new_version_arn", "base_version_arn", "f1_before", "f1_after", "delta", "per_label")
            out.update(decision=core.PROMOTED if verdict["promote"] else core.KEPT, reasons=verdict["reasons"],
                       checks=verdict["checks"], test_sets=test_sets, comparison={k: comparison.get(k) for k in keys})
            if verdict["promote"] and as_bool(self.require_approval, "require_approval", False):
                out["needs_approval"] = True
                counts = {"new human-verified images": new_verified, "images in the dataset": merge.get("manifest_lines"),
                          "testing images": comparison.get("testing_images"),
                          "training images": comparison.get("training_images")}
                out["approval_body"] = core.approval_markdown(comparison, verdict, counts=counts,
                                                              report_uri=self.report_uri,
                                                              report_url=self._console_url(self.report_uri))
        pending = core.record_turn(record, run=run, at=_now(), served_by=self.served_by, seed_arn=self.champion_arn,
                                   decision=out["decision"] + (" (awaiting approval)" if out["needs_approval"] else ""),
                                   reasons=out["reasons"], comparison=comparison, new_verified_images=new_verified,
                                   test_sets=out["test_sets"])
        out["timeline"] = core.timeline(pending)
        for reason in out["reasons"]:
            self.log.info("Champion gate: %s", reason)
        return out

    def _console_url(self, uri: str | None) -> str | None:
        """The report in the S3 console, for the approver to click."""
        if not uri:
            return None
        loc = parse_s3_uri(uri, "report_uri")
        return TurnReportLink().format_link(bucket=loc.bucket, key=loc.key, region_name=self.hook.conn_region_name,
                                            aws_domain=BaseAwsLink.get_aws_domain(self.hook.conn_partition)) or None

class ChampionApprovalOperator(HITLOperator):
    """Ask a person to approve the promotion (Airflow's Required Actions); waits without a worker slot.

    Options Approve / Reject; the timeout answer is Reject (``champion.record`` applies
    ``approval_timeout_action``, keep by default). ``timeout_hours`` is templated, unlike
    HITLOperator's ``response_timeout``, so the Trigger form sets it.
    """

    template_fields: Sequence[str] = (*HITLOperator.template_fields, "timeout_hours")
    ui_color = "#fff3bf"

    def __init__(self, *, timeout_hours: Any = 24, **kwargs) -> None:
        kwargs.setdefault("options", [APPROVE, REJECT])
        kwargs.setdefault("defaults", [REJECT])
        super().__init__(**kwargs)
        self.timeout_hours = timeout_hours

    def execute(self, context: Context):
        hours = as_float(self.timeout_hours, "approval_timeout_hours", minimum=0)
        self.response_timeout = timedelta(hours=hours) if hours else None
        return super().execute(context)


class ChampionRecordOperator(_ChampionOperator):
    """Write the turn's decision into the champion record (promoting the challenger if it won) and emit it.

    Returns ``{"decision", "reasons", "promoted", "champion", "previous_champion", "timeline",
    "record_uri"}``; the record's summary is also the extra of this task's asset event.
    """

    template_fields: Sequence[str] = aws_template_fields(
        "gate", "approval", "champion_record_uri", "approval_timeout_action")

    def __init__(self, *, gate: Any, champion_record_uri: str, approval: Any = None,
                 approval_timeout_action: str = "keep", **kwargs) -> None:
        super().__init__(**kwargs)
        self.gate = gate
        self.approval = approval
        self.champion_record_uri = champion_record_uri
        self.approval_timeout_action = approval_timeout_action

    def execute(self, context: Context) -> dict:
        gate = as_dict(self.gate, "gate")
        if gate is None:
            raise ValueError("gate (the champion.gate task's result) is required")
        decision, reasons = final_decision(gate, as_dict(self.approval, "approval"), self.approval_timeout_action)
        store = self._store(self.champion_record_uri)
        comparison = gate.get("comparison") or {}
        record = core.record_turn(store.read(), run=str(context["run_id"]), at=_now(), served_by=gate.get("served_by"),
                                  seed_arn=gate.get("champion_arn"), decision=decision, reasons=reasons,
                                  comparison=comparison, new_verified_images=gate.get("new_verified_images") or 0,
                                  test_sets=gate.get("test_sets"))
        store.write(record)
        champion = record["champion"]
        promoted, previous = promotion(record, comparison, str(context["run_id"]))
        for reason in reasons:
            self.log.info("Champion: %s", reason)
        self.log.info("Champion %s (since %s): %s", champion["project_version_arn"], champion["since"], store.uri)
        add_asset_extra(context, self.outlets, asset_extra(champion, decision, str(store.uri)), self.log)
        return {"decision": decision, "reasons": reasons, "promoted": promoted, "champion": champion,
                "previous_champion": previous, "timeline": core.timeline(record),
                "record_uri": str(store.uri)}


class ChampionPruneOperator(_ChampionOperator):
    """keep_versions: delete losing challengers beyond the newest N (DeleteProjectVersion).

    Only versions the record lists as created by this loop; never the champion or an earlier
    champion, never a RUNNING, starting, stopping or training version (core.champion.versions_to_delete).
    Blank ``keep_versions`` deletes nothing. Returns ``{"deleted": [arn, ...], "keep_versions"}``.
    """

    template_fields: Sequence[str] = aws_template_fields("champion_record_uri", "keep_versions", "project_version_arn")

    def __init__(self, *, champion_record_uri: str, project_version_arn: str, keep_versions: Any = None,
                 **kwargs) -> None:
        super().__init__(**kwargs)
        self.champion_record_uri = champion_record_uri
        self.project_version_arn = project_version_arn
        self.keep_versions = keep_versions

    def execute(self, context: Context) -> dict:
        keep = as_int(self.keep_versions, "keep_versions", minimum=0)
        if keep is None:
            self.log.info("keep_versions is blank: no version is deleted.")
            return {"deleted": [], "keep_versions": None}
        store = self._store(self.champion_record_uri)
        record = store.read()
        project_arn = self.hook.project_arn_for_version(str(self.project_version_arn))
        statuses = {d["ProjectVersionArn"]: d["Status"] for d in self.hook.list_project_versions(project_arn)}
        deleted = []
        for arn, why in core.versions_to_delete(record, statuses, keep):
            try:
                self.hook.delete_project_version(arn)
            except ClientError as exc:  # e.g. started by someone between our look and the call
                self.log.warning("Not deleting %s: %s", arn, exc)
                continue
            self.log.info("Deleted model version %s: %s", arn, why)
            deleted.append(arn)
        if deleted:
            store.write(core.mark_deleted(record, deleted, _now()))
        return {"deleted": deleted, "keep_versions": keep}
