"""Public hooks of the provider: `from rekfeedback.hooks import ...` (imported lazily)."""

from __future__ import annotations

from rekfeedback._lazy import lazy_exports

_MODULES = {
    "RekognitionCustomLabelsHook": "rekognition",
    "GroundTruthHook": "ground_truth",
    "LabelStudioHook": "label_studio",
    "LabelStudioAsyncHook": "label_studio_async",
}

__all__ = sorted(_MODULES)
__getattr__ = lazy_exports(__name__, _MODULES)
