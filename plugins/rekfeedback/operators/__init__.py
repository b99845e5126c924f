"""Public operators of the provider: `from rekfeedback.operators import ...`.

Imported lazily so that importing one class does not pull in every service's dependencies.
"""

from __future__ import annotations

import importlib

_MODULES = {
    "RekognitionStartProjectVersionOperator": "project_version",
    "RekognitionStopProjectVersionOperator": "project_version",
    "RekognitionCustomLabelsInferenceOperator": "inference",
    "GroundTruthVerificationOperator": "ground_truth",
    "LabelStudioReviewOperator": "label_studio",
    "ManifestMergeOperator": "manifest",
    "RekognitionTrainProjectVersionOperator": "training",
    "FeedbackLoopPreflightOperator": "preflight",
    "TurnReportOperator": "report",
}

__all__ = sorted(_MODULES)


def __getattr__(name: str):
    if name in _MODULES:
        return getattr(importlib.import_module(f"{__name__}.{_MODULES[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
