"""The loop's durable records in S3: the paid-work ledger, model ownership, images with their ETags.

A thin layer over one boto3 S3 client (from S3Hook), shared by preflight, inference and the model
tasks, so each reads and writes these records the same way.
"""

from __future__ import annotations

import json
from typing import Iterable, Iterator

from botocore.exceptions import ClientError

from rekfeedback.core import ownership, paid
from rekfeedback.core.paths import MISSING_CODES, S3Uri, parse_s3_uri
from rekfeedback.core.predictions import dumps_jsonl, has_image_extension, iter_jsonl



def _code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))


class LoopStore:
    def __init__(self, s3_client):
        self.s3 = s3_client

    # --- plain objects ------------------------------------------------------------------------
    def read_text(self, uri: S3Uri) -> str | None:
        try:
            return self.s3.get_object(Bucket=uri.bucket, Key=uri.key)["Body"].read().decode("utf-8")
        except ClientError as exc:
            if _code(exc) in MISSING_CODES:
                return None
            raise

    def read_json(self, uri: S3Uri) -> dict | None:
        text = self.read_text(uri)
        return None if text is None else json.loads(text)

    def put_text(self, uri: S3Uri, text: str, content_type: str = "application/json") -> None:
        self.s3.put_object(Bucket=uri.bucket, Key=uri.key, Body=text.encode("utf-8"), ContentType=content_type)

    def put_json_once(self, uri: S3Uri, record: dict) -> dict:
        """Write `record` unless the object exists (first writer wins); return the record that holds."""
        body = json.dumps(record, sort_keys=True, indent=1).encode("utf-8")
        try:
            self.s3.put_object(Bucket=uri.bucket, Key=uri.key, Body=body, IfNoneMatch="*",
                               ContentType="application/json")
            return record
        except ClientError as exc:
            if _code(exc) not in ("PreconditionFailed", "ConditionalRequestConflict", "412"):
                raise
        existing = self.read_json(uri)
        return existing if existing is not None else record

    def delete(self, uri: S3Uri) -> None:
        self.s3.delete_object(Bucket=uri.bucket, Key=uri.key)

    def keys_under(self, prefix: S3Uri, suffix: str = "") -> Iterator[S3Uri]:
        for page in self.s3.get_paginator("list_objects_v2").paginate(Bucket=prefix.bucket,
                                                                      Prefix=prefix.key.rstrip("/") + "/"):
            for obj in page.get("Contents", []):
                if obj["Key"].endswith(suffix):
                    yield S3Uri(prefix.bucket, obj["Key"])

    # --- images -------------------------------------------------------------------------------
    def list_images(self, prefix: S3Uri, extensions: Iterable[str]) -> tuple[list[dict], int]:
        """Objects with an image extension under `prefix` as `{"source-ref", "size", "etag"}`, and the others' count."""
        images, other = [], 0
        for page in self.s3.get_paginator("list_objects_v2").paginate(Bucket=prefix.bucket, Prefix=prefix.key):
            for obj in page.get("Contents", []):
                key = obj["Key"]
                if key.endswith("/"):
                    continue
                if has_image_extension(key, extensions):
                    images.append({"source-ref": f"s3://{prefix.bucket}/{key}", "size": obj.get("Size"),
                                   "etag": paid.normalize_etag(obj.get("ETag"))})
                else:
                    other += 1
        return images, other

    def etag(self, source_ref: str) -> str | None:
        """The object's ETag, None when it does not exist."""
        uri = parse_s3_uri(source_ref, "source-ref")
        try:
            return paid.normalize_etag(self.s3.head_object(Bucket=uri.bucket, Key=uri.key).get("ETag"))
        except ClientError as exc:
            if _code(exc) in MISSING_CODES:
                return None
            raise

    # --- the paid-work ledger -----------------------------------------------------------------
    def read_ledger(self, ledger_prefix: S3Uri) -> dict[str, dict]:
        """Every turn's paid lines, newest per image (core.paid.index); none while the output bucket does not
        exist yet (preflight reports the bucket itself)."""
        lines: list[dict] = []
        try:
            for uri in self.keys_under(ledger_prefix, ".jsonl"):
                text = self.read_text(uri)
                if text:
                    lines.extend(iter_jsonl(text, f"paid-work ledger {uri}"))
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") != "NoSuchBucket":
                raise
        return paid.index(lines)

    def write_ledger(self, uri: S3Uri, lines: list[dict]) -> None:
        self.put_text(uri, dumps_jsonl(lines), "application/x-ndjson")

    def etags_for(self, refs: Iterable[str], known: dict[str, str | None], ledger: dict[str, dict]) -> dict:
        """ETags of `refs`: from the listing when known, else a HEAD, only for images the ledger knows
        (an image the ledger never saw is predicted whatever its ETag)."""
        out = {}
        for ref in refs:
            if ref in known:
                out[ref] = known[ref]
            elif ref in ledger:
                out[ref] = self.etag(ref)
            else:
                out[ref] = None
        return out


class ModelRecords:
    """This run's durable model records (core.ownership) under `records_prefix`, and the loop's
    owned-model record; read and written through S3 so every try and the teardown see the same."""

    def __init__(self, store: LoopStore, records_prefix: str, owned_models_uri: str | None = None):
        self.store = store
        self.prefix = parse_s3_uri(records_prefix, "records_prefix")
        self.owned_prefix = None if not owned_models_uri else parse_s3_uri(owned_models_uri, "owned_models_uri")

    @property
    def ownership_uri(self) -> S3Uri:
        return self.prefix.join("ownership.json")

    def ownership(self) -> dict | None:
        return self.store.read_json(self.ownership_uri)

    def start(self) -> dict | None:
        return self.store.read_json(self.prefix.join("start.json"))

    def record_start(self, arn: str, run_id: str) -> dict:
        """Before StartProjectVersion: the first request time holds (model hours), and the loop knows
        this run owns a running model until the teardown removes the record."""
        record = self.store.put_json_once(self.prefix.join("start.json"), ownership.start_record(
            project_version_arn=arn, run_id=run_id, records_prefix=str(self.prefix)))
        decided = self.ownership() or {}
        if not decided.get("owned"):  # it was running at the first look and stopped since: what we start is ours
            self.store.put_text(self.ownership_uri, json.dumps(
                {**decided, "project_version_arn": arn, "run_id": run_id, "owned": True,
                 "owned_because": "this run started it"}, sort_keys=True, indent=1))
        if self.owned_prefix is not None:
            self.store.put_text(ownership.owned_model_uri(self.owned_prefix, run_id), json.dumps(record, indent=1))
        return record

    def forget_owned(self, run_id: str) -> None:
        if self.owned_prefix is not None:
            self.store.delete(ownership.owned_model_uri(self.owned_prefix, run_id))
