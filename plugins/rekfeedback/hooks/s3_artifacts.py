"""The turn's files on S3 (JSON Lines, JSON, HTML), read and written through one `S3Hook`.

Every operator and sensor reads and writes its artifacts here, so "missing", "a retry rewrites the
file" and "which files under a prefix are prediction files" mean the same thing everywhere.
"""

from __future__ import annotations

from collections.abc import Iterator

from airflow.providers.amazon.aws.hooks.s3 import S3Hook
from botocore.exceptions import ClientError

from rekfeedback.core.paths import MISSING_CODES, S3Uri, parse_s3_uri

JSONL = "application/x-ndjson"


def is_missing(exc: ClientError) -> bool:
    return exc.response.get("Error", {}).get("Code") in MISSING_CODES


class S3Artifacts:
    """Read, write, list and test the turn's objects; `hook` is the caller's S3Hook (its connection)."""

    def __init__(self, hook: S3Hook):
        self.hook = hook

    @property
    def client(self):
        return self.hook.conn

    def exists(self, uri: S3Uri) -> bool:
        try:
            self.client.head_object(Bucket=uri.bucket, Key=uri.key)
            return True
        except ClientError as exc:
            if is_missing(exc):
                return False
            raise

    def etag(self, uri: S3Uri) -> str | None:
        """The object's ETag (which changes with its content), None when it does not exist."""
        try:
            return self.client.head_object(Bucket=uri.bucket, Key=uri.key)["ETag"]
        except ClientError as exc:
            if is_missing(exc):
                return None
            raise

    def read_bytes(self, uri: S3Uri, *, missing_ok: bool = False) -> bytes | None:
        """The object's bytes; None when it does not exist and `missing_ok`, else the ClientError."""
        try:
            return self.client.get_object(Bucket=uri.bucket, Key=uri.key)["Body"].read()
        except ClientError as exc:
            if missing_ok and is_missing(exc):
                return None
            raise

    def read_text(self, uri: S3Uri, *, missing_ok: bool = False) -> str | None:
        body = self.read_bytes(uri, missing_ok=missing_ok)
        return None if body is None else body.decode("utf-8")

    def iter_lines(self, uri: S3Uri) -> Iterator[str]:
        """The object's lines, streamed (blank lines too, so line numbers in errors stay true)."""
        body = self.client.get_object(Bucket=uri.bucket, Key=uri.key)["Body"]
        for raw in body.iter_lines():
            yield raw.decode("utf-8")

    def write_text(self, uri: S3Uri, text: str, content_type: str = JSONL) -> None:
        """Write (replace) the object: a retry rewrites the same file, never appends."""
        self.client.put_object(Bucket=uri.bucket, Key=uri.key, Body=text.encode("utf-8"), ContentType=content_type)

    def download(self, uri: S3Uri, path: str) -> None:
        """The object to a local file, streamed (multipart): a manifest may be larger than memory."""
        self.client.download_file(uri.bucket, uri.key, path)

    def upload(self, path: str, uri: S3Uri, content_type: str = JSONL) -> None:
        """A local file to the object (replaced), streamed (multipart)."""
        self.client.upload_file(path, uri.bucket, uri.key, ExtraArgs={"ContentType": content_type})

    def copy(self, source: S3Uri, target: S3Uri) -> None:
        """A server-side copy: the same bytes, no second upload."""
        self.client.copy({"Bucket": source.bucket, "Key": source.key}, target.bucket, target.key)

    def jsonl_files(self, uri: S3Uri | str, what: str = "predictions_uris") -> list[S3Uri]:
        """One .jsonl object as is, or the .jsonl files under a prefix (sorted; checkpoints left out)."""
        loc = uri if isinstance(uri, S3Uri) else parse_s3_uri(uri, what)
        if loc.key.endswith(".jsonl"):
            return [loc]
        prefix = loc.key.rstrip("/") + "/" if loc.key else ""
        keys = self.hook.list_keys(bucket_name=loc.bucket, prefix=prefix) or []
        return [S3Uri(loc.bucket, k) for k in sorted(keys)
                if k.endswith(".jsonl") and not k.endswith(".checkpoint.jsonl")]
