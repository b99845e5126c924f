"""The previous manifest in source-ref order: read as it is when already sorted (ours always is),
else sorted externally in runs of ``chunk_lines`` spilled to a temporary directory."""

from __future__ import annotations

import heapq
import json
import operator
import os
from collections import Counter
from typing import Iterable, Iterator

_OURS = '{"source-ref":"'  # how the lines the merge writes start
_strip_newline = operator.methodcaller("rstrip", "\r\n")


def source_ref_of(line: str) -> str | None:
    """The line's source-ref, cheaply for the merge's own lines (which start with it)."""
    if line.startswith(_OURS):
        end = line.find('"', 15)
        if end > 15 and line.find("\\", 15, end) < 0:
            return line[15:end]
    try:
        record = json.loads(line)
    except ValueError:
        return None
    ref = record.get("source-ref") if isinstance(record, dict) else None
    return ref if isinstance(ref, str) else None


def bucket_of_ref(ref: str) -> str:
    return ref[5:ref.find("/", 5)]


def _sort_key(line: str):
    return (source_ref_of(line) or "", line)


def clean(lines: Iterable[str]) -> Iterator[str]:
    """Lines without their newline; empty lines dropped (they hold no data)."""
    return filter(None, map(_strip_newline, lines))


def scan_sorted(lines: Iterable[str], buckets: Counter) -> bool:
    """Whether the lines are sorted by source-ref; counts images per bucket on the way."""
    last = ""
    in_order = True
    for ref in map(source_ref_of, clean(lines)):
        if ref is None:
            continue
        buckets[bucket_of_ref(ref)] += 1
        if ref < last:
            in_order = False
        last = ref
    return in_order


def external_sort(lines: Iterable[str], buckets: Counter, tmpdir: str, chunk_lines: int) -> Iterator[str]:
    """The lines (without newlines) sorted by source-ref, then text; counts images per bucket on the way."""
    runs: list[str] = []
    chunk: list[str] = []

    def spill():
        chunk.sort(key=_sort_key)
        path = os.path.join(tmpdir, f"run-{len(runs):05d}.jsonl")
        with open(path, "w", encoding="utf-8") as out:
            out.writelines(line + "\n" for line in chunk)
        runs.append(path)
        chunk.clear()

    for line in lines:
        ref = source_ref_of(line)
        if ref is not None:
            buckets[bucket_of_ref(ref)] += 1
        chunk.append(line)
        if len(chunk) >= chunk_lines:
            spill()
    if not runs:
        chunk.sort(key=_sort_key)
        return iter(chunk)
    if chunk:
        spill()
    files = [open(path, encoding="utf-8") for path in runs]
    streams = [(line.rstrip("\n") for line in f) for f in files]

    def merged():
        try:
            yield from heapq.merge(*streams, key=_sort_key)
        finally:
            for f in files:
                f.close()

    return merged()
