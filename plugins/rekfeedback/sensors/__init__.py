"""Public sensors of the provider: `from rekfeedback.sensors import ...`.

Imported lazily so that importing one class does not pull in every service's dependencies.
"""

from __future__ import annotations

import importlib

_MODULES = {
    "GroundTruthLabelingJobSensor": "ground_truth",
    "LabelStudioReviewSensor": "label_studio",
}

__all__ = sorted(_MODULES)


def __getattr__(name: str):
    if name in _MODULES:
        return getattr(importlib.import_module(f"{__name__}.{_MODULES[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
