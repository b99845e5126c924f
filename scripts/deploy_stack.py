"""The deployment test's machinery: the processes it starts on loopback (PostgreSQL, Redis, Airflow), the
environment Airflow's components share, and a small client of Airflow's REST API. See deploy_test.py."""

from __future__ import annotations

import json
import os
import pwd
import shutil
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DAG_ID = "rekognition_feedback_loop"
FAST_DAG = {"REKFEEDBACK_POLL_SECONDS": "1", "REKFEEDBACK_RETRY_DELAY_SECONDS": "1"}


class Failed(Exception):
    """A check of the deployment test did not hold."""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def read_env_file(path: Path) -> dict[str, str]:
    """KEY=VALUE lines, as docker-compose's env_file reads them (comments and blank lines ignored)."""
    out = {}
    for line in path.read_text().splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            key, _, value = line.partition("=")
            out[key.strip()] = value.strip()
    return out


class Stack:
    """The processes this test started, each in its own process group with its log file; stops them all."""

    def __init__(self, logs: Path) -> None:
        self.logs = logs
        self.procs: list[tuple[str, subprocess.Popen]] = []

    def start(self, name: str, argv: list[str], env: dict, user: str | None = None) -> subprocess.Popen:
        log = open(self.logs / f"{name}.log", "wb")
        proc = subprocess.Popen(argv, env=env, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                start_new_session=True, user=user, cwd=ROOT)
        self.procs.append((name, proc))
        return proc

    def check_alive(self) -> None:
        for name, proc in self.procs:
            if proc.poll() is not None:
                raise Failed(f"{name} exited with code {proc.returncode}; see {self.logs / (name + '.log')}")

    def stop(self) -> None:
        for name, proc in reversed(self.procs):
            if proc.poll() is None:  # PostgreSQL's fast shutdown is SIGINT (SIGTERM waits for every client)
                os.killpg(proc.pid, signal.SIGINT if name == "postgres" else signal.SIGTERM)
        deadline = time.monotonic() + 30
        for _name, proc in reversed(self.procs):
            try:
                proc.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()

    def log_text(self, name: str) -> str:
        return (self.logs / f"{name}.log").read_text(errors="replace")


def run(argv: list[str], env: dict, user: str | None = None, timeout: float = 900) -> str:
    out = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=timeout, user=user, cwd=ROOT)
    if out.returncode != 0:
        raise Failed(f"{' '.join(argv)} failed ({out.returncode}):\n{out.stdout}\n{out.stderr}")
    return out.stdout


def wait_for(what: str, probe, timeout: float, stack: Stack) -> object:
    deadline = time.monotonic() + timeout
    while True:
        stack.check_alive()
        result = probe()
        if result:
            return result
        if time.monotonic() > deadline:
            raise Failed(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(0.5)


def http(method: str, url: str, body: dict | None = None, token: str | None = None) -> tuple[int, object]:
    headers = {"Content-Type": "application/json", "Accept": "application/json"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url, data=data, method=method, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            text = response.read().decode()
            return response.status, json.loads(text) if text else None
    except urllib.error.HTTPError as exc:
        text = exc.read().decode(errors="replace")
        try:
            return exc.code, json.loads(text)
        except ValueError:
            return exc.code, text
    except (urllib.error.URLError, ConnectionError, TimeoutError):
        return 0, None


# ----------------------------------------------------------------------------------------------- services

def start_postgres(stack: Stack, work: Path, port: int) -> None:
    bindir = os.environ.get("PG_BINDIR") or next(
        (str(p) for p in sorted(Path("/usr/lib/postgresql").glob("*/bin"), reverse=True)), "")
    if not bindir or not Path(bindir, "postgres").exists():
        raise Failed("PostgreSQL binaries not found: apt-get install postgresql, or set PG_BINDIR")
    data = work / "pg"
    data.mkdir()
    user = None
    if os.geteuid() == 0:  # PostgreSQL refuses to run as root: run it as Debian's postgres user
        user = "postgres"
        pw = pwd.getpwnam(user)
        os.chown(data, pw.pw_uid, pw.pw_gid)
    env = dict(os.environ, LC_ALL="C.UTF-8")
    run([f"{bindir}/initdb", "-D", str(data), "-U", "airflow", "--auth=trust", "-E", "UTF8"], env, user=user)
    stack.start("postgres", [f"{bindir}/postgres", "-D", str(data), "-p", str(port), "-c", "listen_addresses=127.0.0.1",
                             "-c", "unix_socket_directories=", "-c", "fsync=off"], env, user=user)
    wait_for("PostgreSQL", lambda: subprocess.run([f"{bindir}/pg_isready", "-h", "127.0.0.1", "-p", str(port),
                                                   "-U", "airflow"],
                                                  capture_output=True).returncode == 0, 60, stack)
    run([f"{bindir}/createdb", "-h", "127.0.0.1", "-p", str(port), "-U", "airflow", "airflow"], env)


def start_redis(stack: Stack, port: int) -> None:
    server = shutil.which("redis-server")
    if not server:
        raise Failed("redis-server not found: apt-get install redis-server")
    stack.start("redis", [server, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
                dict(os.environ))
    wait_for("Redis", lambda: _redis_ping(port), 30, stack)


def _redis_ping(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1) as s:
            s.sendall(b"PING\r\n")
            return s.recv(16).startswith(b"+PONG")
    except OSError:
        return False


def airflow_environment(work: Path, ports: dict[str, int], airflow_bin: Path) -> dict[str, str]:
    db = f"airflow@127.0.0.1:{ports['postgres']}/airflow"
    passwords = work / "passwords.json"
    shutil.copy(ROOT / "deploy" / "passwords.json", passwords)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "AWS_", "REKFEEDBACK_"))}
    env.update(read_env_file(ROOT / "deploy" / "airflow.env"))
    env.update(FAST_DAG)
    env.update({
        "PATH": f"{airflow_bin}{os.pathsep}{env.get('PATH', '')}",
        "AIRFLOW_HOME": str(work / "airflow"),
        "AIRFLOW__CORE__DAGS_FOLDER": str(ROOT / "dags"),
        "AIRFLOW__CORE__PLUGINS_FOLDER": str(ROOT / "plugins"),  # as docker-compose mounts it
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"postgresql+psycopg2://{db}",
        "AIRFLOW__CELERY__RESULT_BACKEND": f"db+postgresql+psycopg2://{db}",
        "AIRFLOW__CELERY__BROKER_URL": f"redis://127.0.0.1:{ports['redis']}/0",
        "AIRFLOW__CELERY__WORKER_CONCURRENCY": "4",
        "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"http://127.0.0.1:{ports['api']}/execution/",
        "AIRFLOW__API__BASE_URL": f"http://127.0.0.1:{ports['api']}",
        "AIRFLOW__API__HOST": "127.0.0.1",
        "AIRFLOW__API__PORT": str(ports["api"]),
        "AIRFLOW__API__WORKERS": "1",
        "AIRFLOW__API_AUTH__JWT_SECRET": "rekfeedback-deploy-test-secret-0123456789",
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(passwords),
        "AIRFLOW__SCHEDULER__SCHEDULER_HEALTH_CHECK_SERVER_PORT": str(ports["scheduler_health"]),
        "AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT": str(ports["worker_logs"]),
        "AIRFLOW__LOGGING__TRIGGER_LOG_SERVER_PORT": str(ports["trigger_logs"]),
    })
    return env


# ----------------------------------------------------------------------------------------------- the API

class Api:
    def __init__(self, base: str) -> None:
        self.base, self.token = base, None

    def login(self, username: str, password: str) -> None:
        status, body = http("POST", f"{self.base}/auth/token", {"username": username, "password": password})
        if status not in (200, 201) or not isinstance(body, dict):
            raise Failed(f"POST /auth/token answered {status}: {body}")
        self.token = body["access_token"]

    def call(self, method: str, path: str, body: dict | None = None, ok=(200,)) -> object:
        status, answer = http(method, f"{self.base}/api/v2{path}", body, self.token)
        if status not in ok:
            raise Failed(f"{method} /api/v2{path} answered {status}: {answer}")
        return answer

    def trigger(self, conf: dict) -> str:
        run = self.call("POST", f"/dags/{DAG_ID}/dagRuns", {"logical_date": None, "conf": conf})
        return run["dag_run_id"]

    def wait_run(self, run_id: str, stack: Stack, timeout: float) -> str:
        def finished():
            state = self.call("GET", f"/dags/{DAG_ID}/dagRuns/{run_id}")["state"]
            return state if state in ("success", "failed") else None
        return wait_for(f"run {run_id}", finished, timeout, stack)

    def task_instances(self, run_id: str) -> list[dict]:
        return self.call("GET", f"/dags/{DAG_ID}/dagRuns/{run_id}/taskInstances?limit=200")["task_instances"]

    def task_state(self, run_id: str, task_id: str) -> str | None:
        status, ti = http("GET", f"{self.base}/api/v2/dags/{DAG_ID}/dagRuns/{run_id}/taskInstances/{task_id}",
                          token=self.token)
        if isinstance(ti, dict) and ti.get("state") in ("failed", "upstream_failed"):
            raise Failed(f"{task_id} is {ti['state']} in {run_id}")
        return ti.get("state") if status == 200 and isinstance(ti, dict) else None

    def xcom(self, run_id: str, task_id: str) -> object:
        entry = self.call("GET", f"/dags/{DAG_ID}/dagRuns/{run_id}/taskInstances/{task_id}/xcomEntries/return_value"
                                 "?deserialize=true")
        value = entry["value"]
        return json.loads(value) if isinstance(value, str) else value

    def log(self, run_id: str, task_id: str, try_number: int) -> str:
        answer = self.call("GET", f"/dags/{DAG_ID}/dagRuns/{run_id}/taskInstances/{task_id}/logs/{try_number}"
                                  "?full_content=true")
        content = answer.get("content") if isinstance(answer, dict) else answer
        if isinstance(content, list):
            return "\n".join(json.dumps(c) if isinstance(c, dict) else str(c) for c in content)
        return str(content)
