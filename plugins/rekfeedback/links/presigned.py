"""Links that open a turn's outputs themselves (the report, the merged manifest, the answers).

The URL is a presigned S3 GET signed with the task's own AWS connection when the task writes the output, so it
points wherever that connection points: AWS, or the local emulator, alike. It expires after 7 days (SigV4's
longest); rerunning the task signs a fresh one. Signing makes no network call.
"""

from __future__ import annotations

from typing import ClassVar

from airflow.providers.common.compat.sdk import BaseOperatorLink, XCom

from rekfeedback.core.paths import parse_s3_uri

PRESIGN_SECONDS = 7 * 24 * 3600


class _PresignedS3Link(BaseOperatorLink):
    name: ClassVar[str]
    key: ClassVar[str]
    content_type: ClassVar[str | None] = None

    def get_link(self, operator, *, ti_key) -> str:
        try:
            value = XCom.get_value(key=self.key, ti_key=ti_key)
        except Exception:  # a missing XCom must not break the task page
            return ""
        return value if isinstance(value, str) else ""

    @classmethod
    def presign(cls, operator, uri: str) -> str:
        from airflow.providers.amazon.aws.hooks.s3 import S3Hook

        loc = parse_s3_uri(uri, "output URI")
        hook = getattr(operator, "hook", None)
        s3 = S3Hook(aws_conn_id=getattr(operator, "aws_conn_id", "aws_default"),
                    region_name=getattr(hook, "region_name", None) or getattr(operator, "region_name", None))
        params = {"Bucket": loc.bucket, "Key": loc.key}
        if cls.content_type:  # opens in the browser rather than downloading
            params["ResponseContentType"] = cls.content_type
        return s3.get_conn().generate_presigned_url("get_object", Params=params, ExpiresIn=PRESIGN_SECONDS)

    @classmethod
    def persist(cls, context, operator, uri: str) -> None:
        if not operator.do_xcom_push or not uri:
            return
        try:
            url = cls.presign(operator, uri)
        except Exception as exc:  # noqa: BLE001 - a link must never fail the task that wrote the output
            operator.log.warning("no %s link: %s", cls.name, exc)
            return
        context["ti"].xcom_push(key=cls.key, value=url)


class TurnReportPageLink(_PresignedS3Link):
    """The turn report (index.html) itself, in the browser."""

    name = "Turn report (open)"
    key = "rekfeedback_turn_report_page"
    content_type = "text/html; charset=utf-8"


class ManifestFileLink(_PresignedS3Link):
    """The turn's merged manifest (JSON Lines), to download."""

    name = "Merged manifest (download)"
    key = "rekfeedback_manifest_file"


class AnswersFileLink(_PresignedS3Link):
    """The humans' normalized answers (JSON Lines), to download."""

    name = "Review answers (download)"
    key = "rekfeedback_answers_file"
