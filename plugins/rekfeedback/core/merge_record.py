"""What a merge records about the manifest it wrote, so that the next merge can trust it.

A cumulative manifest is mostly lines earlier merges wrote and validated. Each merge records the
SHA-256 of the bytes it wrote with the counts the next summary needs (lines, images per label,
verified empty images, the images bucket), beside the manifest (``<manifest>.merge.json``). The
next merge hashes the previous manifest: when the digest matches, its lines are carried forward
as they are (neither parsed nor validated; only the lines of images with new answers are read);
when it does not (the file was edited, or written by another tool or an older version), every
line is validated again.
"""

from __future__ import annotations

import hashlib
import itertools
from typing import Iterable, Mapping

RECORD_SUFFIX = ".merge.json"
SCHEMA = "rekfeedback.merge.record/1"
_HASH_LINES = 4096  # lines hashed together (one update per run of lines, not per line)


def record_key(manifest_key: str) -> str:
    """Where the record of the manifest at ``manifest_key`` (an S3 key, URI or path) is stored."""
    return manifest_key + RECORD_SUFFIX


class Digest:
    """The SHA-256 of text written or read in pieces (each piece as UTF-8)."""

    def __init__(self) -> None:
        self._hash = hashlib.sha256()

    def add(self, text: str) -> None:
        self._hash.update(text.encode("utf-8", "surrogatepass"))

    def hexdigest(self) -> str:
        return self._hash.hexdigest()


def digest_of(lines: Iterable[str]) -> str:
    """The SHA-256 of the lines as they are (with their newlines), as ``Digest`` computes it for the writer."""
    digest = Digest()
    source = iter(lines)
    while chunk := "".join(itertools.islice(source, _HASH_LINES)):
        digest.add(chunk)
    return digest.hexdigest()


def build(sha256: str, lines: int, images_bucket: str | None, label_images: Mapping[str, int],
          verified_empty: int) -> dict:
    return {"schema": SCHEMA, "sha256": sha256, "lines": int(lines), "images_bucket": images_bucket,
            "label_images": {name: int(n) for name, n in sorted(label_images.items())},
            "verified_empty": int(verified_empty)}


def usable(record) -> bool:
    """Whether ``record`` is a record of ours (an unreadable one means: validate everything)."""
    return (isinstance(record, Mapping) and record.get("schema") == SCHEMA and isinstance(record.get("sha256"), str)
            and isinstance(record.get("lines"), int) and isinstance(record.get("label_images"), Mapping)
            and isinstance(record.get("verified_empty"), int))
