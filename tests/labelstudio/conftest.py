"""A real Label Studio for the session (scripts/labelstudio.sh), plus S3 turns with predictions.

The server is started once per session on a free port and its data folder (.labelstudio/data) is
kept between sessions, so only the very first start pays the ~45-70 s of migrations. A server that
is already running (`labelstudio.sh status`) is reused and left running.
"""

from __future__ import annotations

import json
import os
import random
import socket
import subprocess
import uuid
from dataclasses import dataclass, field

import boto3
import pytest

from tests.conftest import ROOT

SCRIPT = ROOT / "scripts" / "labelstudio.sh"
LS_HOME = ROOT / ".labelstudio"
CONN_ID = "label_studio_default"
# Several pytest sessions may share one checkout (and so one server): each registers here, and the
# last one out stops the server if a test session started it (never a developer's own server).
SESSIONS = LS_HOME / "sessions"
STARTED_BY_TESTS = SESSIONS / "started-by-tests"


def _run(*args: str, timeout: float = 900) -> subprocess.CompletedProcess:
    return subprocess.run(["bash", str(SCRIPT), *args], cwd=ROOT, capture_output=True, text=True, timeout=timeout)


def _read_env() -> dict:
    env = {}
    for line in (LS_HOME / "env").read_text().splitlines():
        if "=" in line:
            k, v = line.split("=", 1)
            env[k] = v
    return env


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class LabelStudio:
    url: str
    port: int
    token: str
    username: str
    password: str
    started_here: bool
    restarts: list = field(default_factory=list)

    def stop(self) -> None:
        r = _run("stop", timeout=120)
        assert r.returncode == 0, r.stderr

    def start(self) -> None:
        """Start again on the same port (the URL in the Airflow connection stays valid)."""
        r = _run("start", "--port", str(self.port), timeout=600)
        assert r.returncode == 0, f"restart failed: {r.stderr[-2000:]}"
        self.restarts.append(r.stderr.strip().splitlines()[-1] if r.stderr.strip() else "")


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
        return True
    except ProcessLookupError:
        return False
    except PermissionError:
        return True


def other_sessions() -> list[int]:
    """Live pytest sessions other than this one that use the server."""
    out = []
    for f in SESSIONS.glob("[0-9]*"):
        pid = int(f.name)
        if pid != os.getpid() and _pid_alive(pid):
            out.append(pid)
        elif not _pid_alive(pid):
            f.unlink(missing_ok=True)
    return out


@pytest.fixture(scope="session")
def label_studio():
    if not (LS_HOME / "venv" / "bin" / "label-studio").exists():
        r = _run("install", timeout=900)
        if r.returncode != 0:
            pytest.skip(f"Label Studio could not be installed here (bash scripts/labelstudio.sh install): "
                        f"{r.stderr.strip()[-500:]}")
    SESSIONS.mkdir(parents=True, exist_ok=True)
    (SESSIONS / str(os.getpid())).touch()
    started_here = _run("status", timeout=60).returncode != 0
    if started_here:
        r = _run("start", "--port", str(_free_port()), timeout=600)
        if r.returncode != 0:
            pytest.fail(f"Label Studio is installed but did not start: {r.stderr[-3000:]}")
        STARTED_BY_TESTS.touch()
    env = _read_env()
    ls = LabelStudio(url=env["LABEL_STUDIO_URL"], port=int(env["LABEL_STUDIO_PORT"]), token=env["LABEL_STUDIO_TOKEN"],
                     username=env["LABEL_STUDIO_USERNAME"], password=env["LABEL_STUDIO_PASSWORD"],
                     started_here=started_here)
    mp = pytest.MonkeyPatch()
    mp.setenv(f"AIRFLOW_CONN_{CONN_ID.upper()}",
              json.dumps({"conn_type": "labelstudio", "host": ls.url, "password": ls.token}))
    yield ls
    mp.undo()
    (SESSIONS / str(os.getpid())).unlink(missing_ok=True)
    if STARTED_BY_TESTS.exists() and not other_sessions():
        STARTED_BY_TESTS.unlink(missing_ok=True)
        _run("stop", timeout=120)


@pytest.fixture(scope="session")
def aws(request):
    """The emulator (S3 over real HTTP). Uses the shared `emulator` fixture when it exists."""
    try:
        return request.getfixturevalue("emulator")
    except pytest.FixtureLookupError:
        from rekfeedback_local.emulator.cli import start_in_thread

        handle = start_in_thread()
        mp = pytest.MonkeyPatch()
        for k, v in handle.client_environment().items():
            mp.setenv(k, v)
        mp.setenv("AIRFLOW_CONN_AWS_DEFAULT", json.dumps(
            {"conn_type": "aws", "extra": {"endpoint_url": handle.endpoint_url, "region_name": handle.region}}))
        request.addfinalizer(handle.stop)
        request.addfinalizer(mp.undo)
        return handle


@pytest.fixture(scope="session")
def s3(aws):
    return boto3.client("s3", endpoint_url=aws.endpoint_url, region_name="us-east-1")


def predictions_from_truth(images: list[dict], bucket: str, seed: int = 3) -> list[dict]:
    """Prediction lines close to the truth: each box jittered, some dropped, a few wrong extra boxes."""
    rng = random.Random(seed)
    lines = []
    for img in images:
        w, h = img["width"], img["height"]
        labels = []
        for box in img["boxes"]:
            if rng.random() < 0.15:
                continue  # the model missed it
            labels.append({"name": box["label"], "confidence": round(rng.uniform(55, 99), 2),
                           "box": {"left": box["left"] / w, "top": box["top"] / h,
                                   "width": box["width"] / w, "height": box["height"] / h}})
        if rng.random() < 0.3:
            labels.append({"name": "star", "confidence": 51.0,
                           "box": {"left": 0.0, "top": 0.0, "width": 0.2, "height": 0.2}})
        lines.append({"source-ref": img["source-ref"], "width": w, "height": h, "format": "jpeg", "labels": labels,
                      "error": None, "model": "arn:aws:rekognition:us-east-1:123456789012:project/shapes/version/shapes.v1/1",
                      "predicted_at": "2026-11-26T05:00:00Z"})
    return lines


@pytest.fixture
def make_turn(s3, request):
    """A new turn: synthetic images with truth in S3, and predictions split into `parts` files.

    Its names are the test's own (the routing of an image hashes its source-ref), so every run routes alike."""
    import hashlib
    import itertools

    from rekfeedback_local import synthetic

    count = itertools.count()

    def make(n: int = 6, parts: int = 1, bucket: str = "rekfeedback-ls-tests") -> dict:
        tag = hashlib.sha1(f"{request.node.nodeid}:{next(count)}".encode()).hexdigest()[:8]
        summary = synthetic.generate(s3, bucket, f"ls/{tag}", n=n, seed=11, n_seed=0, n_test=0, bad_files=False)
        truth = [json.loads(line) for line in
                 s3.get_object(Bucket=bucket, Key=f"ls/{tag}/manifests/truth.jsonl")["Body"].read().decode().splitlines()]
        lines = predictions_from_truth(truth, bucket)
        turn = f"s3://{bucket}/turns/ls-dag/{tag}"
        uris = []
        for p in range(parts):
            key = f"turns/ls-dag/{tag}/predictions/part-{p:05d}-of-{parts:05d}.jsonl"
            body = "".join(json.dumps(line) + "\n" for line in lines[p::parts])
            s3.put_object(Bucket=bucket, Key=key, Body=body.encode())
            uris.append(f"s3://{bucket}/{key}")
        return {"tag": tag, "bucket": bucket, "turn": turn, "predictions_uris": uris, "lines": lines,
                "truth": {t["source-ref"]: t for t in truth}, "summary": summary}

    return make


class FakeTI:
    def __init__(self):
        self.xcoms = {}

    def xcom_push(self, key, value):
        self.xcoms[key] = value


def context_for(run_id: str, dag_id: str = "ls-dag") -> dict:
    from types import SimpleNamespace

    return {"dag": SimpleNamespace(dag_id=dag_id), "run_id": run_id, "ti": FakeTI()}


@pytest.fixture
def ls_hook(label_studio):
    from rekfeedback.hooks.label_studio import LabelStudioHook

    return LabelStudioHook(label_studio_conn_id=CONN_ID)
