"""Public links of the provider: `from rekfeedback.links import ...` (imported lazily)."""

from __future__ import annotations

from rekfeedback._lazy import lazy_exports

_MODULES = {
    "RekognitionProjectVersionLink": "rekognition",
    "LabelingJobLink": "ground_truth",
    "LabelingJobOutputLink": "ground_truth",
    "S3OutputLink": "s3",
    "LabelStudioProjectLink": "label_studio",
    "TurnReportLink": "s3",
    "TurnReportPageLink": "presigned",
    "ManifestFileLink": "presigned",
    "AnswersFileLink": "presigned",
}

__all__ = sorted(_MODULES)
__getattr__ = lazy_exports(__name__, _MODULES)
