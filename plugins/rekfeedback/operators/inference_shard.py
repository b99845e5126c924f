"""The I/O of one inference shard, handed to `core.inference_engine`: image probes, DetectCustomLabels,
checkpoints, the paid ledger, and the call rate remembered for the model.

The engine decides what to call and when; this module only does the calls, so the operator stays
the order of the steps.
"""

from __future__ import annotations

from collections.abc import Callable

from airflow.sdk.exceptions import AirflowException
from botocore.exceptions import ClientError

from rekfeedback.core import paid
from rekfeedback.core import predictions as preds
from rekfeedback.core import signals as sig
from rekfeedback.core.imagesize import probe_image
from rekfeedback.core.inference_engine import ImageTask
from rekfeedback.core.paths import S3Uri, parse_s3_uri
from rekfeedback.core.shard_rates import ShardRates, memory_key, memory_record, remembered_rate, start_limiter
from rekfeedback.hooks.loop_store import LoopStore
from rekfeedback.hooks.rekognition import RekognitionCustomLabelsHook
from rekfeedback.hooks.s3_range import S3RangeReader


class ShardCalls:
    """What the engine calls for one shard (`probe`, `detect`, `save_checkpoint`) and the paid ledger.

    :param options: the user's DetectCustomLabels options (MinConfidence, MaxResults).
    :param keep_signals: ask for labels below the user's threshold too, keep them apart as signals
        (`core.signals`), and add the image's diversity descriptor.
    :param put_lines: writes JSON Lines to S3 (the operator's, so a retry rewrites the same objects).
    """

    def __init__(self, *, s3, rekognition: RekognitionCustomLabelsHook, model: str, options: dict,
                 keep_signals: bool, checkpoints: S3Uri, saved_parts: int, done: list[dict],
                 put_lines: Callable[[S3Uri, list[dict]], None], ledger_uri: S3Uri | None, etags: dict):
        self.s3, self.rekognition, self.model = s3, rekognition, model
        self.options, self.keep_signals = options, keep_signals
        self.call_options, self.floor = options, None
        if keep_signals:
            self.floor = sig.detect_floor(options.get("MinConfidence"))
            if self.floor is not None:  # ask for more, then apply the user's threshold and MaxResults ourselves
                self.call_options = {k: v for k, v in options.items() if k != "MaxResults"}
                self.call_options["MinConfidence"] = self.floor
        self.checkpoints, self.part_count, self.put_lines = checkpoints, saved_parts, put_lines
        self.last_checkpoint = done
        self.saved = {id(line) for line in done}  # the engine keeps these objects: unchanged lines are not sent again
        self.ledger_uri, self.etags = ledger_uri, etags
        self.seen_etags: dict[str, str | None] = {}

    def probe(self, task: ImageTask):
        ref = parse_s3_uri(task.source_ref, "source-ref")
        reader = S3RangeReader(self.s3, ref.bucket, ref.key)
        try:
            return probe_image(reader, size=task.size)
        finally:
            if reader.etag:  # none for an empty object (no bytes read): the listing's then holds
                self.seen_etags[task.source_ref] = reader.etag

    def detect(self, task: ImageTask, _probe) -> dict:
        ref = parse_s3_uri(task.source_ref, "source-ref")
        response = self.rekognition.detect_custom_labels(self.model, ref.bucket, ref.key, **self.call_options)
        if not self.keep_signals:
            return response
        shown, signals = sig.split_response(response, self.options.get("MinConfidence"),
                                            self.options.get("MaxResults"), self.floor)
        signals.update(self.descriptor(ref))
        return {**shown, preds.SIGNALS_KEY: signals}

    def descriptor(self, ref: S3Uri) -> dict:
        """The image's diversity descriptor and the bytes read for it; a picture Pillow cannot read has none."""
        try:
            data = self.s3.get_object(Bucket=ref.bucket, Key=ref.key)["Body"].read()
        except ClientError as exc:
            return {"descriptor": None, "descriptor_bytes": 0, "descriptor_error": str(exc)[:200]}
        try:
            return {"descriptor": sig.image_descriptor(data), "descriptor_bytes": len(data)}
        except Exception as exc:  # noqa: BLE001 - the prediction is paid for: keep it without a descriptor
            return {"descriptor": None, "descriptor_bytes": len(data), "descriptor_error": str(exc)[:200]}

    def save_checkpoint(self, lines: list[dict]) -> None:
        # Only the lines new since the last checkpoint, as one small object: a checkpoint every 50
        # images costs one PUT of 50 lines, not a rewrite of everything done so far.
        new = [line for line in lines if id(line) not in self.saved]
        if new:
            self.part_count += 1
            self.put_lines(self.checkpoints.join(f"{self.part_count:06d}.checkpoint.jsonl"), new)
            self.saved.update(id(line) for line in new)
        self.last_checkpoint = lines

    def record_paid(self, lines: list[dict]) -> None:
        # Before any failure is raised: what was paid for, or found unusable, is kept for later turns.
        if self.ledger_uri is not None:
            LoopStore(self.s3).write_ledger(self.ledger_uri, paid.ledger_lines(lines, {**self.etags, **self.seen_etags}))


def shard_limiter(store: LoopStore, hook: RekognitionCustomLabelsHook, log, *, model: str, turn: S3Uri,
                  shard_index: int, shard_count: int, share_model: bool, memory_prefix: S3Uri | None,
                  initial_rate: float, max_rate: float, max_concurrency: int):
    """The shard's limiter, started at its share of a remembered rate, its link to the other shards, and
    where the model's rate is remembered (None without `memory_prefix`)."""
    rates = memory = remembered = None
    if share_model:
        hint = turn.join("inference", "rate-hint.json")
        rates = ShardRates(shard=shard_index, shard_count=shard_count, read=lambda: store.read_text(hint),
                           write=lambda text: store.put_text(hint, text), log=log)
    if memory_prefix is not None:
        try:
            desc = hook.describe_project_version(model)
            memory = memory_prefix.join(memory_key(model, desc.get("MinInferenceUnits"), desc.get("MaxInferenceUnits")))
            remembered = remembered_rate(store.read_text(memory))
        except (ClientError, AirflowException) as exc:  # a faster start is not worth failing the task
            log.warning("No remembered rate for this model (%s); probing up from %s calls/s", exc, initial_rate)
    limiter, why = start_limiter(rates, remembered, shard_count, initial_rate=initial_rate, max_rate=max_rate,
                                 max_concurrency=max_concurrency)
    log.info("Starting at %.1f calls/s (%s)", limiter.rate, why)
    return limiter, rates, memory


def remember_rate(store: LoopStore, log, memory: S3Uri | None, model_limit: float | None, *, model: str,
                  turn: str) -> None:
    # None when the shards never found the model's limit together (e.g. too few images): keep the old one.
    if memory is None or not model_limit:
        return
    try:
        store.put_text(memory, memory_record(model_limit, model=model, turn=turn))
    except ClientError as exc:
        log.warning("Could not remember the rate in %s (%s); the next turn probes from low", memory, exc)
        return
    log.info("Remembered %.1f calls/s for this model and inference units in %s", model_limit, memory)
