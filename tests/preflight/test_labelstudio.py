"""The Label Studio check against a real Label Studio (tests/fixtures/label_studio.py starts or reuses it)."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
from airflow.sdk.exceptions import AirflowFailException

from rekfeedback.operators import FeedbackLoopPreflightOperator
from rekfeedback.preflight import LabelStudioTarget
from tests.preflight.conftest import DAG_ID

pytestmark = pytest.mark.labelstudio

LS = {"review_backend": "label-studio"}


def test_reachable_with_a_valid_token(setup, label_studio):
    report = setup.check(labelstudio=LabelStudioTarget(url=label_studio.url, token=label_studio.token), **LS)
    assert report.findings == [], report.format()
    assert report.facts["labelstudio_version"]
    assert f"labelstudio {label_studio.url}" in report.passed


def test_wrong_token(setup, label_studio):
    report = setup.check(labelstudio=LabelStudioTarget(url=label_studio.url, token="0" * 40, conn_id="ls_conn"), **LS)
    [finding] = report.errors
    assert (finding.check, finding.resource) == ("labelstudio", label_studio.url)
    assert "refused" in finding.problem and "'ls_conn'" in finding.advice


def test_wrong_personal_access_token(setup, label_studio):
    report = setup.check(labelstudio=LabelStudioTarget(url=label_studio.url, token="eyJhbGciOi.e30.c2ln"), **LS)
    [finding] = report.errors
    assert "personal access token was refused" in finding.problem


def test_wrong_url(setup, label_studio):
    url = f"http://127.0.0.1:{label_studio.port + 1}"  # nothing listens next door
    report = setup.check(labelstudio=LabelStudioTarget(url=url, token=label_studio.token), **LS)
    [finding] = report.errors
    assert (finding.check, finding.resource) == ("labelstudio", url)
    assert "cannot be reached" in finding.problem and "labelstudio.sh status" in finding.advice


def test_operator_reads_the_airflow_connection(setup, label_studio, monkeypatch):
    params = {**setup.config, **LS, "labelstudio_conn_id": "label_studio_default"}
    op = FeedbackLoopPreflightOperator(task_id="preflight", params_to_check=params)
    out = op.execute({"dag": SimpleNamespace(dag_id=DAG_ID), "run_id": "manual__ls"})
    assert out["facts"]["labelstudio_version"] and out["warnings"] == []
    monkeypatch.setenv("AIRFLOW_CONN_LABEL_STUDIO_DEFAULT",
                       '{"conn_type": "labelstudio", "host": "%s", "password": "%s"}' % (label_studio.url, "f" * 40))
    with pytest.raises(AirflowFailException) as info:
        FeedbackLoopPreflightOperator(task_id="preflight", params_to_check=params).execute(
            {"dag": SimpleNamespace(dag_id=DAG_ID), "run_id": "manual__ls"})
    assert "token was refused" in str(info.value)
