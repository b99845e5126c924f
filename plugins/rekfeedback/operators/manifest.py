"""Merge a turn's normalized answers into the cumulative Rekognition manifest (issue 6).

The work is `rekfeedback.core.merge`; `hooks/manifest_files.py` moves files between S3 and local
temporary files (streamed and multipart, so memory stays bounded by the number of distinct new images,
not by file sizes); this operator orders the steps and reports.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from collections.abc import Sequence
from typing import TYPE_CHECKING

from airflow.providers.amazon.aws.hooks.s3 import S3Hook
from airflow.providers.amazon.aws.operators.base_aws import AwsBaseOperator
from airflow.providers.amazon.aws.utils.mixins import aws_template_fields
from airflow.sdk import Asset
from airflow.sdk.exceptions import AirflowFailException

from rekfeedback.core import templated
from rekfeedback.core.merge import DEFAULT_MAX_REJECT_RATIO, ImagesBucketChanged, merge_manifest
from rekfeedback.core.paths import parse_s3_uri
from rekfeedback.hooks.manifest_files import ManifestFiles, lines_of
from rekfeedback.links.presigned import ManifestFileLink
from rekfeedback.links.s3 import S3OutputLink
from rekfeedback.operators.asset_events import add_asset_extra

if TYPE_CHECKING:
    from airflow.sdk import Context

MANIFEST_KEY = "manifest/output.manifest"
REJECTS_KEY = "manifest/rejects.jsonl"
SUMMARY_KEY = "manifest/summary.json"


class ManifestMergeOperator(AwsBaseOperator[S3Hook]):
    """Merge normalized answers (any review backend) into the cumulative Rekognition manifest.

    Writes under ``output_prefix`` (the turn prefix): ``manifest/output.manifest``,
    ``manifest/rejects.jsonl`` and ``manifest/summary.json``. Then copies the manifest to
    ``cumulative_manifest_uri``, the stable "latest cumulative manifest" that the next turn merges
    into (and that inference can use to skip images already labelled). When
    ``previous_manifest_uri`` is not given, the object at ``cumulative_manifest_uri`` (if it exists)
    is the previous manifest, so a loop needs only the stable location. A retry after the copy
    merges the same answers into its own output and writes the same bytes.

    Fails (no retry) when more than ``max_reject_ratio`` of the lines are rejected; the rejects and
    the summary are uploaded first and the cumulative manifest is left untouched.

    Returns the merge summary (counts per label: confirmed, rejected, added, adjusted, images;
    totals; rejects by code) plus ``manifest_uri``, ``rejects_uri``, ``summary_uri`` and
    ``cumulative_manifest_uri``. Emits an asset event with ``extra`` counts for each outlet
    (default when ``cumulative_manifest_uri`` is a literal and no ``outlets`` are given:
    ``Asset(uri=cumulative_manifest_uri, name=cumulative_manifest_uri)``; a DAG can schedule on it).

    :param answers_uris: normalized answers files (a list, or one URI). (templated)
    :param auto_accepted_uris: auto-accepted answers files, same format. (templated)
    :param unlabelled_uris: unlabelled items from the review step; counted, never labelled. (templated)
    :param unresolved_uris: objects the review backend left unresolved (the Ground Truth sensor's
        ``unresolved_uri``); counted in the summary's ``images.unresolved``, never labelled. (templated)
    :param previous_manifest_uri: the previous cumulative manifest, if not the one at
        ``cumulative_manifest_uri``. (templated)
    :param output_prefix: the turn prefix ``s3://bucket/prefix/<dag_id>/<run-key>/``. (templated)
    :param cumulative_manifest_uri: stable location of the latest cumulative manifest, e.g.
        ``s3://bucket/prefix/<dag_id>/cumulative/output.manifest``; None to skip the copy. (templated)
    :param unusable_images_uri: the loop's list of images that can never be predicted (corrupt, too
        large), e.g. ``s3://bucket/prefix/<dag_id>/dataset/unusable.jsonl``: this turn's unlabelled
        items with such an error are added to it, so later turns skip them like labelled images;
        None to keep no list. (templated)
    :param images_bucket: the one bucket all images must be in (default: the previous manifest's, else
        the answers'). Images of another bucket fail the task before anything is written: a
        Rekognition manifest holds one bucket, and dropping the other bucket's lines would lose
        verified answers.
    :param max_reject_ratio: fail above this share of rejected lines (Rekognition refuses > 0.2).
    """

    aws_hook_class = S3Hook
    template_fields: Sequence[str] = aws_template_fields(
        "answers_uris", "auto_accepted_uris", "unlabelled_uris", "unresolved_uris", "previous_manifest_uri", "output_prefix",
        "cumulative_manifest_uri", "unusable_images_uri", "images_bucket", "max_reject_ratio",
    )
    operator_extra_links = (S3OutputLink(), ManifestFileLink())
    ui_color = "#c3e6cb"

    def __init__(
        self,
        *,
        answers_uris: list[str] | str,
        output_prefix: str,
        auto_accepted_uris: list[str] | str | None = None,
        unlabelled_uris: list[str] | str | None = None,
        unresolved_uris: list[str] | str | None = None,
        previous_manifest_uri: str | None = None,
        cumulative_manifest_uri: str | None = None,
        unusable_images_uri: str | None = None,
        images_bucket: str | None = None,
        max_reject_ratio: float | str = DEFAULT_MAX_REJECT_RATIO,
        **kwargs,
    ) -> None:
        super().__init__(**kwargs)
        self.answers_uris = answers_uris
        self.auto_accepted_uris = auto_accepted_uris
        self.unlabelled_uris = unlabelled_uris
        self.unresolved_uris = unresolved_uris
        self.previous_manifest_uri = previous_manifest_uri
        self.output_prefix = output_prefix
        self.cumulative_manifest_uri = cumulative_manifest_uri
        self.unusable_images_uri = unusable_images_uri
        self.images_bucket = images_bucket
        self.max_reject_ratio = max_reject_ratio
        static = isinstance(cumulative_manifest_uri, str) and "{{" not in cumulative_manifest_uri
        if not self.outlets and static:
            # Consumers schedule on the asset at parse time, so only a literal URI can be one.
            self.outlets = [Asset(uri=cumulative_manifest_uri, name=cumulative_manifest_uri)]

    # -- execute -------------------------------------------------------------------------------
    def execute(self, context: Context) -> dict:
        turn = parse_s3_uri(self.output_prefix, "output_prefix")
        files = ManifestFiles(self.hook, self.log)
        answers = (templated.as_uri_list(self.answers_uris, "answers_uris")
                   + templated.as_uri_list(self.auto_accepted_uris, "auto_accepted_uris"))
        unlabelled = templated.as_uri_list(self.unlabelled_uris, "unlabelled_uris")
        unresolved = templated.as_uri_list(self.unresolved_uris, "unresolved_uris")
        try:
            max_ratio = float(self.max_reject_ratio)
        except (TypeError, ValueError):
            raise ValueError(f"max_reject_ratio must be a number from 0 to 1, got {self.max_reject_ratio!r}") from None
        cumulative = parse_s3_uri(self.cumulative_manifest_uri, "cumulative_manifest_uri") if self.cumulative_manifest_uri else None
        previous_uri = self.previous_manifest_uri or None
        if previous_uri is None and cumulative is not None and files.exists(cumulative):
            previous_uri = str(cumulative)
        manifest_uri, rejects_uri, summary_uri = (turn.join(k) for k in (MANIFEST_KEY, REJECTS_KEY, SUMMARY_KEY))
        self.log.info("Merging %d answers file(s) and %d unlabelled file(s) into %s", len(answers), len(unlabelled),
                      previous_uri or "an empty manifest")

        with tempfile.TemporaryDirectory(prefix="rekfeedback-merge-") as tmp:
            inputs = os.path.join(tmp, "in")
            os.mkdir(inputs)
            answer_paths = [(uri, files.fetch(uri, "answers_uris item", inputs)) for uri in answers]
            unlabelled_paths = [(uri, files.fetch(uri, "unlabelled_uris item", inputs)) for uri in unlabelled]
            unresolved_paths = [(uri, files.fetch(uri, "unresolved_uris item", inputs)) for uri in unresolved]
            previous_path = files.fetch(previous_uri, "previous_manifest_uri", inputs) if previous_uri else None
            out_manifest, out_rejects = os.path.join(tmp, "output.manifest"), os.path.join(tmp, "rejects.jsonl")
            with open(out_manifest, "w", encoding="utf-8", newline="\n") as manifest, \
                    open(out_rejects, "w", encoding="utf-8", newline="\n") as rejects, \
                    _refused_bucket_change(previous_uri):
                summary = merge_manifest(
                    answers=[(uri, lines_of(path)) for uri, path in answer_paths],
                    unlabelled=[(uri, lines_of(path)) for uri, path in unlabelled_paths],
                    unresolved=[(uri, lines_of(path)) for uri, path in unresolved_paths],
                    previous=(lambda: lines_of(previous_path)) if previous_path else None,
                    previous_record=files.read_record(previous_uri) if previous_uri else None,
                    write_manifest=manifest.write,
                    write_reject=rejects.write,
                    images_bucket=self.images_bucket or None,
                    max_reject_ratio=max_ratio,
                    spill_dir=tmp,
                )
            summary.update(manifest_uri=str(manifest_uri), rejects_uri=str(rejects_uri), summary_uri=str(summary_uri),
                           previous_manifest_uri=previous_uri,
                           cumulative_manifest_uri=str(cumulative) if cumulative else None)
            files.upload(out_rejects, rejects_uri, "application/x-ndjson")
            summary_path = os.path.join(tmp, "summary.json")
            with open(summary_path, "w", encoding="utf-8") as f:
                json.dump(summary, f, indent=1, sort_keys=True)
            files.upload(summary_path, summary_uri, "application/json")
            if summary["threshold_exceeded"]:
                S3OutputLink.persist_uri(context, self, str(rejects_uri), self.hook.conn_region_name, self.hook.conn_partition)
                raise AirflowFailException(
                    f"{summary['rejects']} of {summary['rejects'] + summary['manifest_lines']} lines rejected "
                    f"({summary['reject_ratio']:.1%} > max_reject_ratio {max_ratio:.0%}; Rekognition refuses a manifest "
                    f"with more than 20% invalid lines). By code: {summary['rejects_by_code']}. Reasons per line: "
                    f"{rejects_uri}. The cumulative manifest was not changed."
                )
            files.upload(out_manifest, manifest_uri, "application/x-ndjson")
            if cumulative is not None and cumulative != manifest_uri:
                # A server-side copy: bytes identical to the turn's manifest, no second upload.
                files.copy(manifest_uri, cumulative)
            # After the manifest, so that a crash between the two leaves a record that does not match
            # (the next merge then validates every line rather than trusting them).
            for uri in {manifest_uri, cumulative} - {None}:
                files.write_record(uri, summary["record"])
            if self.unusable_images_uri:
                summary["unusable_images_uri"], summary["unusable_images"] = files.record_unusable(
                    self.unusable_images_uri, [path for _, path in unlabelled_paths], inputs)

        S3OutputLink.persist_uri(context, self, str(manifest_uri), self.hook.conn_region_name, self.hook.conn_partition)
        ManifestFileLink.persist(context, self, str(manifest_uri))
        add_asset_extra(context, self.outlets, {
            "manifest_uri": summary["manifest_uri"], "cumulative_manifest_uri": summary["cumulative_manifest_uri"],
            "manifest_lines": summary["manifest_lines"], "added": summary["images"]["added"],
            "updated": summary["images"]["updated"], "rejects": summary["rejects"],
            "answers_applied": summary["answers"]["applied"], "totals": summary["totals"]}, self.log)
        self.log.info("Manifest %s: %d lines (%d added, %d updated, %d kept), %d rejects, %d boxes dropped, "
                      "%d objects left unresolved; per label: %s",
                      manifest_uri, summary["manifest_lines"], summary["images"]["added"], summary["images"]["updated"],
                      summary["images"]["kept_from_previous"], summary["rejects"], summary["boxes_dropped"],
                      summary["images"]["unresolved"], summary["labels"])
        for warning in summary["warnings"]:
            self.log.warning("%s", warning)
        return summary


@contextlib.contextmanager
def _refused_bucket_change(previous_uri: str | None):
    """A bucket change fails the task for good (a retry cannot fix it) and drops nothing."""
    try:
        yield
    except ImagesBucketChanged as exc:
        raise AirflowFailException(f"{exc} The cumulative manifest {previous_uri or '(none yet)'} was not changed.") from exc
