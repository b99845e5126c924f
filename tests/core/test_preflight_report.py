"""The preflight report: findings, their order and the text everyone reads (log, failure, console)."""

from __future__ import annotations

import pytest

from rekfeedback.core.preflight import ERROR, WARNING, Finding, Problem, Report, format_report, summary_line


def test_finding_needs_every_field_and_a_known_severity():
    with pytest.raises(ValueError, match="advice"):
        Finding("cors", "s3://b", "no CORS", " ")
    with pytest.raises(ValueError, match="severity"):
        Finding("cors", "s3://b", "no CORS", "add it", "fatal")
    assert Problem is Finding


def test_round_trip_through_a_dict():
    f = Finding("role", "arn:aws:iam::1:role/r", "cannot read", "add s3:GetObject", WARNING)
    assert Finding.from_dict(f.as_dict()) == f
    assert not f.is_error


def test_errors_come_first_then_warnings_in_check_order():
    report = Report()
    report.warning("input", "s3://in/", "nothing new", "add images")
    report.error("cors", "s3://in", "no CORS", "add the rule")
    report.error("workteam", "arn:w", "other region", "use us-east-1")
    text = report.format("Preflight of d")
    assert text.splitlines()[0] == "Preflight of d FAILED: 2 problems, 1 warning"
    order = [text.index(s) for s in ("[cors] s3://in", "[workteam] arn:w", "[input] s3://in/")]
    assert order == sorted(order)
    assert "problem: other region" in text and "do:      use us-east-1" in text
    assert report.failed and [f.check for f in report.errors] == ["cors", "workteam"]


def test_warnings_alone_do_not_fail():
    report = Report()
    report.warning("input", "s3://in/", "nothing new", "add images")
    report.ok("model", "arn:m")
    assert not report.failed
    text = report.format()
    assert text.startswith("Preflight passed: 0 problems, 1 warning")
    assert "checked without problems:\n  - model arn:m" in text


def test_facts_are_listed_and_has_filters():
    report = Report(facts={"candidates": 12, "new_images": 3})
    report.error("lambda", "arn:l", "missing", "deploy it")
    assert "  candidates: 12\n  new_images: 3" in report.format()
    assert report.has("lambda") and report.has("lambda", "arn:l", ERROR)
    assert not report.has("lambda", "arn:l", WARNING) and not report.has("role")
    assert report.as_dict()["findings"][0]["resource"] == "arn:l"


def test_empty_report_text():
    assert format_report([]) == "Preflight passed: 0 problems, 0 warnings"
    assert summary_line([Finding("a", "b", "c", "d")]) == "Preflight FAILED: 1 problem, 0 warnings"
