"""Ranged reads of one S3 object for core.imagesize (no Airflow import: the benchmark's shards use it too)."""

from __future__ import annotations

from botocore.exceptions import ClientError

from rekfeedback.core import paid


class S3RangeReader:
    """`read_range` for core.imagesize over one S3 object; learns the object's size from Content-Range."""

    def __init__(self, s3, bucket: str, key: str):
        self.s3, self.bucket, self.key = s3, bucket, key
        self.total_size: int | None = None
        self.etag: str | None = None  # of the bytes read: what a paid answer is about

    def __call__(self, start: int, end: int) -> bytes:
        try:
            resp = self.s3.get_object(Bucket=self.bucket, Key=self.key, Range=f"bytes={start}-{end - 1}")
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") == "InvalidRange":
                self.total_size = self.total_size if self.total_size is not None else (0 if start == 0 else None)
                return b""  # past the end (or an empty object)
            raise
        self.etag = paid.normalize_etag(resp.get("ETag")) or self.etag
        content_range = resp.get("ContentRange") or ""
        if "/" in content_range and not content_range.endswith("/*"):
            self.total_size = int(content_range.rsplit("/", 1)[1])
        elif not content_range:
            self.total_size = resp.get("ContentLength")  # the server sent the whole object
        return resp["Body"].read()
