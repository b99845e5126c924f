"""Rekognition's evaluation summary file and the comparison of two versions."""

from __future__ import annotations

import json

import pytest

from rekfeedback.core.evaluation import Evaluation, LabelScore, compare, parse_summary

SUMMARY = {
    "Version": 1,
    "AggregatedEvaluationResults": {"F1Score": 0.81, "Precision": 0.8, "Recall": 0.83,
                                    "ConfusionMatrix": [{"GroundTruthLabel": "a", "PredictedLabel": "a", "Value": 0.9}]},
    "EvaluationDetails": {"EvaluationEndTimestamp": "2026-11-26T07:00:00.000Z", "Labels": ["a", "b"],
                          "NumberOfTestingImages": 40, "NumberOfTrainingImages": 160,
                          "ProjectVersionArn": "arn:aws:rekognition:us-east-1:123456789012:project/p/version/v2/1"},
    "LabelEvaluationResults": [
        {"Label": "b", "Metrics": {"F1Score": 0.7, "Precision": 0.75, "Recall": 0.66, "Threshold": 0.41}, "NumberOfTestingImages": 15},
        {"Label": "a", "Metrics": {"F1Score": 0.9, "Precision": 0.85, "Recall": 0.96, "Threshold": 0.52}, "NumberOfTestingImages": 25},
    ],
}


def test_parse_summary_reads_overall_and_per_label_figures_from_text_or_bytes():
    for form in (SUMMARY, json.dumps(SUMMARY), json.dumps(SUMMARY).encode()):
        ev = parse_summary(form)
        assert (ev.f1, ev.precision, ev.recall) == (0.81, 0.8, 0.83)
        assert list(ev.labels) == ["a", "b"]
        assert ev.labels["b"] == LabelScore(0.7, 0.75, 0.66, 0.41, 15)
        assert (ev.testing_images, ev.training_images) == (40, 160)


def test_describe_f1_is_used_when_the_file_has_none_and_garbage_is_refused():
    ev = parse_summary({"LabelEvaluationResults": []}, f1_score=0.5)
    assert ev.f1 == 0.5 and ev.labels == {}
    with pytest.raises(ValueError, match="no AggregatedEvaluationResults.F1Score"):
        parse_summary({})
    with pytest.raises(ValueError, match="not JSON"):
        parse_summary("{oops")
    with pytest.raises(ValueError, match="without a Label"):
        parse_summary({"AggregatedEvaluationResults": {"F1Score": 1}, "LabelEvaluationResults": [{"Metrics": {}}]})


def test_compare_needs_more_than_the_margin():
    before = Evaluation(0.80, labels={"a": LabelScore(0.9, 0.9, 0.9), "c": LabelScore(0.2, 0.2, 0.2)})
    after = parse_summary(SUMMARY)
    result = compare(before, after, margin=0.0)
    assert result["improved"] is True and result["delta"] == 0.01
    assert compare(before, after, margin=0.02)["improved"] is False
    assert compare(before, after, margin=0.01)["improved"] is False  # must beat, not equal, the margin
    assert result["per_label"]["a"] == {"f1_before": 0.9, "f1_after": 0.9, "delta": 0.0, "precision_after": 0.85,
                                        "recall_after": 0.96}
    assert result["per_label"]["b"]["f1_before"] is None and result["per_label"]["c"]["f1_after"] is None
    assert compare(after, before)["improved"] is False


def test_first_version_has_nothing_to_beat():
    result = compare(None, parse_summary(SUMMARY), margin=0.05)
    assert result["improved"] is True and result["f1_before"] is None and result["delta"] is None
    with pytest.raises(ValueError, match="margin"):
        compare(None, parse_summary(SUMMARY), margin=-1)
