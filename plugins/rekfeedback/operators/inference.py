"""Batch DetectCustomLabels over the images of a prefix or a manifest: fast, resumable, nothing lost."""

from __future__ import annotations

from collections.abc import Sequence
from functools import cached_property
from typing import TYPE_CHECKING, Any

from airflow.providers.amazon.aws.hooks.s3 import S3Hook
from airflow.providers.amazon.aws.operators.base_aws import AwsBaseOperator
from airflow.providers.amazon.aws.utils.mixins import aws_template_fields
from airflow.sdk.exceptions import AirflowException
from botocore.config import Config
from botocore.exceptions import ClientError

from rekfeedback.core import predictions as preds
from rekfeedback.core.imagesize import probe_image
from rekfeedback.core.inference_engine import ImageTask, InferenceAborted, InferenceEngine, TooManyFailures
from rekfeedback.core.paths import S3Uri, parse_s3_uri, shard_part_name
from rekfeedback.core.throughput import AdaptiveLimiter
from rekfeedback.hooks.rekognition import RekognitionCustomLabelsHook, parse_project_version_arn
from rekfeedback.links.rekognition import RekognitionProjectVersionLink
from rekfeedback.links.s3 import S3OutputLink

if TYPE_CHECKING:
    from airflow.sdk import Context

_MISSING = {"NoSuchKey", "404", "NotFound"}


class S3RangeReader:
    """`read_range` for core.imagesize over one S3 object; learns the object's size from Content-Range."""

    def __init__(self, s3, bucket: str, key: str):
        self.s3, self.bucket, self.key = s3, bucket, key
        self.total_size: int | None = None

    def __call__(self, start: int, end: int) -> bytes:
        try:
            resp = self.s3.get_object(Bucket=self.bucket, Key=self.key, Range=f"bytes={start}-{end - 1}")
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") == "InvalidRange":
                self.total_size = self.total_size if self.total_size is not None else (0 if start == 0 else None)
                return b""  # past the end (or an empty object)
            raise
        content_range = resp.get("ContentRange") or ""
        if "/" in content_range and not content_range.endswith("/*"):
            self.total_size = int(content_range.rsplit("/", 1)[1])
        elif not content_range:
            self.total_size = resp.get("ContentLength")  # the server sent the whole object
        return resp["Body"].read()


def _as_list(value: Any) -> list[str]:
    if value in (None, "", "None", "[]"):
        return []
    if isinstance(value, str):
        return [value]
    return [str(v) for v in value if v not in (None, "", "None")]


class RekognitionCustomLabelsInferenceOperator(AwsBaseOperator[RekognitionCustomLabelsHook]):
    """Run a Custom Labels model over images and write one prediction line per image to S3.

    Input is either every .jpg/.jpeg/.png object under ``input_prefix`` or the ``source-ref`` of every
    line of ``input_manifest``; images named in ``exclude_manifests`` (earlier turns' manifests; a
    missing one is skipped, as on the first turn) are not sent. With ``shard_index``/``shard_count``
    (e.g. ``.partial(...).expand(shard_index=[0, 1, 2, 3])``) each task takes the images whose stable
    hash of source-ref falls in its shard: disjoint shards covering every image.

    Output: ``<output_prefix>/predictions/part-XXXXX-of-YYYYY.jsonl`` (docs/data-formats.md), with a
    checkpoint next to it, so a retried task never calls DetectCustomLabels again for an image done.
    Returns the summary ``{"output_uri", "images_total", "images_skipped", "predicted", "failed",
    "no_prediction", "labels", "calls", "throttles", "errors", "resumed", "shard_index", "shard_count"}``
    (`labels`: images per label; `calls`/`throttles`: this attempt's DetectCustomLabels calls).

    :param project_version_arn: the running model. (templated)
    :param output_prefix: the turn prefix, s3://bucket/prefix. (templated)
    :param input_prefix: s3://bucket/prefix of the images. (templated)
    :param input_manifest: s3:// URI of a manifest listing the images instead. (templated)
    :param exclude_manifests: S3 URIs of manifests whose images are skipped. (templated)
    :param shard_index: this task's shard, 0 <= shard_index < shard_count. (templated)
    :param shard_count: number of shards. (templated)
    :param min_confidence: DetectCustomLabels MinConfidence (0-100; None = the model's thresholds). (templated)
    :param max_results: DetectCustomLabels MaxResults. (templated)
    :param max_failed_share: fail the task when more than this share of images failed. (templated)
    :param max_concurrency: most DetectCustomLabels calls in flight.
    :param initial_rate: calls per second to start probing from; the limit adapts to the model.
    :param max_rate: never exceed this many calls per second (None: no cap but the model's).
    :param checkpoint_every: checkpoint after this many newly finished images ...
    :param checkpoint_interval: ... or after this many seconds, whichever comes first.
    :param progress_interval: seconds between progress log lines.
    :param extensions: object name extensions taken from ``input_prefix``. (templated)
    """

    aws_hook_class = RekognitionCustomLabelsHook
    template_fields: Sequence[str] = aws_template_fields(
        "project_version_arn", "output_prefix", "input_prefix", "input_manifest", "exclude_manifests",
        "shard_index", "shard_count", "min_confidence", "max_results", "max_failed_share", "extensions",
    )
    operator_extra_links = (RekognitionProjectVersionLink(), S3OutputLink())
    ui_color = "#ffe8cc"

    def __init__(
        self,
        *,
        project_version_arn: str,
        output_prefix: str,
        input_prefix: str | None = None,
        input_manifest: str | None = None,
        exclude_manifests: Sequence[str] | str | None = None,
        shard_index: int | str = 0,
        shard_count: int | str = 1,
        min_confidence: float | str | None = None,
        max_results: int | str | None = None,
        max_failed_share: float | str = 0.05,
        max_concurrency: int = 32,
        initial_rate: float = 10.0,
        max_rate: float | None = None,
        checkpoint_every: int = 500,
        checkpoint_interval: float = 30.0,
        progress_interval: float = 30.0,
        extensions: Sequence[str] = preds.IMAGE_EXTENSIONS,
        **kwargs,
    ) -> None:
        super().__init__(**kwargs)
        self.project_version_arn = project_version_arn
        self.output_prefix = output_prefix
        self.input_prefix = input_prefix
        self.input_manifest = input_manifest
        self.exclude_manifests = exclude_manifests
        self.shard_index = shard_index
        self.shard_count = shard_count
        self.min_confidence = min_confidence
        self.max_results = max_results
        self.max_failed_share = max_failed_share
        self.max_concurrency = max_concurrency
        self.initial_rate = initial_rate
        self.max_rate = max_rate
        self.checkpoint_every = checkpoint_every
        self.checkpoint_interval = checkpoint_interval
        self.progress_interval = progress_interval
        self.extensions = extensions

    # --- clients ------------------------------------------------------------------------------
    def _config(self, retries: dict) -> Config:
        mine = Config(max_pool_connections=int(self.max_concurrency) + 8, retries=retries)
        base = self.botocore_config
        return Config(**base).merge(mine) if isinstance(base, dict) else mine

    @cached_property
    def detect_client(self):
        # No botocore retries: throttling must reach the adaptive limiter, and each retry is counted.
        hook = RekognitionCustomLabelsHook(aws_conn_id=self.aws_conn_id, region_name=self.region_name,
                                           verify=self.verify, config=self._config({"total_max_attempts": 1,
                                                                                    "mode": "standard"}))
        return hook.conn

    @cached_property
    def s3(self):
        return S3Hook(aws_conn_id=self.aws_conn_id, region_name=self.region_name, verify=self.verify,
                      config=self._config({"max_attempts": 5, "mode": "standard"})).conn

    # --- parameters ---------------------------------------------------------------------------
    def _detect_options(self) -> dict:
        options: dict = {}
        if self.min_confidence not in (None, "", "None"):
            value = float(self.min_confidence)
            if not 0 <= value <= 100:
                raise ValueError(f"min_confidence must be between 0 and 100, got {self.min_confidence!r}")
            options["MinConfidence"] = value
        if self.max_results not in (None, "", "None"):
            value = int(self.max_results)
            if value < 0:
                raise ValueError(f"max_results must be >= 0, got {self.max_results!r}")
            options["MaxResults"] = value
        return options

    def _check_model_running(self) -> None:
        try:
            status = self.hook.get_project_version_status(self.project_version_arn)
        except ClientError as exc:
            raise AirflowException(f"Cannot describe model {self.project_version_arn}: {exc}") from exc
        if status != "RUNNING":
            raise AirflowException(
                f"Model {self.project_version_arn} is {status}, not RUNNING, so it cannot answer "
                "DetectCustomLabels. Start it first (RekognitionStartProjectVersionOperator upstream of this task, "
                "or `aws rekognition start-project-version --project-version-arn <arn> --min-inference-units 1`), "
                "wait until it is RUNNING, then clear this task."
            )

    # --- S3 -----------------------------------------------------------------------------------
    def _read_text(self, uri: S3Uri) -> str | None:
        try:
            return self.s3.get_object(Bucket=uri.bucket, Key=uri.key)["Body"].read().decode("utf-8")
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in _MISSING:
                return None
            raise

    def _put_lines(self, uri: S3Uri, lines: list[dict]) -> None:
        self.s3.put_object(Bucket=uri.bucket, Key=uri.key, Body=preds.dumps_jsonl(lines).encode("utf-8"),
                           ContentType="application/x-ndjson")

    def _list_images(self) -> list[ImageTask]:
        if bool(self.input_prefix) == bool(self.input_manifest):
            raise ValueError("give exactly one of input_prefix (s3://bucket/prefix of images) and "
                             f"input_manifest (s3:// URI of a manifest); got {self.input_prefix!r} and "
                             f"{self.input_manifest!r}")
        if self.input_manifest:
            uri = parse_s3_uri(self.input_manifest, "input_manifest")
            text = self._read_text(uri)
            if text is None:
                raise AirflowException(f"input_manifest {uri} does not exist; check the URI.")
            return [ImageTask(ref) for ref in preds.source_refs_from_manifest(text, f"input_manifest {uri}")]
        uri = parse_s3_uri(self.input_prefix, "input_prefix")
        extensions = _as_list(self.extensions)
        tasks, other = [], 0
        for page in self.s3.get_paginator("list_objects_v2").paginate(Bucket=uri.bucket, Prefix=uri.key):
            for obj in page.get("Contents", []):
                key = obj["Key"]
                if key.endswith("/"):
                    continue
                if preds.has_image_extension(key, extensions):
                    tasks.append(ImageTask(f"s3://{uri.bucket}/{key}", obj.get("Size")))
                else:
                    other += 1
        if other:
            self.log.info("Ignored %d object(s) under %s without an image extension (%s)", other, uri,
                          ", ".join(extensions))
        return tasks

    def _exclusions(self) -> set[str]:
        texts = []
        for raw in _as_list(self.exclude_manifests):
            uri = parse_s3_uri(raw, "exclude_manifests entry")
            text = self._read_text(uri)
            if text is None:
                self.log.info("Exclude manifest %s does not exist (yet; normal on the first turn): skipped", uri)
                continue
            texts.append((str(uri), text))
        return preds.exclusion_set(texts)

    # --- run ----------------------------------------------------------------------------------
    def execute(self, context: Context) -> dict:
        arn = self.project_version_arn
        parse_project_version_arn(arn)
        shard_index, shard_count = preds.validate_shard(self.shard_index, self.shard_count)
        options = self._detect_options()
        max_failed_share = float(self.max_failed_share)
        turn = parse_s3_uri(self.output_prefix, "output_prefix")
        part = shard_part_name(shard_index, shard_count)
        output = turn.join("predictions", f"{part}.jsonl")
        checkpoint = turn.join("predictions", f"{part}.checkpoint.jsonl")
        region, partition = self.hook.conn_region_name, self.hook.conn_partition
        RekognitionProjectVersionLink.persist_for_arn(context, self, arn, region, partition)
        S3OutputLink.persist_uri(context, self, str(output), region, partition)

        self._check_model_running()
        listed = self._list_images()
        shard = [t for t in listed if preds.shard_of(t.source_ref, shard_count) == shard_index]
        done: list[dict] = []
        for uri in (output, checkpoint):  # a finished earlier try, then a partial one
            text = self._read_text(uri)
            if text:
                done.extend(preds.read_jsonl(text, f"previous output {uri}"))
        # What an earlier try of this run predicted stays in this turn, even if that try's merge has
        # since put it in the cumulative manifest: a rerun redoes its own turn from the saved lines.
        excluded = self._exclusions() - {line.get("source-ref") for line in done}
        todo = [t for t in shard if t.source_ref not in excluded]
        skipped = len(shard) - len(todo)
        self.log.info("Shard %d of %d: %d of %d images; %d already labelled or unusable (excluded); %d to predict",
                      shard_index, shard_count, len(shard), len(listed), skipped, len(todo))

        s3, rek = self.s3, self.detect_client

        def probe(task: ImageTask):
            ref = parse_s3_uri(task.source_ref, "source-ref")
            return probe_image(S3RangeReader(s3, ref.bucket, ref.key), size=task.size)

        def detect(task: ImageTask, _probe) -> dict:
            ref = parse_s3_uri(task.source_ref, "source-ref")
            return rek.detect_custom_labels(ProjectVersionArn=arn, Image={"S3Object": {"Bucket": ref.bucket,
                                                                                        "Name": ref.key}}, **options)

        engine = InferenceEngine(
            probe=probe, detect=detect, model=arn,
            limiter=AdaptiveLimiter(initial_rate=self.initial_rate, max_rate=self.max_rate or 10_000.0,
                                    max_concurrency=int(self.max_concurrency)),
            max_workers=int(self.max_concurrency),
            checkpoint=lambda lines: self._put_lines(checkpoint, lines),
            checkpoint_every=self.checkpoint_every, checkpoint_interval=self.checkpoint_interval,
            progress_interval=self.progress_interval, max_failed_share=max_failed_share, log=self.log,
        )
        failure: TooManyFailures | None = None
        try:
            result = engine.run(todo, done=done)
        except InferenceAborted as exc:
            what = ("the model stopped running during the run" if exc.code == "ResourceNotReadyException"
                    else "the model cannot be used")
            raise AirflowException(
                f"Inference stopped: {what} ({exc.code}: {exc.message}). {exc.done} of {exc.total} images are "
                f"done and checkpointed in {checkpoint}. Make sure the model is RUNNING (start it with "
                "RekognitionStartProjectVersionOperator) and clear this task: it resumes without repeating them."
            ) from exc
        except TooManyFailures as exc:
            failure, result = exc, exc.result
        self._put_lines(output, result.lines)
        summary = preds.summarize(result.lines)
        xcom = {
            "output_uri": str(output),
            "images_total": len(shard),
            "images_skipped": skipped,
            "predicted": summary["predicted"],
            "failed": summary["failed"],
            "no_prediction": summary["no_prediction"],
            "labels": summary["labels"],
            "calls": result.calls,
            "throttles": result.throttles,
            "errors": summary["errors"],
            "resumed": result.resumed,
            "shard_index": shard_index,
            "shard_count": shard_count,
        }
        self.log.info("Wrote %d prediction lines to %s: %s", len(result.lines), output, xcom)
        if failure is not None:
            raise AirflowException(f"{failure} Predictions written to {output}.")
        return xcom
