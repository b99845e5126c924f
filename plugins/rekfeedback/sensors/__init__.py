"""Public sensors of the provider: `from rekfeedback.sensors import ...` (imported lazily)."""

from __future__ import annotations

from rekfeedback._lazy import lazy_exports

_MODULES = {
    "GroundTruthLabelingJobSensor": "ground_truth",
    "LabelStudioReviewSensor": "label_studio",
}

__all__ = sorted(_MODULES)
__getattr__ = lazy_exports(__name__, _MODULES)
