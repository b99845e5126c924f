"""Waits for Ground Truth labeling jobs and collects their answers: the sensor IS the collect step.

When every job has ended, the sensor parses the jobs' output manifests into normalized answers
(docs/data-formats.md) at `answers_uri`, so the merge never reads Ground Truth's formats. Each
answer is joined to its review item (`review/items.jsonl`, written by the review operator).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from airflow.providers.amazon.aws.hooks.s3 import S3Hook
from airflow.providers.amazon.aws.sensors.base_aws import AwsBaseSensor
from airflow.providers.amazon.aws.utils import validate_execute_complete_event
from airflow.providers.amazon.aws.utils.mixins import aws_template_fields
from airflow.sdk import PokeReturnValue
from airflow.sdk.exceptions import AirflowException, AirflowFailException
from airflow.providers.common.compat.sdk import conf

from rekfeedback.core import consensus as consensuslib
from rekfeedback.core import ground_truth as gt
from rekfeedback.core import ground_truth_jobs as gtjobs
from rekfeedback.core import ground_truth_workers as gtw
from rekfeedback.core import review
from rekfeedback.core.collected import collected
from rekfeedback.core.paths import parse_s3_uri
from rekfeedback.hooks.ground_truth import GroundTruthHook
from rekfeedback.hooks.s3_artifacts import S3Artifacts
from rekfeedback.links.ground_truth import LabelingJobLink, LabelingJobOutputLink
from rekfeedback.links.presigned import AnswersFileLink
from rekfeedback.triggers.ground_truth import GroundTruthLabelingJobTrigger

if TYPE_CHECKING:
    from airflow.sdk import Context


class GroundTruthLabelingJobSensor(AwsBaseSensor[GroundTruthHook]):
    """Wait until Ground Truth labeling jobs end, then write their answers as normalized answers.

    Deferrable by default (the wait runs in the triggerer; no worker slot is held while humans
    work); `deferrable=False` polls in `mode="poke"` or `mode="reschedule"`. A Failed job fails the
    task with its FailureReason; a Stopped job fails it too unless `allow_stopped`, in which case
    the answers obtained so far are collected. LabelCounters are logged at every poll; `timeout`
    (seconds) bounds the whole wait in every mode.

    On success it writes `answers_uri` (the same bytes on a rerun), lists objects that got no usable
    answer next to it (`*.unresolved.jsonl`, with the reason) and returns
    `{"answers_uri", "unresolved_uri", "counts": {"answers", "unresolved", "jobs", "human_labeled",
    "failed_objects"}, "jobs": [{"name", "status", "label_counters"}]}`.

    :param job_names: a job name, a list of names, or the operator's `jobs` XCom (list of dicts with `name`).
        Empty: nothing to wait for; an empty answers file is written.
    :param answers_uri: where to write the normalized answers (the operator's `answers_uri`).
    :param items_uri: the turn's review items (the operator's `items_uri`); default
        `<turn>/review/items.jsonl` of the turn `answers_uri` is in.
    :param allow_stopped: accept Stopped jobs with partial results.
    :param iou_threshold: IoU from which a final box counts as the predicted box (confirmed/adjusted).
    :param agreement_threshold: with several workers per object, an answer whose agreement is below
        this stays pending: written to `*.pending.jsonl` beside `answers_uri` (for the review round),
        never to the answers the merge reads. Box answers are consolidated from the workers' own
        responses by `core.consensus` (Ground Truth's built-in consolidation hides disagreement).
    :param reviewed: the review round's wait: every answer is recorded as reviewed (final).
    """

    aws_hook_class = GroundTruthHook
    template_fields: Sequence[str] = aws_template_fields("job_names", "answers_uri", "items_uri", "agreement_threshold")
    operator_extra_links = (LabelingJobLink(), LabelingJobOutputLink(), AnswersFileLink())
    ui_color = "#e8d5f5"

    def __init__(self, *, job_names: str | list, answers_uri: str, items_uri: str | None = None,
                 allow_stopped: bool = False,
                 iou_threshold: float = 0.5, agreement_threshold: float = consensuslib.DEFAULT_THRESHOLD, reviewed: bool = False,
                 deferrable: bool = conf.getboolean("operators", "default_deferrable", fallback=True),
                 poke_interval: float = 60,
                 timeout: float = 7 * 24 * 3600, **kwargs: Any) -> None:
        super().__init__(poke_interval=poke_interval, timeout=timeout, **kwargs)
        self.job_names = job_names
        self.answers_uri = answers_uri
        self.items_uri = items_uri
        self.allow_stopped = allow_stopped
        self.iou_threshold = iou_threshold
        self.agreement_threshold = agreement_threshold
        self.reviewed = reviewed
        self.deferrable = deferrable

    # --- inputs -------------------------------------------------------------------------------

    def _names(self) -> list[str]:
        value = self.job_names
        if isinstance(value, str):
            value = json.loads(value) if value.strip().startswith("[") else [value]
        names = []
        for i, job in enumerate(value or []):
            name = job.get("name") if isinstance(job, dict) else job
            if not isinstance(name, str) or not gtjobs.JOB_NAME_RE.fullmatch(name):
                raise AirflowFailException(f"job_names[{i}] is not a labeling job name: {job!r}")
            names.append(name)
        return names

    # --- state --------------------------------------------------------------------------------

    def _describe_all(self, names: list[str]) -> list[dict]:
        out = []
        for name in names:
            desc = self.hook.describe_labeling_job(name)
            if desc is None:
                raise AirflowFailException(f"labeling job {name} does not exist; check job_names")
            out.append(desc)
        return out

    def _check(self, descriptions: list[dict]) -> bool:
        """True when every job has ended acceptably; raise for a job that ended badly."""
        done = True
        for d in descriptions:
            status = d.get("LabelingJobStatus")
            self.log.info("labeling job %s: %s, LabelCounters %s", d["LabelingJobName"], status,
                          d.get("LabelCounters"))
            if status == "Failed":
                raise AirflowFailException(f"labeling job {d['LabelingJobName']} failed: "
                                           f"{d.get('FailureReason') or 'no FailureReason given'}. Fix the cause, "
                                           "then clear the review task (and this one): it redoes the job under a "
                                           "new name for the same items, without new predictions")
            if status == "Stopped" and not self.allow_stopped:
                raise AirflowFailException(f"labeling job {d['LabelingJobName']} was stopped "
                                           f"({d.get('FailureReason') or 'StopLabelingJob'}); set allow_stopped=True "
                                           "to collect its partial results")
            if status not in ("Completed", "Stopped"):
                done = False
        return done

    def poke(self, context: Context) -> PokeReturnValue | bool:
        names = self._names()
        descriptions = self._describe_all(names)
        if not self._check(descriptions):
            return False
        return PokeReturnValue(is_done=True, xcom_value=self._collect(descriptions))

    def execute(self, context: Context) -> Any:
        names = self._names()
        self._persist_links(context, names)
        AnswersFileLink.persist(context, self, self.answers_uri)  # signed now, opens once the answers are written
        if not names:
            return self._collect([])
        if not self.deferrable:
            return super().execute(context)
        descriptions = self._describe_all(names)
        if self._check(descriptions):
            return self._collect(descriptions)
        self.defer(
            trigger=GroundTruthLabelingJobTrigger(
                job_names=names, allow_stopped=self.allow_stopped, waiter_delay=int(self.poke_interval),
                waiter_max_attempts=max(1, int(self.timeout // max(1, self.poke_interval)) + 1),
                aws_conn_id=self.aws_conn_id, region_name=self.region_name, verify=self.verify,
                botocore_config=self.botocore_config),
            method_name="execute_complete",
            timeout=timedelta(seconds=self.timeout),
        )

    def execute_complete(self, context: Context, event: dict[str, Any] | None = None) -> dict:
        event = validate_execute_complete_event(event)
        names = self._names()
        descriptions = self._describe_all(names)
        if event.get("status") != "success":
            # The job's own FailureReason says more than the waiter's message: re-check to raise with it.
            self._check(descriptions)
            raise AirflowException(f"waiting for labeling jobs failed: {event.get('message')}")
        if not self._check(descriptions):
            raise AirflowException(f"trigger reported success but not every job has ended: {names}")
        return self._collect(descriptions)

    # --- collect ------------------------------------------------------------------------------

    def _s3(self) -> S3Hook:
        return S3Hook(aws_conn_id=self.aws_conn_id, region_name=self.region_name, verify=self.verify,
                      config=self.botocore_config)

    def _read(self, s3: S3Hook, uri: str | None) -> str | None:
        if not uri:
            return None
        return S3Artifacts(s3).read_text(parse_s3_uri(uri, "S3 URI"), missing_ok=True)

    def _collect(self, descriptions: list[dict]) -> dict:
        """Parse every job's output manifest and write the normalized answers (idempotent)."""
        try:
            target = parse_s3_uri(self.answers_uri, "answers_uri")
            items_loc = self.items_uri or review.items_uri_beside(self.answers_uri)
            parse_s3_uri(items_loc, "items_uri")
        except ValueError as err:
            raise AirflowFailException(str(err)) from err
        s3 = self._s3()
        items = self._items(s3, items_loc) if descriptions else {}
        answers, unresolved, jobs = [], [], []
        human_labeled = failed = 0
        for d in descriptions:
            name = d["LabelingJobName"]
            counters = d.get("LabelCounters") or {}
            human_labeled += int(counters.get("HumanLabeled") or 0)
            failed += int(counters.get("FailedNonRetryableError") or 0)
            jobs.append({"name": name, "status": d.get("LabelingJobStatus"), "label_counters": counters})
            output_uri = GroundTruthHook.output_manifest_uri(d)
            text = self._read(s3, output_uri)
            if text is None:
                if d.get("LabelingJobStatus") == "Completed":
                    raise AirflowException(f"labeling job {name} completed but its output manifest {output_uri} "
                                           "is missing; retry later (output can lag)")
                self.log.warning("stopped labeling job %s wrote no output manifest", name)
                continue
            workers = int((d.get("HumanTaskConfig") or {}).get("NumberOfHumanWorkersPerDataObject") or 1)
            fallback = d.get("LastModifiedTime") or d.get("CreationTime")
            try:
                worker_answers = self._worker_answers(s3, d, workers)
                a, u = gt.parse_output_manifest(text, job_name=name, label_attribute=d["LabelAttributeName"],
                                                workers=workers, items=items,
                                                answered_at_fallback=fallback, iou_threshold=self.iou_threshold,
                                                agreement_threshold=float(self.agreement_threshold),
                                                worker_answers=worker_answers)
            except (ValueError, KeyError, TypeError) as err:
                raise AirflowFailException(f"cannot read the output manifest {output_uri} of {name}: {err!r}") from err
            self.log.info("labeling job %s: %d answers, %d without a usable answer", name, len(a), len(u))
            answers.extend(a)
            unresolved.extend(u)
        files, uris, counts = collected(str(target), answers, unresolved, reviewed=self.reviewed)
        store = S3Artifacts(s3)
        for uri, text in files.items():
            store.write_text(parse_s3_uri(uri), text)
        if counts["pending"]:
            self.log.warning("%d answers below agreement_threshold %s are pending another review (%s)",
                             counts["pending"], self.agreement_threshold, uris["pending_uri"])
        return {**uris, "counts": {**counts, "jobs": len(descriptions), "human_labeled": human_labeled,
                                   "failed_objects": failed},
                "jobs": jobs}

    def _items(self, s3: S3Hook, uri: str) -> dict[str, dict]:
        text = self._read(s3, uri)
        if text is None:
            raise AirflowFailException(f"the turn's review items {uri} are missing; clear the review task: it writes "
                                       "them (and reuses its labeling jobs)")
        try:
            return review.read_items(text, uri)
        except ValueError as err:
            raise AirflowFailException(str(err)) from err

    def _worker_answers(self, s3: S3Hook, d: dict, workers: int) -> dict | None:
        """source-ref -> each worker's answer, for built-in box jobs answered by several workers."""
        kind = gt.KIND_OF_ATTRIBUTE.get(d["LabelAttributeName"])
        base = (d.get("OutputConfig") or {}).get("S3OutputPath")
        if workers <= 1 or kind not in (gt.ADJUST_BOXES, gt.LABEL_BOXES) or not base:
            return None
        # Worker responses are numbered by the input manifest's line: read it for that order only.
        manifest_uri = (((d.get("InputConfig") or {}).get("DataSource") or {}).get("S3DataSource") or {}).get(
            "ManifestS3Uri")
        input_text = self._read(s3, manifest_uri)
        if not input_text:
            return None
        prefix = parse_s3_uri(gtw.response_prefix(base, d["LabelingJobName"]), "S3OutputPath")
        keys = s3.list_keys(bucket_name=prefix.bucket, prefix=prefix.key) or []
        refs = gtw.input_refs(input_text)
        out = {}
        for index, key in sorted(gtw.latest_responses(keys).items()):
            if index < len(refs) and refs[index]:
                out[refs[index]] = gtw.box_answers(s3.read_key(key, prefix.bucket), f"s3://{prefix.bucket}/{key}")
        return out

    def _persist_links(self, context: Context, names: list[str]) -> None:
        if not names:
            return
        region, partition = self.hook.conn_region_name, self.hook.conn_partition
        LabelingJobLink.persist(context=context, operator=self, region_name=region, aws_partition=partition,
                                job_name=names[0])
        desc = self.hook.describe_labeling_job(names[0]) or {}
        base = (desc.get("OutputConfig") or {}).get("S3OutputPath")
        if base:
            out = parse_s3_uri(base, "S3OutputPath")
            LabelingJobOutputLink.persist(context=context, operator=self, region_name=region,
                                          aws_partition=partition, bucket=out.bucket, prefix=out.key)
