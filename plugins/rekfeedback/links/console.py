"""AWS console links appear only when the task's connection talks to AWS itself.

Against another endpoint (the local emulator, a test double, an S3-compatible store) the AWS console has
nothing to show, so those links are not stored and the UI leaves them out; the presigned links
(links/presigned.py) open the outputs on whatever endpoint the connection uses.
"""

from __future__ import annotations

import os
from urllib.parse import urlparse

from airflow.providers.amazon.aws.links.base_aws import BaseAwsLink

_AWS_HOST_SUFFIXES = (".amazonaws.com", ".amazonaws.com.cn", ".api.aws")


def endpoint_is_aws(endpoint_url: str | None) -> bool:
    """True for no custom endpoint (boto3 picks AWS's) or an AWS host."""
    if not endpoint_url:
        return True
    host = (urlparse(endpoint_url).hostname or "").lower()
    return host.endswith(_AWS_HOST_SUFFIXES)


def operator_endpoint(operator) -> str | None:
    """The endpoint the task's AWS connection uses: its `endpoint_url` extra, else AWS_ENDPOINT_URL."""
    hook = getattr(operator, "hook", None)
    config = getattr(hook, "conn_config", None) if hook is not None else None
    return getattr(config, "endpoint_url", None) or os.environ.get("AWS_ENDPOINT_URL")


class AwsConsoleLink(BaseAwsLink):
    """A BaseAwsLink stored only when the task's endpoint is AWS's."""

    @classmethod
    def persist(cls, context, operator, region_name, aws_partition, **kwargs) -> None:
        try:
            if not endpoint_is_aws(operator_endpoint(operator)):
                return
        except Exception:  # noqa: BLE001 - a connection that cannot be read must not fail the task for a link
            return
        super().persist(context=context, operator=operator, region_name=region_name, aws_partition=aws_partition,
                        **kwargs)
