"""Extra links of the Ground Truth tasks: the labeling job in the SageMaker console, and its output in S3."""

from __future__ import annotations

from urllib.parse import quote

from airflow.providers.amazon.aws.links.base_aws import BASE_AWS_CONSOLE_LINK

from rekfeedback.links.console import AwsConsoleLink


class LabelingJobLink(AwsConsoleLink):
    """The (first) labeling job of the task in the SageMaker Ground Truth console."""

    name = "Ground Truth labeling job"
    key = "rekfeedback_labeling_job"
    format_str = (BASE_AWS_CONSOLE_LINK
                  + "/sagemaker/groundtruth?region={region_name}#/labeling-jobs/details/{job_name}")

    def format_link(self, **kwargs) -> str:
        if not kwargs.get("job_name"):
            return ""
        return super().format_link(**{**kwargs, "job_name": quote(kwargs["job_name"], safe="")})


class LabelingJobOutputLink(AwsConsoleLink):
    """The Ground Truth output folder of the task's jobs in the S3 console."""

    name = "Ground Truth output (S3)"
    key = "rekfeedback_labeling_job_output"
    format_str = BASE_AWS_CONSOLE_LINK + "/s3/buckets/{bucket}?region={region_name}&prefix={prefix}"

    def format_link(self, **kwargs) -> str:
        if not kwargs.get("bucket"):
            return ""
        prefix = kwargs.get("prefix") or ""
        if prefix and not prefix.endswith("/"):
            prefix += "/"
        return super().format_link(**{**kwargs, "prefix": quote(prefix, safe="/")})
