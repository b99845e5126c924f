"""The S3 side of the manifest merge: its inputs downloaded to local files (streamed, multipart, so memory
stays bounded by the number of distinct new images, not by file sizes), the merge record beside a manifest,
and the loop's list of images that can never be predicted. The merge itself is `core.merge`."""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Iterator

from airflow.providers.amazon.aws.hooks.s3 import S3Hook

from rekfeedback.core import merge_record
from rekfeedback.core import predictions as preds
from rekfeedback.core.paths import S3Uri, parse_s3_uri
from rekfeedback.hooks.s3_artifacts import S3Artifacts


def lines_of(path: str) -> Iterator[str]:
    with open(path, encoding="utf-8") as f:
        yield from f


def jsonl_of(path: str) -> Iterator[dict]:
    with open(path, encoding="utf-8") as f:
        yield from preds.iter_jsonl(f, path)


class ManifestFiles(S3Artifacts):
    def __init__(self, hook: S3Hook, log: logging.Logger | logging.LoggerAdapter):
        super().__init__(hook)
        self.log = log

    def fetch(self, uri: str, what: str, directory: str) -> str:
        """Download the object `uri` (the parameter `what`) into `directory`; a clear error if it is not there."""
        s3 = parse_s3_uri(uri, what)
        if not s3.key or s3.key.endswith("/"):
            raise ValueError(f"{what} must name an object, got the prefix {uri!r}")
        if not self.exists(s3):
            raise FileNotFoundError(f"{what} {uri} does not exist; check the upstream task's output "
                                    "(or remove the URI from the list if that step produced nothing).")
        path = os.path.join(directory, f"in-{len(os.listdir(directory)):04d}")
        self.download(s3, path)  # streamed to disk, multipart
        return path

    def read_record(self, manifest_uri: str) -> dict | None:
        """The record the merge that wrote this manifest left beside it (None if there is none or it is unreadable)."""
        text = self.read_text(parse_s3_uri(merge_record.record_key(manifest_uri)), missing_ok=True)
        try:
            return json.loads(text) if text else None
        except ValueError:
            self.log.warning("The merge record beside %s is not JSON; every previous line is validated", manifest_uri)
            return None

    def write_record(self, manifest_uri: S3Uri, record: dict) -> None:
        self.write_text(parse_s3_uri(merge_record.record_key(str(manifest_uri))), json.dumps(record, sort_keys=True),
                        "application/json")

    def record_unusable(self, unusable_images_uri: str, unlabelled_paths: list[str], directory: str) -> tuple[str, int]:
        """Add this turn's unusable images to the loop's list (idempotent: a rerun writes the same bytes)."""
        uri = parse_s3_uri(unusable_images_uri, "unusable_images_uri")
        existing = list(jsonl_of(self.fetch(str(uri), "unusable_images_uri", directory))) if self.exists(uri) else []
        new = [line for path in unlabelled_paths for line in jsonl_of(path)]
        lines = preds.unusable_images(existing, new)
        if len(lines) != len(existing):
            self.write_text(uri, preds.dumps_jsonl(lines))
            self.log.info("%d image(s) can never be predicted (%d new this turn); later turns skip them: %s",
                          len(lines), len(lines) - len(existing), uri)
        return str(uri), len(lines)
