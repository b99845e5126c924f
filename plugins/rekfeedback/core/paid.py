"""Paid work, kept between turns: DetectCustomLabels answers and unusable images, keyed by object ETag.

Every prediction a turn paid for is recorded under the loop's dataset prefix
(`<output_uri>/<dag_id>/dataset/paid/<run-key>/<part>.jsonl`, docs/data-formats.md), whatever
happens to it later: its labeling job failed, the backend left it unresolved, it was not selected
for review. A later turn reuses such a line instead of calling DetectCustomLabels again while the
model version and the object (its ETag) are unchanged. An image whose file is unusable (corrupt,
too small, too large, wrong format, missing) is recorded the same way and skipped until its ETag
changes. Images humans answered are excluded earlier (the cumulative manifest), so their lines are
never looked up.

Pure: the operators read and write the files; this module decides.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Iterable, Mapping

from rekfeedback.core.paths import S3Uri, run_key

# Errors about the object itself: the same bytes fail the same way on every turn.
# InvalidParameterException is what the header probe and Rekognition give a too-small image.
FILE_ERRORS = frozenset({
    "InvalidImageFormatException", "ImageTooLargeException", "InvalidParameterException",
    "NoSuchKey", "NotFound", "404",
})
MISSING = "NoSuchKey"


def normalize_etag(etag: str | None) -> str | None:
    """S3 quotes ETags in some answers and not in others; compare them bare."""
    return etag.strip().strip('"') if isinstance(etag, str) and etag.strip() else None


def ledger_file(ledger_prefix: S3Uri, run_id: str, part: str) -> S3Uri:
    """One file per turn and shard: shards never write the same object, a retry rewrites its own."""
    return ledger_prefix.join(run_key(run_id), f"{part}.jsonl")


def is_unusable(line: dict) -> bool:
    return (line.get("error") or {}).get("code") in FILE_ERRORS


def is_answer(line: dict) -> bool:
    return not line.get("error")


def worth_keeping(line: dict) -> bool:
    """Lines worth a place in the ledger: a paid answer, or a verdict about the file."""
    return is_answer(line) or is_unusable(line)


def ledger_lines(lines: Iterable[dict], etags: Mapping[str, str | None]) -> list[dict]:
    """This shard's lines for the ledger, each with the ETag of the object it is about.

    A line whose object's ETag is unknown is kept only for a missing object (ETag None is its state).
    """
    out = []
    for line in lines:
        ref = line.get("source-ref")
        if not isinstance(ref, str) or not worth_keeping(line):
            continue
        etag = normalize_etag(line.get("etag") or etags.get(ref))
        if etag is None and (line.get("error") or {}).get("code") not in (MISSING, "NotFound", "404"):
            continue
        out.append({**line, "etag": etag})
    return sorted(out, key=lambda x: x["source-ref"])


def index(lines: Iterable[dict]) -> dict[str, dict]:
    """The newest ledger line per image (by `predicted_at`; a later file wins a tie)."""
    out: dict[str, dict] = {}
    for line in lines:
        ref = line.get("source-ref")
        if not isinstance(ref, str):
            continue
        old = out.get(ref)
        if old is None or str(line.get("predicted_at") or "") >= str(old.get("predicted_at") or ""):
            out[ref] = line
    return out


@dataclass
class Plan:
    """What a turn does with its candidate images."""

    reuse: list[dict] = field(default_factory=list)  # paid answers used again, no call
    unusable: list[dict] = field(default_factory=list)  # known unusable, unchanged: skipped
    todo: list[str] = field(default_factory=list)  # to predict (and pay for)


def plan(images: Mapping[str, str | None], paid: Mapping[str, dict], model: str) -> Plan:
    """Split `images` (source-ref -> current ETag, None when the object is missing) by what the ledger knows.

    A paid answer is reused when it came from `model` and the object's ETag is the one it was paid
    for; an unusable verdict holds while the ETag is unchanged (for a missing object: while it is
    still missing). Anything else is predicted.
    """
    out = Plan()
    for ref, etag in images.items():
        line = paid.get(ref)
        etag = normalize_etag(etag)
        if line is not None and normalize_etag(line.get("etag")) == etag:
            if is_unusable(line):
                out.unusable.append(line)
                continue
            if is_answer(line) and line.get("model") == model and etag is not None:
                out.reuse.append(line)
                continue
        out.todo.append(ref)
    return out
