"""Prediction lines (the `PredictionLine` record), JSON Lines I/O, shards and the exclusion set."""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from datetime import datetime, timezone
from typing import Iterable, Iterator

from pydantic import Field, model_validator

from rekfeedback.core import records
from rekfeedback.core.records import LabelName, Record, SourceRef, iter_jsonl  # noqa: F401 (its callers import it here)

IMAGE_EXTENSIONS = ("jpg", "jpeg", "png")
# Where inference hands the selection signals (core.signals) of an answer to `prediction_line`.
SIGNALS_KEY = "RekfeedbackSignals"


def utc_now_iso() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def _box(label: dict) -> dict | None:
    box = (label.get("Geometry") or {}).get("BoundingBox")
    if not box:
        return None
    # Still Rekognition ratios (the prediction line's unit); only the key case changes.
    return {k: float(box[K]) for k, K in (("left", "Left"), ("top", "Top"), ("width", "Width"), ("height", "Height"))}


class Ratios(Record):
    """A box in Rekognition's unit: ratios 0..1 of the image (core.boxes converts)."""

    left: float
    top: float
    width: float
    height: float


class PredictedLabel(Record):
    name: LabelName
    confidence: float  # Rekognition's 0..100
    box: Ratios | None = None


class ImageError(Record):
    code: str
    message: str | None = ""


class PredictionLine(Record):
    """One image's DetectCustomLabels answer, or the error that stopped it (docs/data-formats.md)."""

    source_ref: SourceRef = Field(alias="source-ref")
    width: int | None = None
    height: int | None = None
    format: str | None = None
    labels: list[PredictedLabel]
    error: ImageError | None = None
    model: str | None = None
    predicted_at: str | None = None

    @model_validator(mode="after")
    def _sized_when_predicted(self):
        if self.error is None and self.labels:
            for key in ("width", "height"):
                value = getattr(self, key)
                if value is None or value <= 0:
                    raise ValueError(f"'{key}' must be a positive integer for an image with predictions")
        return self


def read_prediction_lines(text: str | bytes | Iterable[str], where: str = "predictions") -> Iterator[dict]:
    """The prediction lines of one file; a malformed line raises ValueError naming file, line and field."""
    return records.read(PredictionLine, text, where)


def prediction_line(
    source_ref: str,
    *,
    width: int | None,
    height: int | None,
    fmt: str | None,
    response: dict | None = None,
    error: dict | None = None,
    model: str,
    predicted_at: str | None = None,
) -> dict:
    """One line per image: the DetectCustomLabels answer, or the error that stopped the image."""
    labels = []
    if error is None and response is not None:
        for label in response.get("CustomLabels") or []:
            labels.append({"name": label["Name"], "confidence": round(float(label["Confidence"]), 3),
                           "box": _box(label)})
    line = {
        "source-ref": source_ref,
        "width": width,
        "height": height,
        "format": fmt,
        "labels": labels,
        "error": None if error is None else {"code": str(error["code"]), "message": str(error.get("message", ""))},
        "model": model,
        "predicted_at": predicted_at or utc_now_iso(),
    }
    if error is None and response is not None and response.get(SIGNALS_KEY) is not None:
        line["signals"] = response[SIGNALS_KEY]
    return line


# --- JSON Lines -------------------------------------------------------------------------------
def dumps_jsonl(lines: Iterable[dict]) -> str:
    return "".join(json.dumps(line, ensure_ascii=False, separators=(",", ":")) + "\n" for line in lines)


def sort_lines(lines: Iterable[dict]) -> list[dict]:
    """Output order is by source-ref, so a resumed run writes the same file as an uninterrupted one."""
    return sorted(lines, key=lambda line: line["source-ref"])


# --- inputs -------------------------------------------------------------------------------------
def has_image_extension(key: str, extensions: Iterable[str] = IMAGE_EXTENSIONS) -> bool:
    name = key.rsplit("/", 1)[-1]
    return "." in name and name.rsplit(".", 1)[-1].lower() in {e.lower().lstrip(".") for e in extensions}


def source_refs_from_manifest(text: str | bytes, what: str = "manifest") -> list[str]:
    """The source-ref of every line of a manifest, in order, without duplicates."""
    refs: list[str] = []
    seen: set[str] = set()
    for number, line in enumerate(iter_jsonl(text, what), start=1):
        ref = line.get("source-ref")
        if not isinstance(ref, str) or not ref.startswith("s3://"):
            raise ValueError(f"{what}: entry {number} has no s3:// source-ref ({str(line)[:120]}); "
                             "every line must carry the image's S3 URI in 'source-ref'")
        if ref not in seen:
            seen.add(ref)
            refs.append(ref)
    return refs


def exclusion_set(manifests: Iterable[tuple[str, str | bytes]]) -> set[str]:
    """Source-refs already labelled by earlier turns, from (name, manifest text) pairs."""
    out: set[str] = set()
    for name, text in manifests:
        out.update(source_refs_from_manifest(text, what=f"exclude manifest {name}"))
    return out


# --- shards -------------------------------------------------------------------------------------
def validate_shard(shard_index: int, shard_count: int) -> tuple[int, int]:
    try:
        index, count = int(shard_index), int(shard_count)
    except (TypeError, ValueError):
        raise ValueError(f"shard_index and shard_count must be integers, got {shard_index!r} and {shard_count!r}") from None
    if count < 1 or not 0 <= index < count:
        raise ValueError(f"shard_index must be in [0, shard_count) with shard_count >= 1; "
                         f"got shard_index={index}, shard_count={count}")
    return index, count


def shard_of(source_ref: str, shard_count: int) -> int:
    """Stable across processes and Python versions (unlike hash()), so shards are the same on retry."""
    digest = hashlib.sha1(source_ref.encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big") % shard_count


def select_shard(source_refs: Iterable[str], shard_index: int, shard_count: int) -> list[str]:
    index, count = validate_shard(shard_index, shard_count)
    return [ref for ref in source_refs if shard_of(ref, count) == index]


# --- summary ------------------------------------------------------------------------------------
def summarize(lines: Iterable[dict]) -> dict:
    """Counts for the XCom summary: predicted / no_prediction / failed, label histogram, error codes."""
    predicted = failed = no_prediction = 0
    labels: Counter = Counter()
    errors: Counter = Counter()
    for line in lines:
        if line.get("error"):
            failed += 1
            errors[line["error"]["code"]] += 1
        elif line.get("labels"):
            predicted += 1
            labels.update({label["name"] for label in line["labels"]})
        else:
            no_prediction += 1
    return {"predicted": predicted, "failed": failed, "no_prediction": no_prediction,
            "labels": dict(sorted(labels.items())), "errors": dict(sorted(errors.items()))}


# --- images that can never be predicted ---------------------------------------------------------
# Errors about the image's own bytes: the same object fails the same way on every turn. Transient
# errors (throttling, a model not running) are not here: those images are tried again next turn.
PERMANENT_IMAGE_ERRORS = frozenset({"InvalidImageFormatException", "ImageTooLargeException"})


def unusable_images(existing: Iterable[dict], unlabelled: Iterable[dict]) -> list[dict]:
    """The loop's list of unusable images: `existing` (earlier turns) plus this turn's unlabelled items
    whose error is permanent. One line per image, the earliest record kept, sorted by source-ref.

    Later turns skip these images like labelled ones, so a corrupt file is not sent to the model
    (and counted as a failure) every turn. A fixed file uploaded under another key is a new image;
    to retry one under the same key, remove its line.
    """
    out: dict[str, dict] = {}
    for line in existing:
        ref = line.get("source-ref")
        if isinstance(ref, str) and ref not in out:
            out[ref] = line
    for line in unlabelled:
        ref, error = line.get("source-ref"), line.get("error") or {}
        if isinstance(ref, str) and ref not in out and error.get("code") in PERMANENT_IMAGE_ERRORS:
            out[ref] = {"source-ref": ref, "error": {"code": error["code"], "message": error.get("message")}}
    return [out[ref] for ref in sorted(out)]
