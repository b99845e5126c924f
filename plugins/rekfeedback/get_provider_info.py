"""Provider metadata for Airflow's provider discovery (entry point `apache_airflow_provider`)."""

from __future__ import annotations

_INTEGRATION = "Amazon Rekognition Custom Labels feedback loop"


def get_provider_info() -> dict:
    return {
        "package-name": "rekfeedback",
        "name": "Rekognition Custom Labels feedback loop",
        "description": "Hooks, operators, sensors, triggers and links for the Rekognition Custom Labels "
        "model-improvement loop with Ground Truth or Label Studio review.",
        "versions": ["0.1.0"],
        "integrations": [
            {
                "integration-name": _INTEGRATION,
                "external-doc-url": "https://docs.aws.amazon.com/rekognition/latest/customlabels-dg/",
                "tags": ["aws"],
            }
        ],
        "hooks": [{"integration-name": _INTEGRATION, "python-modules": []}],
        "operators": [{"integration-name": _INTEGRATION, "python-modules": []}],
        "sensors": [{"integration-name": _INTEGRATION, "python-modules": []}],
        "triggers": [{"integration-name": _INTEGRATION, "python-modules": []}],
        "extra-links": [],
        "connection-types": [
            {"connection-type": "labelstudio", "hook-class-name": "rekfeedback.hooks.label_studio.LabelStudioHook",
             "hook-name": "Label Studio"},
        ],
    }
