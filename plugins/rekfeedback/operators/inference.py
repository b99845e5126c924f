"""Batch DetectCustomLabels over the images of a prefix or a manifest: fast, resumable, nothing lost."""

from __future__ import annotations

from collections.abc import Sequence
from functools import cached_property
from typing import TYPE_CHECKING

from airflow.providers.amazon.aws.hooks.s3 import S3Hook
from airflow.providers.amazon.aws.operators.base_aws import AwsBaseOperator
from airflow.providers.amazon.aws.utils.mixins import aws_template_fields
from airflow.sdk.exceptions import AirflowException, AirflowFailException
from botocore.config import Config
from botocore.exceptions import ClientError

from rekfeedback.core import templated
from rekfeedback.core import predictions as preds
from rekfeedback.core.inference_engine import InferenceAborted, InferenceEngine, TooManyFailures
from rekfeedback.core.inference_run import check_settings, shard_summary
from rekfeedback.core.paths import parse_s3_uri, shard_part_name
from rekfeedback.core.throughput import classify_code
from rekfeedback.hooks.inference_inputs import ShardInputs
from rekfeedback.hooks.s3_range import S3RangeReader  # noqa: F401 (public here)
from rekfeedback.hooks.rekognition import RekognitionCustomLabelsHook, parse_project_version_arn
from rekfeedback.links.rekognition import RekognitionProjectVersionLink
from rekfeedback.links.s3 import S3OutputLink
from rekfeedback.operators.inference_shard import ShardCalls, remember_rate, shard_limiter

if TYPE_CHECKING:
    from airflow.sdk import Context


class RekognitionCustomLabelsInferenceOperator(AwsBaseOperator[RekognitionCustomLabelsHook]):
    """Run a Custom Labels model over images and write one prediction line per image to S3.

    Input is either every .jpg/.jpeg/.png object under ``input_prefix`` or the ``source-ref`` of every
    line of ``input_manifest``; images named in ``exclude_manifests`` (earlier turns' manifests; a
    missing one is skipped, as on the first turn) are not sent. With ``shard_index``/``shard_count``
    (e.g. ``.partial(...).expand(shard_index=[0, 1, 2, 3])``) each task takes the images whose stable
    hash of source-ref falls in its shard: disjoint shards covering every image.

    Output: ``<output_prefix>/predictions/part-XXXXX-of-YYYYY.jsonl`` (docs/data-formats.md), with
    checkpoints next to it (``part-XXXXX-of-YYYYY.checkpoints/NNNNNN.checkpoint.jsonl``, the lines new since
    the previous one), so a retried task never calls DetectCustomLabels again for an image done.
    Returns the summary ``{"output_uri", "images_total", "images_skipped", "predicted", "failed",
    "no_prediction", "labels", "calls", "throttles", "errors", "resumed", "shard_index", "shard_count",
    "start_rate"}`` (`labels`: images per label; `calls`/`throttles`: this attempt's DetectCustomLabels
    calls; `start_rate`: the calls/s it started at, a share of the rate remembered for the model if any).

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
    :param keep_signals: keep what review selection needs (core.signals): labels below ``min_confidence``
        (asked for with a lower MinConfidence; the labels of the line stay those of the user's threshold),
        the top-two margin and a small image descriptor, which costs reading the whole image once. Off:
        only the image header is read. (templated)
    :param max_concurrency: most DetectCustomLabels calls in flight.
    :param initial_rate: calls per second to start probing from; the limit adapts to the model.
    :param max_rate: never exceed this many calls per second (None: no cap but the model's).
    :param checkpoint_every: checkpoint after this many newly finished images ... (templated)
    :param checkpoint_interval: ... or after this many seconds, whichever comes first: a killed worker
        loses at most that much paid work. (templated)
    :param paid_predictions_uri: the loop's ledger of paid work (``<dataset>/paid/``, core.paid): answers
        found there for the same model and object ETag are reused without a call, images recorded there
        as unusable are skipped until their ETag changes, and this shard's paid lines are added to it,
        also when the task fails. None: no ledger. (templated)
    :param throughput_memory_uri: S3 prefix where the calls/s the model answered the shards is remembered
        per model version and inference units (core.shard_rates); a later turn's shards start from it
        instead of probing up from ``initial_rate``. None: nothing remembered. (templated)
    :param share_model: shards of one turn share one budget for the model, by the work each has left,
        through a small rate hint at ``<output_prefix>/inference/rate-hint.json`` (read and written
        about once a second per shard).
    :param progress_interval: seconds between progress log lines.
    :param extensions: object name extensions taken from ``input_prefix``. (templated)
    """

    aws_hook_class = RekognitionCustomLabelsHook
    template_fields: Sequence[str] = aws_template_fields(
        "project_version_arn", "output_prefix", "input_prefix", "input_manifest", "exclude_manifests",
        "shard_index", "shard_count", "min_confidence", "max_results", "max_failed_share", "extensions",
        "checkpoint_every", "checkpoint_interval", "paid_predictions_uri", "throughput_memory_uri", "keep_signals",
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
        checkpoint_every: int | str = 50,
        checkpoint_interval: float | str = 5.0,
        paid_predictions_uri: str | None = None,
        throughput_memory_uri: str | None = None,
        share_model: bool = True,
        progress_interval: float = 30.0,
        extensions: Sequence[str] = preds.IMAGE_EXTENSIONS,
        keep_signals: bool | str = False,
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
        self.paid_predictions_uri = paid_predictions_uri
        self.throughput_memory_uri = throughput_memory_uri
        self.share_model = share_model
        self.progress_interval = progress_interval
        self.extensions = extensions
        self.keep_signals = keep_signals

    # --- clients ------------------------------------------------------------------------------
    def _config(self, retries: dict) -> Config:
        mine = Config(max_pool_connections=int(self.max_concurrency) + 8, retries=retries)
        base = self.botocore_config
        return Config(**base).merge(mine) if isinstance(base, dict) else mine

    @cached_property
    def detect_hook(self) -> RekognitionCustomLabelsHook:
        # No botocore retries: throttling must reach the adaptive limiter, and each retry is counted.
        return RekognitionCustomLabelsHook(aws_conn_id=self.aws_conn_id, region_name=self.region_name,
                                           verify=self.verify, config=self._config({"total_max_attempts": 1,
                                                                                    "mode": "standard"}))

    @cached_property
    def s3(self):
        return S3Hook(aws_conn_id=self.aws_conn_id, region_name=self.region_name, verify=self.verify,
                      config=self._config({"max_attempts": 5, "mode": "standard"})).conn

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

    # --- run ----------------------------------------------------------------------------------
    def execute(self, context: Context) -> dict:
        arn = self.project_version_arn
        parse_project_version_arn(arn)
        try:  # bad settings do not fix themselves: no retry
            settings = check_settings(
                shard_index=self.shard_index, shard_count=self.shard_count, min_confidence=self.min_confidence,
                max_results=self.max_results, max_failed_share=self.max_failed_share,
                checkpoint_every=self.checkpoint_every, checkpoint_interval=self.checkpoint_interval)
        except (TypeError, ValueError) as exc:
            raise AirflowFailException(f"{self.task_id}: {exc}") from exc
        shard_index, shard_count = settings.shard_index, settings.shard_count
        turn = parse_s3_uri(self.output_prefix, "output_prefix")
        part = shard_part_name(shard_index, shard_count)
        output = turn.join("predictions", f"{part}.jsonl")
        checkpoint = turn.join("predictions", f"{part}.checkpoint.jsonl")  # before checkpoints came in parts
        checkpoints = turn.join("predictions", f"{part}.checkpoints")
        region, partition = self.hook.conn_region_name, self.hook.conn_partition
        RekognitionProjectVersionLink.persist_for_arn(context, self, arn, region, partition)
        S3OutputLink.persist_uri(context, self, str(output), region, partition)

        inputs = ShardInputs(self.s3, self.log)
        plan = inputs.plan(
            shard_index=shard_index, shard_count=shard_count, input_prefix=self.input_prefix,
            input_manifest=self.input_manifest, extensions=self.extensions, exclude_manifests=self.exclude_manifests,
            paid_predictions_uri=self.paid_predictions_uri, output=output, checkpoint=checkpoint,
            checkpoints=checkpoints, run_id=(context or {}).get("run_id") or "adhoc", part=part, model=arn)
        done = plan.done
        finished = {line.get("source-ref") for line in done
                    if classify_code((line.get("error") or {}).get("code")) == "fatal"}  # as the engine resumes
        if any(t.source_ref not in finished for t in plan.todo):
            self._check_model_running()  # only when something is left to call: a complete rerun needs no model

        calls = ShardCalls(
            s3=self.s3, rekognition=self.detect_hook, model=arn, options=settings.detect_options,
            keep_signals=templated.as_bool(self.keep_signals, "keep_signals", False), checkpoints=checkpoints,
            saved_parts=plan.saved_parts, done=done, put_lines=inputs.put_lines, ledger_uri=plan.ledger_uri,
            etags=plan.etags)
        memory_prefix = (None if templated.is_blank(self.throughput_memory_uri)
                         else parse_s3_uri(self.throughput_memory_uri, "throughput_memory_uri"))
        limiter, shard_rates, memory = shard_limiter(
            inputs, self.hook, self.log, model=arn, turn=turn, shard_index=shard_index,
            shard_count=shard_count, share_model=bool(self.share_model), memory_prefix=memory_prefix,
            initial_rate=float(self.initial_rate), max_rate=float(self.max_rate or 10_000.0),
            max_concurrency=int(self.max_concurrency))
        start_rate = limiter.rate
        engine = InferenceEngine(
            probe=calls.probe, detect=calls.detect, model=arn, limiter=limiter, shard_rates=shard_rates,
            max_workers=int(self.max_concurrency), checkpoint=calls.save_checkpoint,
            checkpoint_every=settings.checkpoint_every, checkpoint_interval=settings.checkpoint_interval,
            progress_interval=self.progress_interval, max_failed_share=settings.max_failed_share, log=self.log,
        )
        failure: TooManyFailures | None = None
        try:
            result = engine.run(plan.todo, done=done)
        except InferenceAborted as exc:
            calls.record_paid(calls.last_checkpoint)
            what = ("the model stopped running during the run" if exc.code == "ResourceNotReadyException"
                    else "the model cannot be used")
            raise AirflowException(
                f"Inference stopped: {what} ({exc.code}: {exc.message}). {exc.done} of {exc.total} images are "
                f"done and checkpointed under {checkpoints}/. Make sure the model is RUNNING (start it with "
                "RekognitionStartProjectVersionOperator) and clear this task: it resumes without repeating them."
            ) from exc
        except TooManyFailures as exc:
            failure, result = exc, exc.result
        inputs.put_lines(output, result.lines)
        calls.record_paid(result.lines)
        remember_rate(inputs, self.log, memory, result.model_limit, model=arn, turn=self.output_prefix)
        xcom = shard_summary(
            result.lines, settings=settings, output=str(output), images_total=len(plan.shard), skipped=plan.skipped,
            reused=plan.reused, known_unusable=plan.known_unusable, calls=result.calls, throttles=result.throttles,
            resumed=result.resumed, checkpoint_puts=result.checkpoints, start_rate=start_rate,
            signals=calls.keep_signals, header_bytes=sum(result.header_bytes))
        self.log.info("Wrote %d prediction lines to %s: %s", len(result.lines), output, xcom)
        if failure is not None:
            # A retry would only get the same answers (they are saved): fail at once, the teardown stops the model.
            raise AirflowFailException(f"{failure} Predictions written to {output}; the unusable images are "
                                       "recorded and skipped by later turns. Fix or remove them, or raise "
                                       "max_failed_share, then clear this task.")
        return xcom
