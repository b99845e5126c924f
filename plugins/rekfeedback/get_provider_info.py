"""Provider metadata for Airflow's provider discovery (entry point `apache_airflow_provider`)."""

from __future__ import annotations

from rekfeedback import __version__

_INTEGRATION = "Amazon Rekognition Custom Labels feedback loop"


def get_provider_info() -> dict:
    return {
        "package-name": "rekfeedback",
        "name": "Rekognition Custom Labels feedback loop",
        "description": "Hooks, operators, sensors, triggers and links for the Rekognition Custom Labels "
        "model-improvement loop with Ground Truth or Label Studio review.",
        "versions": [__version__],
        "integrations": [
            {
                "integration-name": _INTEGRATION,
                "external-doc-url": "https://docs.aws.amazon.com/rekognition/latest/customlabels-dg/",
                "tags": ["aws"],
            }
        ],
        "hooks": [{"integration-name": _INTEGRATION, "python-modules": [
            "rekfeedback.hooks.rekognition", "rekfeedback.hooks.ground_truth", "rekfeedback.hooks.label_studio",
            "rekfeedback.hooks.label_studio_async"]}],
        "operators": [{"integration-name": _INTEGRATION, "python-modules": [
            "rekfeedback.operators.preflight", "rekfeedback.operators.project_version",
            "rekfeedback.operators.project_version_stop",
            "rekfeedback.operators.inference", "rekfeedback.operators.selection", "rekfeedback.operators.ground_truth",
            "rekfeedback.operators.label_studio", "rekfeedback.operators.manifest",
            "rekfeedback.operators.training", "rekfeedback.operators.report",
            "rekfeedback.operators.champion"]}],
        "sensors": [{"integration-name": _INTEGRATION, "python-modules": [
            "rekfeedback.sensors.ground_truth", "rekfeedback.sensors.label_studio"]}],
        "triggers": [{"integration-name": _INTEGRATION, "python-modules": [
            "rekfeedback.triggers.project_version", "rekfeedback.triggers.dataset", "rekfeedback.triggers.ground_truth",
            "rekfeedback.triggers.label_studio"]}],
        "extra-links": [
            "rekfeedback.links.rekognition.RekognitionProjectVersionLink",
            "rekfeedback.links.ground_truth.LabelingJobLink",
            "rekfeedback.links.ground_truth.LabelingJobOutputLink",
            "rekfeedback.links.s3.S3OutputLink",
            "rekfeedback.links.s3.TurnReportLink",
            "rekfeedback.links.label_studio.LabelStudioProjectLink",
            "rekfeedback.links.presigned.TurnReportPageLink",
            "rekfeedback.links.presigned.ManifestFileLink",
            "rekfeedback.links.presigned.AnswersFileLink",
        ],
        "connection-types": [
            {"connection-type": "labelstudio", "hook-class-name": "rekfeedback.hooks.label_studio.LabelStudioHook",
             "hook-name": "Label Studio"},
        ],
    }
