"""S3 console links: an output object or prefix, and a turn's report."""

from __future__ import annotations

from urllib.parse import quote

from airflow.providers.amazon.aws.links.base_aws import BASE_AWS_CONSOLE_LINK

from rekfeedback.core.paths import parse_s3_uri
from rekfeedback.links.console import AwsConsoleLink

_OBJECT = BASE_AWS_CONSOLE_LINK + "/s3/object/{bucket}?region={region_name}&prefix={key}"
_PREFIX = BASE_AWS_CONSOLE_LINK + "/s3/buckets/{bucket}?region={region_name}&prefix={key}&showversions=false"


class _S3Link(AwsConsoleLink):
    """Persist with ``bucket`` and ``key`` (or use `persist_uri`); a key ending in '/' is a prefix."""

    format_str = _OBJECT

    def format_link(self, **kwargs) -> str:
        if "bucket" not in kwargs or "key" not in kwargs or "aws_domain" not in kwargs:
            return ""
        key = str(kwargs["key"])
        template = _PREFIX if not key or key.endswith("/") else _OBJECT
        kwargs["key"] = quote(key, safe="")
        kwargs["bucket"] = quote(str(kwargs["bucket"]), safe="")
        try:
            return template.format(**kwargs)
        except KeyError:
            return ""

    @classmethod
    def persist_uri(cls, context, operator, uri: str, region_name: str | None, aws_partition: str = "aws") -> None:
        s3 = parse_s3_uri(uri, "S3 URI")
        cls.persist(context=context, operator=operator, region_name=region_name, aws_partition=aws_partition,
                    bucket=s3.bucket, key=s3.key)


class S3OutputLink(_S3Link):
    """An output object (or a prefix, when the key ends in '/') in the S3 console."""

    name = "S3 Output"
    key = "rekfeedback_s3_output"


class TurnReportLink(_S3Link):
    """The turn report's index.html in the S3 console. `persist_uri` accepts the turn prefix too."""

    name = "Turn Report"
    key = "rekfeedback_turn_report"

    @classmethod
    def persist_uri(cls, context, operator, uri: str, region_name: str | None, aws_partition: str = "aws") -> None:
        s3 = parse_s3_uri(uri, "turn report URI")
        if not s3.key.endswith(".html"):
            s3 = s3.join("report", "index.html")
        super().persist_uri(context, operator, str(s3), region_name, aws_partition)
