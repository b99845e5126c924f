"""Merge a turn's normalized answers into the cumulative Rekognition manifest, streaming.

Inputs are line iterables, outputs are callables taking text (the manifest's in runs of whole
lines, a reject one line at a time, each line with its newline), so the same code runs on local
files, S3 streams or lists in tests.

Rules (docs/data-formats.md, issue 6):
- one answer per image wins (``core.ranking``, the report's rule too): a human answer beats an
  auto-accepted one; among equals the newest ``answered_at`` wins, then the larger ``answer_id``,
  then the answer's text, so any order and any repetition of the inputs gives the same result;
- against the previous manifest: a human answer replaces the image's line unless that line holds a
  newer human annotation; an auto-accepted answer never replaces a human-annotated line; an answer
  that cannot be written leaves the previous line in place (nothing verified earlier is lost);
- unlabelled images are counted and never written as labelled;
- output is sorted by source-ref and every written line passes ``core.validation``; invalid lines
  go to the rejects with their reason.

The previous manifest is carried forward unvalidated when it is the one the previous merge wrote
(its SHA-256 matches that merge's record, ``core.merge_record``); any other is validated line by
line (``core.merge_previous``). The summary's ``record`` is this merge's record, for the next one.

Memory: the answers (one per distinct new image, as text) and the set of unlabelled images are held
in memory; the previous manifest is streamed. If it is not already sorted (ours always is), it is
sorted externally in runs of ``chunk_lines`` spilled to a temporary directory.
"""

from __future__ import annotations

import tempfile
from collections import Counter
from typing import Callable, Iterable, Iterator, Mapping

from rekfeedback.core import merge_record
from rekfeedback.core.merge_previous import carry_forward, validate_previous
from rekfeedback.core.merge_sort import bucket_of_ref, clean, external_sort, scan_sorted, source_ref_of
from rekfeedback.core.merge_state import INVALID_ANSWER, LineSource, MergeState, Writer

__all__ = ["DEFAULT_MAX_REJECT_RATIO", "INVALID_ANSWER", "ImagesBucketChanged", "RejectThresholdExceeded",
           "check_reject_threshold", "merge_manifest", "source_ref_of", "summarize"]

DEFAULT_MAX_REJECT_RATIO = 0.2  # Rekognition refuses a manifest with more than 20% invalid lines
DEFAULT_CHUNK_LINES = 200_000
MAX_MANIFEST_LINES = 250_000  # manifest-based training limit; datasets via UpdateDatasetEntries have none
MAX_LABELS = 250


class RejectThresholdExceeded(ValueError):
    """More rejected lines than Rekognition would accept; the summary says which and why."""


def merge_manifest(
    *,
    answers: Iterable[LineSource],
    write_manifest: Writer,
    write_reject: Writer,
    unlabelled: Iterable[LineSource] = (),
    unresolved: Iterable[LineSource] = (),
    previous: Callable[[], Iterable[str]] | Iterable[str] | None = None,
    previous_record: Mapping | None = None,
    images_bucket: str | None = None,
    max_reject_ratio: float = DEFAULT_MAX_REJECT_RATIO,
    spill_dir: str | None = None,
    chunk_lines: int = DEFAULT_CHUNK_LINES,
) -> dict:
    """Merge and write; return the summary (see ``summarize``).

    ``unlabelled`` and ``unresolved`` list items (one ``source-ref`` a line) that got no answer: the
    review's unlabelled items, and the objects a backend left unresolved (e.g. no consensus); both
    are counted in the summary's ``images``, never written.

    ``previous`` may be a zero-argument callable that re-opens the previous manifest: then it is
    read twice (its digest or a cheap scan, then the merge) instead of being sorted on disk.
    ``previous_record`` is the record the merge that wrote it returned (``summary["record"]``): with
    a callable ``previous`` whose digest matches it, the previous lines are carried forward unvalidated.
    ``images_bucket`` is the one bucket every image must be in; by default the previous manifest's
    (else the answers'). Images of another bucket raise ``ImagesBucketChanged`` before anything is written.
    Does not raise on too many rejects: call ``check_reject_threshold`` after storing the rejects.
    """
    if not 0 <= max_reject_ratio <= 1:
        raise ValueError(f"max_reject_ratio must be between 0 and 1, got {max_reject_ratio!r}")
    state = MergeState(write_manifest, write_reject, images_bucket)
    state.read_answers(answers)
    state.read_unlabelled(unlabelled)
    state.read_unlabelled(unresolved, into=state.unresolved, stage="unresolved")
    trusted = (callable(previous) and merge_record.usable(previous_record)
               and merge_record.digest_of(previous()) == previous_record["sha256"])
    buckets: Counter = Counter()
    with tempfile.TemporaryDirectory(prefix="rekfeedback-merge-", dir=spill_dir) as tmpdir:
        if trusted:
            if previous_record["lines"]:
                buckets[previous_record["images_bucket"]] = previous_record["lines"]
            state.bucket = _one_bucket(state.bucket, buckets, state.winners)
            carry_forward(state, clean(previous()), previous_record)
        else:
            if previous is None:
                stream: Iterator[str] = iter(())
            elif callable(previous) and scan_sorted(previous(), buckets):
                stream = clean(previous())
            else:
                buckets.clear()
                source = previous() if callable(previous) else previous
                stream = external_sort(clean(source), buckets, tmpdir, chunk_lines)
            state.bucket = _one_bucket(state.bucket, buckets, state.winners)
            validate_previous(state, stream)
    return summarize(state, max_reject_ratio, carried_forward=trusted)


def _one_bucket(given: str | None, previous: Counter, refs: Iterable[str]) -> str | None:
    """The manifest's one images bucket; raises ImagesBucketChanged rather than drop a line for its bucket.

    Rekognition trains a manifest from one bucket only. Rejecting the lines of the other bucket
    would lose verified answers without failing (they are few next to a large turn, under the
    reject threshold): the merge refuses instead, before writing anything.
    """
    answers = Counter(map(bucket_of_ref, refs))
    bucket = given or (_most_common(previous) if previous else _most_common(answers) if answers else None)
    foreign_previous = {b: n for b, n in previous.items() if b != bucket}
    foreign_answers = {b: n for b, n in answers.items() if b != bucket}
    if foreign_previous or foreign_answers:
        raise ImagesBucketChanged(bucket, dict(previous), dict(answers))
    return bucket


def _most_common(counts: Counter) -> str:
    return min(counts.items(), key=lambda kv: (-kv[1], kv[0]))[0]


class ImagesBucketChanged(ValueError):
    """Images from more than one bucket: nothing was written, nothing verified was dropped."""

    def __init__(self, bucket: str | None, previous: dict[str, int], answers: dict[str, int]):
        self.bucket, self.previous, self.answers = bucket, previous, answers
        where = "the previous manifest" if previous else "the answers"
        super().__init__(
            f"the manifest's images must all be in one S3 bucket ({bucket!r}, from {where}), but the previous "
            f"manifest has images per bucket {previous or {}} and this turn's answers {answers}. Nothing was "
            "written and no verified line was dropped. Copy the new images into the dataset's bucket and review "
            "them from there, or start a new cumulative dataset (setting `dataset_name`)."
        )


def summarize(state: MergeState, max_reject_ratio: float, carried_forward: bool = False) -> dict:
    c = state.c
    fields = ("confirmed", "rejected", "added", "adjusted")
    names = sorted(set(state.labels) | set(state.label_images))
    labels = {name: {**{f: state.labels.get(name, {}).get(f, 0) for f in fields}, "images": state.label_images.get(name, 0)}
              for name in names}
    totals = {f: sum(v[f] for v in labels.values()) for f in fields}
    lines = state.lines_written
    ratio = c["rejects"] / (lines + c["rejects"]) if lines + c["rejects"] else 0.0
    warnings = []
    if lines > MAX_MANIFEST_LINES:
        warnings.append(f"{lines} lines: over the {MAX_MANIFEST_LINES} lines Rekognition accepts in a manifest file "
                        "(ERROR_MANIFEST_ROWS_EXCEEDS_MAXIMUM); add them to a dataset with UpdateDatasetEntries instead")
    if len(labels) > MAX_LABELS:
        warnings.append(f"{len(labels)} labels: over Rekognition's {MAX_LABELS} (ERROR_MANIFEST_TOO_MANY_LABELS)")
    return {
        "manifest_lines": lines,
        "images_bucket": state.bucket,
        "images": {
            "added": c["images_added"],
            "updated": c["images_updated"],
            "kept_from_previous": c["previous_kept"] + c["previous_rewritten"],
            "rewritten_from_previous": c["previous_rewritten"],
            "verified_empty": c["verified_empty"],
            "unlabelled": len(state.unlabelled),
            "unresolved": len(state.unresolved),
        },
        "answers": {
            "read": c["answers_read"],
            "distinct_images": len(state.winners),
            "repeated": c["answers_repeated"],
            "superseded": c["answers_superseded"],
            "older_than_manifest": c["answers_older_than_manifest"],
            "applied": c["answers_applied"],
            "applied_human": c["answers_applied_human"],
            "applied_auto_accepted": c["answers_applied_auto"],
            "pending_agreement": c["answers_pending"],
            "fallback": c["answers_fallback"],
        },
        "previous": {"lines": c["previous_lines"], "carried_forward": carried_forward},
        "rejects": c["rejects"],
        "boxes_dropped": c["boxes_dropped"],
        "rejects_by_code": dict(sorted(state.reject_codes.items())),
        "reject_ratio": round(ratio, 6),
        "max_reject_ratio": max_reject_ratio,
        "threshold_exceeded": ratio > max_reject_ratio,
        "labels": labels,
        "totals": totals,
        "warnings": warnings,
        "record": merge_record.build(state.digest.hexdigest(), lines, state.bucket, state.label_images,
                                     c["verified_empty"]),
    }


def check_reject_threshold(summary: dict) -> None:
    if summary["threshold_exceeded"]:
        raise RejectThresholdExceeded(
            f"{summary['rejects']} rejected lines ({summary['reject_ratio']:.1%}) exceed max_reject_ratio "
            f"{summary['max_reject_ratio']:.0%} (Rekognition refuses a manifest with more than 20% invalid lines); "
            f"by code: {summary['rejects_by_code']}. Read the rejects file, fix the answers or the previous "
            "manifest, then clear the task."
        )
