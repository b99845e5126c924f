"""What one inference shard reads from S3 before it calls the model (the images of a prefix or a manifest, the
images earlier turns labelled, the lines an earlier try saved, the paid answers to reuse) and its output.
Everything through `LoopStore`; the rules are `core.predictions` and `core.paid`."""

from __future__ import annotations

import logging
from dataclasses import dataclass

from airflow.sdk.exceptions import AirflowException

from rekfeedback.core import paid
from rekfeedback.core import predictions as preds
from rekfeedback.core import templated
from rekfeedback.core.inference_engine import ImageTask
from rekfeedback.core.paths import S3Uri, parse_s3_uri
from rekfeedback.hooks.loop_store import LoopStore


@dataclass
class ShardPlan:
    """What a shard does: `todo` is what is left to call; `done` holds the saved and reused lines."""

    shard: list[ImageTask]
    todo: list[ImageTask]
    done: list[dict]
    etags: dict[str, str | None]
    saved_parts: int
    skipped: int  # labelled in earlier turns, or known unusable and unchanged
    reused: int
    known_unusable: int
    ledger_uri: S3Uri | None


class ShardInputs(LoopStore):
    def __init__(self, s3_client, log: logging.Logger | logging.LoggerAdapter):
        super().__init__(s3_client)
        self.log = log

    def images(self, input_prefix, input_manifest, extensions) -> tuple[list[ImageTask], dict[str, str | None]]:
        """Every image to consider and, for a prefix, each one's ETag from the listing."""
        if bool(input_prefix) == bool(input_manifest):
            raise ValueError("give exactly one of input_prefix (s3://bucket/prefix of images) and "
                             f"input_manifest (s3:// URI of a manifest); got {input_prefix!r} and {input_manifest!r}")
        if input_manifest:
            uri = parse_s3_uri(input_manifest, "input_manifest")
            text = self.read_text(uri)
            if text is None:
                raise AirflowException(f"input_manifest {uri} does not exist; check the URI.")
            return [ImageTask(ref) for ref in preds.source_refs_from_manifest(text, f"input_manifest {uri}")], {}
        uri = parse_s3_uri(input_prefix, "input_prefix")
        extensions = templated.as_list(extensions, "extensions")
        images, other = self.list_images(uri, extensions)
        if other:
            self.log.info("Ignored %d object(s) under %s without an image extension (%s)", other, uri,
                          ", ".join(extensions))
        return [ImageTask(i["source-ref"], i["size"]) for i in images], {i["source-ref"]: i["etag"] for i in images}

    def labelled_before(self, exclude_manifests) -> set[str]:
        """The images of earlier turns' manifests (a missing manifest is skipped, as on the first turn)."""
        texts = []
        for raw in templated.as_list(exclude_manifests, "exclude_manifests"):
            uri = parse_s3_uri(raw, "exclude_manifests entry")
            text = self.read_text(uri)
            if text is None:
                self.log.info("Exclude manifest %s does not exist (yet; normal on the first turn): skipped", uri)
                continue
            texts.append((str(uri), text))
        return preds.exclusion_set(texts)

    def saved_lines(self, output: S3Uri, checkpoint: S3Uri, checkpoints: S3Uri) -> tuple[list[dict], int]:
        """The lines earlier tries saved (a finished try's output, then the checkpoint parts, oldest first), and
        how many checkpoint parts there are."""
        parts = sorted(self.keys_under(checkpoints, ".checkpoint.jsonl"), key=lambda u: u.key)
        done: list[dict] = []
        for uri in (output, checkpoint, *parts):
            text = self.read_text(uri)
            if text:
                done.extend(preds.read_prediction_lines(text, f"previous output {uri}"))
        return done, len(parts)

    def use_ledger(self, paid_predictions_uri, todo: list[ImageTask], done: list[dict], etags: dict, *, run_id: str,
                   part: str, model: str) -> tuple[list[ImageTask], list[dict], int, S3Uri | None]:
        """Drop known-unusable images from `todo` and find paid answers to reuse (core.paid.plan): (todo, reused,
        how many known unusable, this shard's own ledger file)."""
        if not paid_predictions_uri:
            return todo, [], 0, None
        prefix = parse_s3_uri(paid_predictions_uri, "paid_predictions_uri")
        own = paid.ledger_file(prefix, run_id, part)
        ledger = self.read_ledger(prefix)
        done_refs = {line.get("source-ref") for line in done}
        candidates = [t.source_ref for t in todo if t.source_ref not in done_refs]
        current = self.etags_for(candidates, etags, ledger)
        etags.update({ref: etag for ref, etag in current.items() if ref in ledger})
        plan = paid.plan(current, ledger, model)
        unusable = {line["source-ref"] for line in plan.unusable}
        return [t for t in todo if t.source_ref not in unusable], plan.reuse, len(unusable), own

    def plan(self, *, shard_index: int, shard_count: int, input_prefix, input_manifest, extensions, exclude_manifests,
             paid_predictions_uri, output: S3Uri, checkpoint: S3Uri, checkpoints: S3Uri, run_id: str, part: str,
             model: str) -> ShardPlan:
        listed, etags = self.images(input_prefix, input_manifest, extensions)
        shard = [t for t in listed if preds.shard_of(t.source_ref, shard_count) == shard_index]
        done, saved_parts = self.saved_lines(output, checkpoint, checkpoints)
        # What an earlier try of this run predicted stays in this turn, even if that try's merge has
        # since put it in the cumulative manifest: a rerun redoes its own turn from the saved lines.
        excluded = self.labelled_before(exclude_manifests) - {line.get("source-ref") for line in done}
        todo = [t for t in shard if t.source_ref not in excluded]
        skipped = len(shard) - len(todo)
        todo, reused, known_unusable, ledger_uri = self.use_ledger(paid_predictions_uri, todo, done, etags,
                                                                   run_id=run_id, part=part, model=model)
        self.log.info("Shard %d of %d: %d of %d images; %d already labelled (excluded); %d known unusable and "
                      "unchanged (skipped); %d paid answers reused; %d to predict", shard_index, shard_count,
                      len(shard), len(listed), skipped, known_unusable, len(reused), len(todo))
        return ShardPlan(shard, todo, done + reused, etags, saved_parts, skipped + known_unusable, len(reused),
                         known_unusable, ledger_uri)

    def put_lines(self, uri: S3Uri, lines: list[dict]) -> None:
        """Write prediction lines (a retry rewrites the same object)."""
        self.put_text(uri, preds.dumps_jsonl(lines), "application/x-ndjson")
