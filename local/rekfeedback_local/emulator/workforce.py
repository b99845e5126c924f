"""The simulated Ground Truth workforce: works one labeling job in a background thread.

Over ``config.labeling_seconds`` it takes the input manifest's data objects one by one, has
``workers_per_object`` simulated workers answer each (answers from ``policy``, truth from the image's S3
user metadata ``truth``; with the ``annotators`` knob, a crew of different quality from which each
object's workers are drawn, each with a stable worker id), and writes Ground Truth's S3 output layout under ``<S3OutputPath>/<job-name>/``:

    annotations/worker-response/iteration-1/<datasetObjectId>/<timestamp>.json
    annotations/consolidated-annotation/consolidation-request/iteration-1/<timestamp>.json
    annotations/consolidated-annotation/consolidation-response/iteration-1/<timestamp>.json
    manifests/intermediate/1/output.manifest
    manifests/output/output.manifest

Custom tasks call the Lambda handlers registered for the job's ARNs with the events Lambda would get;
built-in tasks (AWS PRE-/ACS- ARNs) are consolidated like AWS's own functions (gt_builtin).
Consolidation runs in a few batches, so LabelCounters advance while the job is InProgress.
"""

from __future__ import annotations

import io
import json
import math
import threading

from rekfeedback.core.paths import parse_s3_uri
from rekfeedback_local.emulator import gt_builtin
from rekfeedback_local.emulator.base import EmulatorEnv
from rekfeedback_local.emulator.labeling_job import LabelingJob
from rekfeedback_local.emulator.lambda_registry import REGISTRY, LambdaRegistry
from rekfeedback_local.emulator.workforce_models import JobFailure, _BATCHES, _Object, _ObjectFailure, log
from rekfeedback_local.emulator.workforce_answers import WorkerAnswers
from rekfeedback_local.emulator.workforce_output import JobOutput

_CLOCK_POLL = 0.02  # seconds of wall time between looks at the emulator's clock while a job waits


def start(env: EmulatorEnv, job: LabelingJob, registry: LambdaRegistry = REGISTRY) -> threading.Thread:
    thread = threading.Thread(target=JobRun(env, job, registry).run, name=f"labeling-job-{job.name}", daemon=True)
    thread.start()
    return thread


class JobRun(WorkerAnswers, JobOutput):
    def __init__(self, env: EmulatorEnv, job: LabelingJob, registry: LambdaRegistry):
        self.env, self.job, self.registry = env, job, registry
        self.config = env.config
        self.request = job.request
        self.task_config = self.request["HumanTaskConfig"]
        self.prefix = job.output_prefix
        self.written: set[tuple[str, str]] = set()
        self._truth_cache: dict[str, dict | None] = {}

    # ---- the job's life -------------------------------------------------------------------------------

    def run(self) -> None:
        try:
            self._run()
        except JobFailure as err:
            self._fail(str(err))
        except Exception as err:  # noqa: BLE001 - a bug must not leave the job InProgress forever
            log.exception("labeling job %s crashed", self.job.name)
            self._fail(f"InternalServerError: {type(err).__name__}: {err}")

    def _run(self) -> None:
        seconds = max(0.0, float(self.config.labeling_seconds))
        if self.job.fail_injected:
            if self._wait(seconds * 0.2):
                return self._finish([], stopped=True)
            raise JobFailure("InternalServerError: The labeling job failed because of an internal error "
                             "(injected by the emulator's fail_labeling_jobs knob).")
        objects = [_Object(i, line) for i, line in enumerate(self._read_manifest())]
        self.labels, self.audit_attribute = self._read_label_categories()
        self.task = self._task_type()
        self.template = self._read_template()
        self.verdicts = gt_builtin.verdict_options(self.template) if self.task == gt_builtin.VERIFICATION \
            else gt_builtin.DEFAULT_VERDICTS
        if self._wait(seconds * 0.1):
            return self._finish(objects, stopped=True)
        self.job.update(self.env.clock(), status="InProgress", Unlabeled=len(objects))
        # Held jobs stay in progress until POST /_rekfeedback/config releases them: a test can then see the
        # wait deferred for as long as it needs, with no timing assumption.
        while self.config.hold_labeling_jobs:
            if self._wait(0.05):
                return self._finish(objects, stopped=True)
        step = seconds * 0.85 / max(1, len(objects))
        batch = max(1, math.ceil(len(objects) / _BATCHES))
        pending: list[_Object] = []
        for obj in objects:
            if self._wait(step):
                break
            self._work(obj)
            if obj.workers:
                pending.append(obj)
            elif obj.failure:
                self.job.update(self.env.clock(), Unlabeled=-1, FailedNonRetryableError=1)
            if len(pending) >= batch:
                self._consolidate(pending)
                pending = []
                self._write_manifest(objects, "manifests/intermediate/1/output.manifest")
        self._consolidate(pending)
        self._finish(objects, stopped=self.job.stop_requested.is_set())

    def _finish(self, objects: list[_Object], stopped: bool) -> None:
        uri = self._write_manifest(objects, "manifests/output/output.manifest")
        self._write_manifest(objects, "manifests/intermediate/1/output.manifest")
        done = [o for o in objects if o.result or o.failure or o.skipped]
        if not stopped and objects and all(o.failure for o in objects):
            raise JobFailure(f"ClientError: No data object was labeled. First error: {objects[0].failure}")
        if stopped:
            # Stopping is visible for a moment, as on AWS, even when the workforce stops at once.
            since = self.job.stop_requested_at or self.env.clock()
            self._sleep_until(since + float(self.config.stop_seconds))
            self.job.update(self.env.clock(), status="Stopped", output_uri=uri)
        else:
            self.job.update(self.env.clock(), status="Completed", output_uri=uri)
        log.info("labeling job %s %s: %d of %d objects done", self.job.name,
                 "stopped" if stopped else "completed", len(done), len(objects))

    def _fail(self, reason: str) -> None:
        self.job.update(self.env.clock(), status="Failed", failure_reason=reason)

    def _wait(self, seconds: float) -> bool:
        """Wait `seconds` on the emulator's clock, waking early on StopLabelingJob; True when a stop was requested.

        The emulator's clock, not the wall's: a test that moves it on (EmulatorEnv.advance_clock) sees the
        workforce take the next step, however slowly the machine runs.
        """
        deadline = self.env.clock() + max(0.0, seconds)
        while (remaining := deadline - self.env.clock()) > 0:
            if self.job.stop_requested.wait(min(remaining, _CLOCK_POLL)):
                return True
        return self.job.stop_requested.is_set()

    def _sleep_until(self, deadline: float) -> None:
        """Wait until `deadline` on the emulator's clock (a stop request does not cut this one short)."""
        while (remaining := deadline - self.env.clock()) > 0:
            threading.Event().wait(min(remaining, _CLOCK_POLL))

    # ---- inputs ---------------------------------------------------------------------------------------

    def _read_manifest(self) -> list[dict]:
        uri = self.request["InputConfig"]["DataSource"].get("S3DataSource", {}).get("ManifestS3Uri")
        if not uri:
            raise JobFailure("ClientError: The emulator supports S3DataSource input manifests only.")
        text = self._read_text(uri, "input manifest")
        lines = []
        for number, raw in enumerate(text.splitlines(), start=1):
            if not raw.strip():
                continue
            try:
                line = json.loads(raw)
            except json.JSONDecodeError as err:
                raise JobFailure(f"ClientError: Input manifest {uri} line {number} is not valid JSON: {err}")
            if not isinstance(line, dict) or not ("source-ref" in line or "source" in line):
                raise JobFailure(f"ClientError: Input manifest {uri} line {number} has neither "
                                 "'source-ref' nor 'source'.")
            lines.append(line)
        if not lines:
            raise JobFailure(f"ClientError: Input manifest {uri} has no data objects.")
        return lines

    def _read_label_categories(self) -> tuple[list[str], str | None]:
        uri = self.request.get("LabelCategoryConfigS3Uri")
        if not uri:
            return [], None
        text = self._read_text(uri, "label category configuration file")
        try:
            doc = json.loads(text)
            labels = [entry["label"] for entry in doc["labels"]]
        except (json.JSONDecodeError, KeyError, TypeError) as err:
            raise JobFailure(f"ClientError: Label category configuration file {uri} must be JSON like "
                             f'{{"document-version": "2018-11-28", "labels": [{{"label": "..."}}]}}: {err}')
        if len(set(labels)) != len(labels):
            raise JobFailure(f"ClientError: Label category configuration file {uri} has duplicate labels.")
        return labels, doc.get("auditLabelAttributeName")

    def _read_template(self) -> str | None:
        uri = (self.task_config.get("UiConfig") or {}).get("UiTemplateS3Uri")
        try:
            return self._read_text(uri, "UI template") if uri else None
        except JobFailure:
            return None

    def _task_type(self) -> str | None:
        return gt_builtin.builtin_task(self.task_config.get("PreHumanTaskLambdaArn"), self.env.region) or \
            gt_builtin.builtin_task(self._consolidation_arn(), self.env.region)

    def _consolidation_arn(self) -> str | None:
        return (self.task_config.get("AnnotationConsolidationConfig") or {}).get("AnnotationConsolidationLambdaArn")

    def _read_text(self, uri: str, what: str) -> str:
        try:
            loc = parse_s3_uri(uri, what)
            return self.env.s3().get_object(Bucket=loc.bucket, Key=loc.key)["Body"].read().decode("utf-8")
        except ValueError as err:
            raise JobFailure(f"ClientError: {err}")
        except Exception as err:  # noqa: BLE001 - any S3 error ends the job, named
            raise JobFailure(f"ClientError: Failed to read the {what} {uri}: {err}")

    def _truth(self, source_ref: str | None) -> dict | None:
        """The synthetic image's truth from its S3 user metadata; None when unknown (the oracle then accepts)."""
        if not source_ref:
            return None
        if source_ref not in self._truth_cache:
            truth = None
            try:
                loc = parse_s3_uri(source_ref)
                meta = self.env.s3().head_object(Bucket=loc.bucket, Key=loc.key).get("Metadata") or {}
                truth = json.loads(meta["truth"]) if "truth" in meta else None
            except Exception:  # noqa: BLE001 - a worker who cannot see the image has no truth either
                truth = None
            self._truth_cache[source_ref] = truth
        return self._truth_cache[source_ref]

    def _image_size(self, line: dict, prior: str | None) -> tuple[int, int, int]:
        if prior and (line.get(prior) or {}).get("image_size"):
            size = line[prior]["image_size"][0]
            return int(size["width"]), int(size["height"]), int(size.get("depth", 3))
        if line.get("width") and line.get("height"):
            return int(line["width"]), int(line["height"]), 3
        try:
            from PIL import Image

            loc = parse_s3_uri(line.get("source-ref", ""))
            data = self.env.s3().get_object(Bucket=loc.bucket, Key=loc.key)["Body"].read()
            with Image.open(io.BytesIO(data)) as img:
                return img.width, img.height, len(img.getbands())
        except Exception as err:  # noqa: BLE001
            raise _ObjectFailure(f"ClientError: Cannot read image {line.get('source-ref')}: {err}")

    # ---- one data object ------------------------------------------------------------------------------


    # ---- consolidation --------------------------------------------------------------------------------


    # ---- outputs --------------------------------------------------------------------------------------


