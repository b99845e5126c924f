"""Console link to a Rekognition Custom Labels model version."""

from __future__ import annotations

from urllib.parse import quote

from airflow.providers.amazon.aws.links.base_aws import BASE_AWS_CONSOLE_LINK

from rekfeedback.links.console import AwsConsoleLink


class RekognitionProjectVersionLink(AwsConsoleLink):
    """The model's page in the Rekognition Custom Labels console.

    Persist with ``project_name`` and ``version_name`` (see `persist_for_arn`).
    """

    name = "Rekognition Model"
    key = "rekfeedback_rekognition_project_version"
    format_str = (
        BASE_AWS_CONSOLE_LINK
        + "/rekognition/custom-labels?region={region_name}#/projects/{project_name}/models/{version_name}"
    )

    def format_link(self, **kwargs) -> str:
        for field in ("project_name", "version_name"):
            if field in kwargs:
                kwargs[field] = quote(str(kwargs[field]), safe="")
        return super().format_link(**kwargs)

    @classmethod
    def persist_for_arn(cls, context, operator, project_version_arn: str, region_name: str | None,
                        aws_partition: str = "aws") -> None:
        from rekfeedback.hooks.rekognition import parse_project_version_arn

        try:
            ref = parse_project_version_arn(project_version_arn)
        except ValueError:
            return  # a bad ARN fails the task elsewhere, with a message about the parameter
        cls.persist(context=context, operator=operator, region_name=region_name or ref.region,
                    aws_partition=aws_partition or ref.partition,
                    project_name=ref.project_name, version_name=ref.version_name)
