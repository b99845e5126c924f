"""Rekognition Custom Labels' evaluation summary file, and the comparison of two model versions.

The summary file (DescribeProjectVersions ``EvaluationResult.Summary.S3Object``) holds
``AggregatedEvaluationResults`` (F1Score, Precision, Recall) and ``LabelEvaluationResults`` (per label
``Metrics`` F1Score/Precision/Recall/Threshold and ``NumberOfTestingImages``).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field


@dataclass(frozen=True)
class LabelScore:
    f1: float | None
    precision: float | None
    recall: float | None
    threshold: float | None = None
    testing_images: int | None = None


@dataclass(frozen=True)
class Evaluation:
    f1: float | None
    precision: float | None = None
    recall: float | None = None
    labels: dict[str, LabelScore] = field(default_factory=dict)
    testing_images: int | None = None
    training_images: int | None = None
    version_arn: str | None = None


def _num(value) -> float | None:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def parse_summary(summary, f1_score: float | None = None) -> Evaluation:
    """Parse the summary file (text, bytes or parsed dict).

    ``f1_score`` is ``EvaluationResult.F1Score`` from DescribeProjectVersions; it is the overall F1
    when the file lacks one. Raises ValueError naming what is missing.
    """
    if isinstance(summary, (bytes, bytearray)):
        summary = summary.decode("utf-8")
    if isinstance(summary, str):
        try:
            summary = json.loads(summary)
        except ValueError as exc:
            raise ValueError(f"evaluation summary is not JSON: {exc}") from exc
    if not isinstance(summary, dict):
        raise ValueError("evaluation summary must be a JSON object")
    aggregated = summary.get("AggregatedEvaluationResults") or {}
    details = summary.get("EvaluationDetails") or {}
    labels = {}
    for item in summary.get("LabelEvaluationResults") or []:
        name = item.get("Label")
        if not isinstance(name, str):
            raise ValueError(f"LabelEvaluationResults entry without a Label: {item!r}")
        metrics = item.get("Metrics") or {}
        testing = item.get("NumberOfTestingImages")
        labels[name] = LabelScore(
            f1=_num(metrics.get("F1Score")),
            precision=_num(metrics.get("Precision")),
            recall=_num(metrics.get("Recall")),
            threshold=_num(metrics.get("Threshold")),
            testing_images=testing if isinstance(testing, int) else None,
        )
    f1 = _num(aggregated.get("F1Score"))
    if f1 is None:
        f1 = _num(f1_score)
    if f1 is None:
        raise ValueError("evaluation summary has no AggregatedEvaluationResults.F1Score and no F1Score was given")
    return Evaluation(
        f1=f1,
        precision=_num(aggregated.get("Precision")),
        recall=_num(aggregated.get("Recall")),
        labels=dict(sorted(labels.items())),
        testing_images=details.get("NumberOfTestingImages"),
        training_images=details.get("NumberOfTrainingImages"),
        version_arn=details.get("ProjectVersionArn"),
    )


def _delta(after: float | None, before: float | None) -> float | None:
    return None if after is None or before is None else round(after - before, 6)


def compare(before: Evaluation | None, after: Evaluation, margin: float = 0.0) -> dict:
    """Compare the new version with the one the run started from.

    ``improved`` is true when the new F1 exceeds the old one by more than ``margin`` (absolute F1
    points, 0..1), or when there is no old version to beat.
    """
    if margin < 0:
        raise ValueError(f"margin must be >= 0, got {margin!r}")
    f1_before = before.f1 if before else None
    # Rounded so that binary float noise (0.81 - 0.80 = 0.010000000000000009) cannot beat a margin of 0.01.
    improved = True if f1_before is None else round(after.f1 - f1_before, 9) > margin
    per_label = {}
    for name in sorted(set(after.labels) | set(before.labels if before else ())):
        old = before.labels.get(name) if before else None
        new = after.labels.get(name)
        per_label[name] = {
            "f1_before": old.f1 if old else None,
            "f1_after": new.f1 if new else None,
            "delta": _delta(new.f1 if new else None, old.f1 if old else None),
            "precision_after": new.precision if new else None,
            "recall_after": new.recall if new else None,
        }
    return {
        "f1_before": f1_before,
        "f1_after": after.f1,
        "delta": _delta(after.f1, f1_before),
        "margin": margin,
        "improved": improved,
        "per_label": per_label,
    }
