"""Names derived from a DAG run id stay distinct for run ids that normalize alike, within AWS's limits."""

from __future__ import annotations

import re

import pytest

from rekfeedback.core import ground_truth_jobs as gtjobs
from rekfeedback.core import label_studio as lsfmt
from rekfeedback.core.paths import run_key, turn_prefix
from rekfeedback.core.training import attempt_version_name, version_name_for_run

ALIKE = [("turn:1", "turn-1"), ("turn-1", "Turn-1"), ("manual__2026-12-01T08:00:00+00:00", "manual__2026-12-01T08-00-00-00-00"),
         ("a b", "a/b"), ("x" * 90 + ":1", "x" * 90 + "-1")]
DAG = "rekognition_feedback_loop"


def names(run_id: str) -> dict:
    return {
        "turn prefix": str(turn := turn_prefix("s3://bkt/loop/", DAG, run_id)),
        "labeling job": gtjobs.job_name(DAG, run_id, "verify-labels", 0, turn=str(turn)),
        "model version": version_name_for_run(DAG, run_id),
        "Label Studio project": lsfmt.project_title(DAG, run_key(run_id), turn=str(turn)),
    }


@pytest.mark.parametrize("a,b", ALIKE)
def test_run_ids_that_normalize_alike_get_distinct_names(a, b):
    first, second = names(a), names(b)
    for what in first:
        assert first[what] != second[what], f"{a!r} and {b!r} share a {what}: {first[what]}"


@pytest.mark.parametrize("run_id", [a for pair in ALIKE for a in pair] + ["", "::", "scheduled__" + "9" * 300])
def test_names_are_stable_and_within_aws_limits(run_id):
    n = names(run_id)
    assert n == names(run_id)  # a retry derives the same names
    assert re.fullmatch(r"[a-z0-9](-*[a-z0-9])*", n["labeling job"]) and len(n["labeling job"]) <= 63
    assert re.fullmatch(r"[a-zA-Z0-9_.\-]{1,255}", n["model version"])
    assert len(attempt_version_name(n["model version"], 12)) <= 255
    assert len(n["Label Studio project"]) <= 50
    key = n["turn prefix"].split(f"/{DAG}/", 1)[1]
    assert re.fullmatch(r"[A-Za-z0-9-]+", key) and len(key) <= 400


def test_a_run_id_that_is_already_a_key_keeps_its_name():
    assert run_key("turn-1") == "turn-1"
    assert run_key("turn:1").startswith("turn-1-") and len(run_key("turn:1")) == len("turn-1-") + 8
