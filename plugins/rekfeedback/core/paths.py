"""S3 URIs and the turn's layout (docs/data-formats.md)."""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass

# S3 error codes of an object (or listing) that is not there: "missing", for every reader of the turn's files.
MISSING_CODES = frozenset({"404", "NoSuchKey", "NotFound"})


@dataclass(frozen=True)
class S3Uri:
    bucket: str
    key: str

    def __str__(self) -> str:
        return f"s3://{self.bucket}/{self.key}"

    def join(self, *parts: str) -> "S3Uri":
        key = "/".join(p.strip("/") for p in (self.key, *parts) if p and p.strip("/"))
        return S3Uri(self.bucket, key)


def parse_s3_uri(uri: str, what: str = "S3 URI") -> S3Uri:
    """Parse s3://bucket/key; raise ValueError naming `what` and the expected shape otherwise."""
    m = re.fullmatch(r"s3://([a-z0-9][a-z0-9.\-]{1,61}[a-z0-9])(?:/(.*))?", (uri or "").strip())
    if not m:
        raise ValueError(f"{what} must look like s3://bucket/prefix, got {uri!r}")
    return S3Uri(m.group(1), m.group(2) or "")


def run_key(run_id: str, *, lower: bool = False) -> str:
    """A DAG run id made safe for S3 keys and AWS names (letters, digits, '-'; lower case with ``lower``).

    Run ids that normalize alike (``turn:1`` and ``turn-1``; with ``lower``, ``Turn-1`` and
    ``turn-1``) must not share a turn prefix, a labeling job or a model version: whenever the key is
    not the run id itself, 8 hex digits of the raw run id's SHA-1 are appended.
    """
    key = re.sub(r"[^A-Za-z0-9]+", "-", run_id).strip("-")
    if lower:
        key = key.lower()
    if not key or key != run_id:
        digest = hashlib.sha1(run_id.encode("utf-8", "surrogatepass")).hexdigest()[:8]
        key = f"{key}-{digest}" if key else f"run-{digest}"
    return key


def turn_prefix(output: str, dag_id: str, run_id: str) -> S3Uri:
    return parse_s3_uri(output, "output prefix").join(dag_id, run_key(run_id))


def shard_part_name(shard_index: int, shard_count: int) -> str:
    return f"part-{shard_index:05d}-of-{shard_count:05d}"
