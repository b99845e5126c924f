"""Public triggers of the provider: `from rekfeedback.triggers import ...`.

Imported lazily so that importing one class does not pull in every service's dependencies.
"""

from __future__ import annotations

import importlib

_MODULES = {
    "ProjectVersionRunningTrigger": "project_version",
    "ProjectVersionTrainedTrigger": "project_version",
    "GroundTruthLabelingJobTrigger": "ground_truth",
    "LabelStudioReviewTrigger": "label_studio",
}

__all__ = sorted(_MODULES)


def __getattr__(name: str):
    if name in _MODULES:
        return getattr(importlib.import_module(f"{__name__}.{_MODULES[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
