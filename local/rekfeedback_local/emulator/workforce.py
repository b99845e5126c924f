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

import datetime as dt
import hashlib
import io
import json
import logging
import math
import os
import random
import threading
from dataclasses import dataclass, field

from rekfeedback.core.paths import parse_s3_uri
from rekfeedback_local.emulator import crowd_template, gt_builtin, policy
from rekfeedback_local.emulator.base import EmulatorEnv
from rekfeedback_local.emulator.labeling_job import LabelingJob
from rekfeedback_local.emulator.lambda_registry import REGISTRY, LambdaRegistry

log = logging.getLogger(__name__)

EVENT_VERSION = "2018-10-16"
CUSTOM_TYPE = "groundtruth/custom"
EXPIRED_REASON = "ClientError: The worker task expired before any worker submitted an annotation."
_BATCHES = 4  # consolidation batches per job, so counters move while the job runs


class JobFailure(Exception):
    """The whole job fails; the message becomes its FailureReason."""


@dataclass
class _Object:
    index: int
    line: dict
    workers: list[dict] = field(default_factory=list)  # answers in the worker-response format
    result: tuple | None = None  # (value, metadata) once consolidated
    failure: str | None = None
    skipped: bool = False  # pre-annotation Lambda said no human annotation is required
    size: tuple = (0, 0, 3)  # width, height, depth of a box task's image
    initial: list = field(default_factory=list)  # boxes under review (adjustment, verification)
    members: list = field(default_factory=list)  # the annotators (policy.Annotator) who answered it

    @property
    def id(self) -> str:
        return str(self.index)


def start(env: EmulatorEnv, job: LabelingJob, registry: LambdaRegistry = REGISTRY) -> threading.Thread:
    thread = threading.Thread(target=JobRun(env, job, registry).run, name=f"labeling-job-{job.name}", daemon=True)
    thread.start()
    return thread


class JobRun:
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
        """Sleep, waking early on StopLabelingJob; True when a stop was requested."""
        return self.job.stop_requested.wait(max(0.0, seconds))

    def _sleep_until(self, deadline: float) -> None:
        remaining = deadline - self.env.clock()
        if remaining > 0:
            threading.Event().wait(remaining)

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

    def _work(self, obj: _Object) -> None:
        rng = random.Random(f"{self.config.seed}:{self.job.name}:{obj.index}")
        if rng.random() < float(self.config.unlabelled_share):
            obj.failure = EXPIRED_REASON
            return
        obj.members = self._members(rng)
        try:
            if self.task:
                contents = self._builtin_answers(obj, rng)
            else:
                contents = self._custom_answers(obj, rng)
        except _ObjectFailure as err:
            obj.failure = str(err)
            return
        if contents is None:
            obj.skipped = True
            return
        submitted = math.ceil(self.env.clock() * 1000) / 1000
        for worker, content in enumerate(contents):
            # Workers accept the task after the job was created and submit it now, as on AWS (the
            # worker-response reference shows acceptanceTime <= submissionTime, both within the job).
            accepted = self.job.created + (submitted - self.job.created) * worker / (len(contents) + 1)
            accepted = math.ceil(accepted * 1000) / 1000  # written to the millisecond: never before the job
            obj.workers.append({
                "acceptanceTime": _iso_z(accepted),
                "answerContent": content,
                "submissionTime": _iso_z(submitted),
                "timeSpentInSeconds": round(submitted - accepted, 3),
                "workerId": self._worker_id(worker, obj.members[worker].name if self.crew else None),
                "workerMetadata": {"identityData": {
                    "identityProviderType": "Cognito",
                    "issuer": f"https://cognito-idp.{self.env.region}.amazonaws.com/{self.env.region}_Emulated1",
                    "sub": _uuid_like(f"{self.job.name}:{worker}"),
                }},
            })
        self._put_json(f"annotations/worker-response/iteration-1/{obj.id}/{self._stamp(obj.id)}.json",
                       {"answers": obj.workers})

    def _workers_per_object(self) -> int:
        return int(self.config.workers_per_object or self.task_config["NumberOfHumanWorkersPerDataObject"])

    @property
    def crew(self) -> list[policy.Annotator]:
        if not hasattr(self, "_crew"):
            self._crew = policy.parse_crew(self.config.annotators)
        return self._crew

    def _members(self, rng: random.Random) -> list[policy.Annotator]:
        """Who answers this object: drawn from the crew when one is set, else the workforce knobs for all."""
        n = self._workers_per_object()
        if self.crew:
            return policy.assign(self.crew, n, rng)
        return [policy.Annotator(f"worker-{k}", self.config.workforce_policy, float(self.config.error_rate))
                for k in range(n)]

    def _custom_answers(self, obj: _Object, rng: random.Random) -> list[dict] | None:
        pre_arn = self.task_config.get("PreHumanTaskLambdaArn")
        task_input = obj.line
        if pre_arn:
            event = {"version": EVENT_VERSION, "labelingJobArn": self.job.arn, "dataObject": obj.line}
            response = self._invoke(pre_arn, event, "pre-annotation")
            if not isinstance(response, dict) or not isinstance(response.get("taskInput"), dict):
                raise _ObjectFailure(f"ClientError: The pre-annotation Lambda {pre_arn} returned no taskInput "
                                     f"object for data object {obj.id}: {str(response)[:200]}")
            required = response.get("isHumanAnnotationRequired", response.get("humanAnnotationRequired", True))
            if str(required).lower() == "false":
                return None
            task_input = response["taskInput"]
        try:
            form = crowd_template.parse(self.template, task_input) if self.template else None
        except ValueError as err:
            raise _ObjectFailure(f"ClientError: {err}")
        if form is not None and not form.posts_one_json_field:
            return self._template_answers(form, task_input, obj.members, rng)
        images = task_input.get("images")
        if not isinstance(images, list):
            # A task about the data object itself (no batch of images).
            images = [{"source-ref": task_input.get("source-ref") or obj.line.get("source-ref"),
                       "predicted": task_input.get("predicted") or obj.line.get("predicted") or []}]
        labels = list(task_input.get("labels") or self.labels)
        answers = []
        for member in obj.members:
            verdicts = []
            for image in images:
                names = [p.get("name", p.get("Name")) if isinstance(p, dict) else str(p)
                         for p in image.get("predicted") or []]
                answer = member.answer(self._truth(image.get("source-ref")), {"labels": names}, rng, labels)
                verdicts.append(policy.verification_answer(image.get("source-ref"), names, answer))
            # The crowd form posts one hidden field named "answer" holding the JSON (team contract).
            answers.append({"answer": json.dumps({"images": verdicts}, separators=(",", ":"))})
        return answers

    def _template_answers(self, form: "crowd_template.Form", task_input: dict, members: list, rng: random.Random) -> list[dict]:
        """Anyone's custom template: each worker answers the crowd elements it holds, by their names."""
        labels = list(task_input.get("labels") or self.labels)
        predicted = {img.get("source-ref"): [p.get("name", p.get("Name")) if isinstance(p, dict) else str(p)
                                             for p in img.get("predicted") or []]
                     for img in task_input.get("images") or [] if isinstance(img, dict)}
        sizes: dict = {}

        def size_of(uri):
            if uri not in sizes:
                sizes[uri] = self._image_size({"source-ref": uri}, None)[:2] if uri else (0, 0)
            return sizes[uri]

        answers = []
        for member in members:
            seen: dict = {}  # one worker's belief per image, whatever number of elements ask about it

            def believe(uri, member=member, seen=seen):
                if uri not in seen:
                    seen[uri] = member.answer(self._truth(uri), {"labels": predicted.get(uri, [])}, rng, labels,
                                              size_of(uri) if uri else None)
                return seen[uri]
            answers.append(crowd_template.answer(form, believe, size_of, labels))
        return answers

    def _builtin_answers(self, obj: _Object, rng: random.Random) -> list[dict]:
        prior = gt_builtin.find_prior_attribute(obj.line, self.request["LabelAttributeName"], self.audit_attribute) \
            if self.task in (gt_builtin.ADJUSTMENT, gt_builtin.VERIFICATION) else None
        if self.task in (gt_builtin.ADJUSTMENT, gt_builtin.VERIFICATION) and not prior:
            raise _ObjectFailure("ClientError: The data object has no bounding-box label attribute to "
                                 f"{'adjust' if self.task == gt_builtin.ADJUSTMENT else 'verify'}.")
        initial = gt_builtin.prior_boxes(obj.line, prior) if prior else []
        size = self._image_size(obj.line, prior) if self.task in gt_builtin.BOX_TASKS else (0, 0, 3)
        obj.size, obj.initial = size, initial
        truth = self._truth(obj.line.get("source-ref"))
        predicted = {"labels": sorted({b["label"] for b in initial}), "boxes": initial}
        if self.task in (gt_builtin.SINGLE_LABEL, gt_builtin.MULTI_LABEL) and truth is not None:
            truth = {"labels": policy.normalize(truth)["labels"]}  # classification: no boxes to draw
        return [gt_builtin.worker_content(self.task, member.answer(truth, predicted, rng, self.labels, size[:2]),
                                          self.labels, rng, size=size[:2], initial=initial, verdicts=self.verdicts)
                for member in obj.members]

    # ---- consolidation --------------------------------------------------------------------------------

    def _consolidate(self, objects: list[_Object]) -> None:
        if not objects:
            return
        stamp = self._stamp("consolidation")
        request = [{
            "datasetObjectId": o.id,
            "dataObject": {"s3Uri": o.line["source-ref"]} if "source-ref" in o.line else {"content": o.line["source"]},
            "annotations": [{"workerId": w["workerId"],
                             "annotationData": {"content": json.dumps(w["answerContent"], separators=(",", ":"))}}
                            for w in o.workers],
        } for o in objects]
        request_uri = self._put_json(f"annotations/consolidated-annotation/consolidation-request/iteration-1/{stamp}.json",
                                     request)
        if self.task:
            response = self._builtin_consolidation(objects)
        elif self._consolidation_arn():
            try:
                response = self._custom_consolidation(request_uri)
            except _ObjectFailure as err:
                for o in objects:
                    o.failure = str(err)
                self.job.update(self.env.clock(), FailedNonRetryableError=len(objects), Unlabeled=-len(objects))
                return
        else:
            response = None  # documented: no post-Lambda -> {} plus worker-response-ref
        if response is not None:
            self._put_json(f"annotations/consolidated-annotation/consolidation-response/iteration-1/{stamp}.json",
                           response)
        self._apply(objects, response)

    def _builtin_consolidation(self, objects: list[_Object]) -> list[dict]:
        attribute = self.request["LabelAttributeName"]
        response = []
        for o in objects:
            value, meta = gt_builtin.consolidate(
                self.task, [w["answerContent"] for w in o.workers], self.labels, job_name=self.job.name,
                creation_date=_creation_date(self.env.clock()), size=o.size, initial=o.initial,
                verdicts=self.verdicts)
            o.result = (value, meta)
            response.append({"datasetObjectId": o.id, "consolidatedAnnotation": {"content": {attribute: value}}})
        return response

    def _custom_consolidation(self, request_uri: str) -> list:
        arn = self._consolidation_arn()
        event = {
            "version": EVENT_VERSION,
            "labelingJobArn": self.job.arn,
            "labelCategories": list(self.labels) if self.request.get("LabelCategoryConfigS3Uri") else None,
            "labelAttributeName": self.request["LabelAttributeName"],
            "roleArn": self.request["RoleArn"],
            "payload": {"s3Uri": request_uri},
            "outputConfig": f"{self.prefix}/annotations",
        }
        if self.request["OutputConfig"].get("KmsKeyId"):
            event["kmsKeyId"] = self.request["OutputConfig"]["KmsKeyId"]
        response = self._invoke(arn, event, "annotation-consolidation")
        if isinstance(response, str):
            response = json.loads(response)
        if not isinstance(response, list):
            raise _ObjectFailure(f"ClientError: The annotation-consolidation Lambda {arn} must return a list, "
                                 f"got {type(response).__name__}")
        return response

    def _apply(self, objects: list[_Object], response: list | None) -> None:
        attribute = self.request["LabelAttributeName"]
        by_id = {}
        for item in response or []:
            if isinstance(item, dict) and "datasetObjectId" in item:
                by_id[str(item["datasetObjectId"])] = item
        labeled = failed = 0
        for o in objects:
            if self.task:
                labeled += 1
                continue
            if response is None:
                ref = f"{self.prefix}/annotations/worker-response/iteration-1/{o.id}/"
                o.result = ({}, {**self._custom_metadata(), "worker-response-ref": ref})
                labeled += 1
                continue
            content = ((by_id.get(o.id) or {}).get("consolidatedAnnotation") or {}).get("content")
            if not isinstance(content, dict) or attribute not in content:
                o.failure = (f"ClientError: The annotation-consolidation Lambda returned no "
                             f"consolidatedAnnotation.content.{attribute} for datasetObjectId {o.id}.")
                failed += 1
                continue
            o.result = (content[attribute], self._custom_metadata())
            labeled += 1
        self.job.update(self.env.clock(), HumanLabeled=labeled, FailedNonRetryableError=failed,
                        Unlabeled=-(labeled + failed))

    def _custom_metadata(self) -> dict:
        return {"type": CUSTOM_TYPE, "job-name": self.job.name, "human-annotated": "yes",
                "creation-date": _creation_date(self.env.clock())}

    def _invoke(self, arn: str, event: dict, what: str):
        # Lambda code reaches AWS through this endpoint, as a deployed function reaches the real one.
        for var, value in (("AWS_ENDPOINT_URL", self.env.endpoint_url), ("AWS_DEFAULT_REGION", self.env.region),
                           ("AWS_ACCESS_KEY_ID", "testing"), ("AWS_SECRET_ACCESS_KEY", "testing")):
            os.environ.setdefault(var, value)
        try:
            return self.registry.invoke(arn, json.loads(json.dumps(event)), self.config.lambdas)
        except LookupError as err:
            raise _ObjectFailure(f"ClientError: Cannot invoke the {what} Lambda: {err}")
        except Exception as err:  # noqa: BLE001 - a failing Lambda fails its data objects, as on AWS
            log.exception("%s Lambda %s failed", what, arn)
            raise _ObjectFailure(f"ClientError: The {what} Lambda {arn} failed: {type(err).__name__}: {err}")

    # ---- outputs --------------------------------------------------------------------------------------

    def _write_manifest(self, objects: list[_Object], key: str) -> str:
        attribute = self.request["LabelAttributeName"]
        lines = []
        for o in objects:
            line = dict(o.line)
            if o.result is not None:
                line[attribute], line[f"{attribute}-metadata"] = o.result
            elif o.failure:
                line.pop(attribute, None)
                line[f"{attribute}-metadata"] = {
                    "retry-count": 1, "failure-reason": o.failure[:1024], "human-annotated": "yes",
                    "job-name": self.job.name if not self.task else f"labeling-job/{self.job.name}",
                    "creation-date": _creation_date(self.env.clock())}
            lines.append(json.dumps(line, separators=(",", ":")))
        return self._put(key, ("\n".join(lines) + "\n").encode())

    def _put_json(self, key: str, doc) -> str:
        return self._put(key, json.dumps(doc, separators=(",", ":")).encode())

    def _put(self, key: str, body: bytes) -> str:
        uri = f"{self.prefix}/{key}"
        loc = parse_s3_uri(uri, "S3OutputPath")
        try:
            self.env.s3().put_object(Bucket=loc.bucket, Key=loc.key, Body=body)
        except Exception as err:  # noqa: BLE001
            raise JobFailure(f"ClientError: Failed to write {uri} (check S3OutputPath and its bucket): {err}")
        return uri

    def _stamp(self, folder: str = "") -> str:
        """Ground Truth names these files `%Y-%m-%d_%H:%M:%S` by the second of the batch (sms-data-output):
        a second batch in the same emulated second is dated the next free second, never suffixed, so code
        that parses the names (AWS's object-detection notebook does) reads every file."""
        second = int(self.env.clock())
        while (folder, second) in self.written:
            second += 1
        self.written.add((folder, second))
        return dt.datetime.fromtimestamp(second, dt.timezone.utc).strftime("%Y-%m-%d_%H:%M:%S")

    def _worker_id(self, worker: int, name: str | None = None) -> str:
        # One id per crew member across objects (as a real worker's sub), else per worker slot.
        digest = hashlib.sha1(f"{self.task_config['WorkteamArn']}:{name if name else worker}".encode()).hexdigest()
        crowd = "public" if "/public-crowd/" in self.task_config["WorkteamArn"] else "private"
        return f"{crowd}.{self.env.region}.{digest[:16]}"


class _ObjectFailure(Exception):
    """One data object fails (FailedNonRetryableError); the message is its failure-reason."""


def _creation_date(ts: float) -> str:
    return dt.datetime.fromtimestamp(ts, dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%f")


def _iso_z(ts: float) -> str:
    return dt.datetime.fromtimestamp(ts, dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def _uuid_like(seed: str) -> str:
    h = hashlib.sha1(seed.encode()).hexdigest()
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:32]}"
