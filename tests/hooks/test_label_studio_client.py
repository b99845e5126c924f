"""Both Label Studio clients (the worker's and the triggerer's) turn each answer into the same typed error,
and handle a personal access token the same way, against a scripted HTTP server.

The server answers what a real Label Studio cannot be made to answer on demand (429, 503, a proxy's
HTML page, an access token that expires between two calls); the happy paths run against the real
Label Studio in the other tests of this folder.
"""

from __future__ import annotations

import asyncio
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from rekfeedback.hooks.label_studio import LabelStudioHook
from rekfeedback.hooks.label_studio_async import LabelStudioAsyncHook
from rekfeedback.hooks.label_studio_connection import (
    TRANSIENT, LabelStudioError, LabelStudioNotFound, LabelStudioServerError, LabelStudioTokenRefused,
    LabelStudioUnexpectedAnswer,
)
from rekfeedback.triggers.label_studio import LabelStudioReviewTrigger

PAT = "eyJhbGciOiJIUzI1NiJ9.eyJ0b2tlbl90eXBlIjoicmVmcmVzaCJ9.c2lnbmF0dXJl"
LEGACY = "a" * 40


class Scripted(ThreadingHTTPServer):
    """Answers each path from a script: a list of (status, body), one per request, the last one repeated."""

    daemon_threads = True

    def __init__(self):
        super().__init__(("127.0.0.1", 0), Handler)
        self.script: dict[str, list] = {}
        self.seen: list[tuple[str, str, str]] = []  # (method, path, Authorization)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


class Handler(BaseHTTPRequestHandler):
    def _answer(self):
        server: Scripted = self.server
        path = self.path.split("?")[0]
        if self.headers.get("Content-Length"):
            self.rfile.read(int(self.headers["Content-Length"]))
        server.seen.append((self.command, path, self.headers.get("Authorization", "")))
        steps = server.script.get(path) or [(404, {"detail": "Not found."})]
        status, body = steps.pop(0) if len(steps) > 1 else steps[0]
        data = body.encode() if isinstance(body, str) else json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "text/html" if isinstance(body, str) else "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    do_GET = do_POST = do_PATCH = _answer

    def log_message(self, *args):  # quiet
        pass


@pytest.fixture
def server(monkeypatch):
    srv = Scripted()
    thread = threading.Thread(target=srv.serve_forever, daemon=True)
    thread.start()
    yield srv
    srv.shutdown()
    srv.server_close()


def connect(monkeypatch, server, token, conn_id="ls_scripted"):
    monkeypatch.setenv(f"AIRFLOW_CONN_{conn_id.upper()}", json.dumps(
        {"conn_type": "labelstudio", "host": server.url, "password": token}))
    return conn_id


def get_project_sync(conn_id):
    return LabelStudioHook(label_studio_conn_id=conn_id).get_project(7)


def get_project_async(conn_id):
    return asyncio.run(LabelStudioAsyncHook(conn_id).get_project(7))


CLIENTS = pytest.mark.parametrize("get_project", [get_project_sync, get_project_async], ids=["sync", "async"])


@CLIENTS
@pytest.mark.parametrize("status, body, kind, transient", [
    (401, {"detail": "Invalid token."}, LabelStudioTokenRefused, False),
    (403, {"detail": "legacy token authentication has been disabled"}, LabelStudioTokenRefused, False),
    (404, {"detail": "Not found."}, LabelStudioNotFound, False),
    (400, {"detail": "bad"}, LabelStudioError, False),
    (429, {"detail": "Request was throttled."}, LabelStudioServerError, True),
    (503, "<html>upstream restarting</html>", LabelStudioServerError, True),
    (200, "<html>a proxy's sign-in page</html>", LabelStudioUnexpectedAnswer, True),
])
def test_each_answer_is_one_typed_error_in_both_clients(server, monkeypatch, get_project, status, body, kind,
                                                        transient):
    server.script["/api/projects/7/"] = [(status, body)]
    conn_id = connect(monkeypatch, server, LEGACY)
    with pytest.raises(kind) as info:
        get_project(conn_id)
    assert type(info.value) is kind and isinstance(info.value, TRANSIENT) is transient
    if status >= 400:
        assert info.value.status == status
    assert server.seen[-1][2] == f"Token {LEGACY}"


@CLIENTS
def test_personal_access_token_is_refreshed_when_it_expires(server, monkeypatch, get_project):
    server.script["/api/token/refresh"] = [(200, {"access": "first"}), (200, {"access": "second"})]
    # The first access token works once, then expires (401); the refreshed one works.
    server.script["/api/projects/7/"] = [(200, {"id": 7}), (401, {"detail": "expired"}), (200, {"id": 7})]
    conn_id = connect(monkeypatch, server, PAT)
    if get_project is get_project_sync:
        hook = LabelStudioHook(label_studio_conn_id=conn_id)
        assert hook.get_project(7) == {"id": 7} and hook.get_project(7) == {"id": 7}
    else:
        async def twice():
            hook = LabelStudioAsyncHook(conn_id)
            return [await hook.get_project(7), await hook.get_project(7)]
        assert asyncio.run(twice()) == [{"id": 7}, {"id": 7}]
    assert server.seen == [
        ("POST", "/api/token/refresh", ""),
        ("GET", "/api/projects/7/", "Bearer first"),
        ("GET", "/api/projects/7/", "Bearer first"),
        ("POST", "/api/token/refresh", ""),
        ("GET", "/api/projects/7/", "Bearer second"),
    ]


@CLIENTS
def test_refused_personal_access_token_says_so(server, monkeypatch, get_project):
    server.script["/api/token/refresh"] = [(401, {"detail": "Token is invalid or expired"})]
    conn_id = connect(monkeypatch, server, PAT)
    with pytest.raises(LabelStudioTokenRefused, match="refused the personal access token") as info:
        get_project(conn_id)
    assert info.value.personal_access_token


def test_token_kind_is_decided_once_per_hook(server, monkeypatch):
    from rekfeedback.hooks import label_studio_connection

    server.script["/api/projects/7/"] = [(200, {"id": 7})]
    conn_id = connect(monkeypatch, server, LEGACY)
    calls = []
    real = label_studio_connection.auth_kind
    monkeypatch.setattr(label_studio_connection, "auth_kind", lambda *a: calls.append(a) or real(*a))
    hook = LabelStudioHook(label_studio_conn_id=conn_id)
    for _ in range(3):
        hook.get_project(7)
    assert len(calls) == 1 and hook.auth.kind == "token"


def first_event(trigger):
    async def run():
        async for event in trigger.run():
            return event
    return asyncio.run(asyncio.wait_for(run(), timeout=60))


def test_trigger_waits_through_busy_answers_and_stops_on_a_lasting_error(server, monkeypatch):
    done = {"id": 7, "task_number": 2, "num_tasks_with_annotations": 2, "finished_task_number": 2}
    server.script["/api/projects/7/"] = [(503, "<html>restarting</html>"), (429, {"detail": "throttled"}),
                                         (200, "<html>proxy</html>"), (200, done)]
    conn_id = connect(monkeypatch, server, LEGACY)
    event = first_event(LabelStudioReviewTrigger(project_id=7, label_studio_conn_id=conn_id, poll_interval=0))
    assert event.payload["status"] == "success" and event.payload["progress"]["annotated"] == 2
    assert len(server.seen) == 4

    server.script["/api/projects/7/"] = [(400, {"detail": "bad request"})]
    event = first_event(LabelStudioReviewTrigger(project_id=7, label_studio_conn_id=conn_id, poll_interval=0))
    assert event.payload["status"] == "error" and "failed with 400" in event.payload["message"]


def test_sensor_waits_on_label_studio_and_writes_with_its_aws_connection():
    from airflow.providers.amazon.aws.sensors.base_aws import AwsBaseSensor

    from rekfeedback.sensors.label_studio import LabelStudioReviewSensor

    sensor = LabelStudioReviewSensor(task_id="wait", answers_uri="s3://b/answers.jsonl", label_studio_conn_id="ls_x",
                                     aws_conn_id="aws_x", region_name="eu-west-1", verify=False)
    assert not isinstance(sensor, AwsBaseSensor)
    assert sensor.ls_hook.label_studio_conn_id == "ls_x"
    assert (sensor.s3_hook.aws_conn_id, sensor.s3_hook.region_name, sensor.s3_hook.verify) == ("aws_x", "eu-west-1",
                                                                                               False)
    assert {"aws_conn_id", "region_name", "label_studio_conn_id", "deadline"} <= set(sensor.template_fields)
