"""Bad connection settings fail at once with a message naming the connection and what to check."""

from __future__ import annotations

import json
import socket

import pytest

from rekfeedback.hooks.label_studio import LabelStudioConnectionError, LabelStudioHook
from rekfeedback.operators.label_studio import LabelStudioReviewOperator
from tests.fixtures.label_studio import context_for

pytestmark = pytest.mark.labelstudio


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_wrong_url_names_connection(monkeypatch):
    monkeypatch.setenv("AIRFLOW_CONN_LS_WRONG_URL", json.dumps(
        {"conn_type": "labelstudio", "host": f"http://127.0.0.1:{closed_port()}", "password": "x" * 40}))
    with pytest.raises(LabelStudioConnectionError, match=r"cannot reach Label Studio.*'ls_wrong_url'.*labelstudio.sh status"):
        LabelStudioHook(label_studio_conn_id="ls_wrong_url").check()


def test_bad_token_names_connection(label_studio, monkeypatch):
    monkeypatch.setenv("AIRFLOW_CONN_LS_BAD_TOKEN", json.dumps(
        {"conn_type": "labelstudio", "host": label_studio.url, "password": "0" * 40}))
    hook = LabelStudioHook(label_studio_conn_id="ls_bad_token")
    with pytest.raises(LabelStudioConnectionError, match=r"refused the API token of Airflow connection 'ls_bad_token'"):
        hook.check()
    ok, message = hook.test_connection()
    assert not ok and "ls_bad_token" in message


def test_bad_personal_access_token_is_refused(label_studio, monkeypatch):
    fake_jwt = "eyJhbGciOiJIUzI1NiJ9.eyJ0b2tlbl90eXBlIjoicmVmcmVzaCJ9.c2lnbmF0dXJl"
    monkeypatch.setenv("AIRFLOW_CONN_LS_BAD_PAT", json.dumps(
        {"conn_type": "labelstudio", "host": label_studio.url, "password": fake_jwt}))
    with pytest.raises(LabelStudioConnectionError, match="ls_bad_pat"):
        LabelStudioHook(label_studio_conn_id="ls_bad_pat").check()


def test_missing_token_and_host(monkeypatch):
    monkeypatch.setenv("AIRFLOW_CONN_LS_NO_TOKEN", json.dumps({"conn_type": "labelstudio", "host": "http://127.0.0.1:1"}))
    with pytest.raises(LabelStudioConnectionError, match="'ls_no_token' has no API token"):
        LabelStudioHook(label_studio_conn_id="ls_no_token").check()
    monkeypatch.setenv("AIRFLOW_CONN_LS_NO_HOST", json.dumps({"conn_type": "labelstudio", "password": "t"}))
    with pytest.raises(LabelStudioConnectionError, match="'ls_no_host' has no host"):
        LabelStudioHook(label_studio_conn_id="ls_no_host").check()


def test_good_connection_and_operator_fails_before_writing(label_studio, ls_hook, emulator, s3, monkeypatch):
    assert ls_hook.check()["email"] == label_studio.username
    monkeypatch.setenv("AIRFLOW_CONN_LS_DOWN", json.dumps(
        {"conn_type": "labelstudio", "host": f"127.0.0.1:{closed_port()}", "password": "t" * 40}))
    s3.create_bucket(Bucket="rekfeedback-ls-errors")
    op = LabelStudioReviewOperator(task_id="review", predictions_uris="s3://rekfeedback-ls-errors/none/",
                                   output_prefix="s3://rekfeedback-ls-errors/turn", label_studio_conn_id="ls_down")
    with pytest.raises(LabelStudioConnectionError, match="ls_down"):
        op.execute(context_for("manual__x"))
    assert s3.list_objects_v2(Bucket="rekfeedback-ls-errors").get("KeyCount", 0) == 0


def test_provider_registers_the_connection_type():
    from rekfeedback.get_provider_info import get_provider_info

    types = {c["connection-type"]: c["hook-class-name"] for c in get_provider_info()["connection-types"]}
    assert types["labelstudio"] == "rekfeedback.hooks.label_studio.LabelStudioHook"
    assert LabelStudioHook.conn_type == "labelstudio"
