"""Public operators of the provider: `from rekfeedback.operators import ...` (imported lazily)."""

from __future__ import annotations

from rekfeedback._lazy import lazy_exports

_MODULES = {
    "RekognitionStartProjectVersionOperator": "project_version",
    "RekognitionStopProjectVersionOperator": "project_version_stop",
    "RekognitionCustomLabelsInferenceOperator": "inference",
    "ReviewSelectionOperator": "selection",
    "GroundTruthVerificationOperator": "ground_truth",
    "LabelStudioReviewOperator": "label_studio",
    "ManifestMergeOperator": "manifest",
    "AnswerCheckOperator": "answer_check",
    "RekognitionTrainProjectVersionOperator": "training",
    "FeedbackLoopPreflightOperator": "preflight",
    "TurnReportOperator": "report",
    "ChampionGateOperator": "champion",
    "ChampionApprovalOperator": "champion",
    "ChampionRecordOperator": "champion",
    "ChampionPruneOperator": "champion",
}

__all__ = sorted(_MODULES)
__getattr__ = lazy_exports(__name__, _MODULES)
