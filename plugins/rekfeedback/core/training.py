"""Training's pure rules: the version names of a run, the TRAIN/TEST split, and chunks for UpdateDatasetEntries."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Iterator
from typing import TextIO

from rekfeedback.core.merge import source_ref_of
from rekfeedback.core.paths import run_key

# UpdateDatasetEntries.Changes.GroundTruth must be under 5 MB (5,242,880 bytes); keep a margin.
DEFAULT_MAX_CHUNK_BYTES = 4_500_000
VERSION_NAME = re.compile(r"[a-zA-Z0-9_.\-]{1,255}")


def version_name_for_run(dag_id: str, run_id: str) -> str:
    """A model version name for one DAG run: the same on every retry, valid for VersionName."""
    name = re.sub(r"[^a-zA-Z0-9_.\-]+", "-", f"{dag_id}-{run_key(run_id)}").strip("-.") or "version"
    if len(name) > 255:
        name = name[:240] + "-" + hashlib.sha1(name.encode()).hexdigest()[:12]
    return name


def attempt_version_name(name: str, attempt: int) -> str:
    """The version name of the `attempt`-th training of one run: `name`, then `name-r2`, `name-r3`, ..."""
    if attempt <= 1:
        return name
    suffix = f"-r{attempt}"
    return name[: 255 - len(suffix)] + suffix


def check_version_name(name: str) -> str:
    if not VERSION_NAME.fullmatch(name):
        raise ValueError(f"version_name must be 1-255 characters of letters, digits, '_', '.', '-': {name!r}")
    return name


def goes_to_test(source_ref: str, test_share: float) -> bool:
    """Deterministic split by a hash of the image, so an image never moves between TRAIN and TEST."""
    bucket = int(hashlib.sha1(source_ref.encode("utf-8")).hexdigest()[:8], 16) % 10_000
    return bucket < round(test_share * 10_000)


def split_manifest(lines: Iterable[str], train: TextIO, test: TextIO, test_share: float,
                   what: str = "manifest") -> tuple[int, int]:
    """Write each manifest line to `train` or `test` by `goes_to_test`; returns (TRAIN count, TEST count)."""
    counts = [0, 0]
    for n, line in enumerate(lines, 1):
        line = line.rstrip("\r\n")
        if not line.strip():
            continue
        ref = source_ref_of(line)
        if ref is None:
            raise ValueError(f"{what} line {n} has no source-ref; it is not a merged manifest")
        to_test = goes_to_test(ref, test_share)
        (test if to_test else train).write(line + "\n")
        counts[to_test] += 1
    return counts[0], counts[1]


def manifest_chunks(lines: Iterable[str], max_bytes: int) -> Iterator[bytes]:
    """Lines grouped into byte chunks under max_bytes (each line keeps its newline), for UpdateDatasetEntries."""
    chunk, size = [], 0
    for line in lines:
        data = line.rstrip("\r\n").encode("utf-8") + b"\n"
        if len(data) > max_bytes:
            raise ValueError(f"a manifest line of {len(data)} bytes exceeds max_chunk_bytes={max_bytes}")
        if size + len(data) > max_bytes:
            yield b"".join(chunk)
            chunk, size = [], 0
        chunk.append(data)
        size += len(data)
    if chunk:
        yield b"".join(chunk)

