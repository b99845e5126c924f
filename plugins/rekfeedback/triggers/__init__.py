"""Public triggers of the provider: `from rekfeedback.triggers import ...` (imported lazily)."""

from __future__ import annotations

from rekfeedback._lazy import lazy_exports

_MODULES = {
    "ProjectVersionRunningTrigger": "project_version",
    "ProjectVersionTrainedTrigger": "project_version",
    "ProjectVersionStoppedTrigger": "project_version",
    "ProjectVersionSettledTrigger": "project_version",
    "DatasetReadyTrigger": "dataset",
    "GroundTruthLabelingJobTrigger": "ground_truth",
    "LabelStudioReviewTrigger": "label_studio",
}

__all__ = sorted(_MODULES)
__getattr__ = lazy_exports(__name__, _MODULES)
