"""scripts/labelstudio.sh keeps the admin password and API token in a file only its user can read and
prints where it is, never the secrets. A stand-in `label-studio` (answers /health) keeps this quick."""

from __future__ import annotations

import hashlib
import os
import stat
import subprocess
import textwrap

from tests.conftest import ROOT

SCRIPT = ROOT / "scripts" / "labelstudio.sh"
FAKE_SERVER = textwrap.dedent("""\
    #!/usr/bin/env python3
    import http.server, sys
    port = int(sys.argv[sys.argv.index("--port") + 1])
    class Health(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            self.send_response(200); self.end_headers(); self.wfile.write(b"{}")
        def log_message(self, *args):
            pass
    http.server.HTTPServer(("127.0.0.1", port), Health).serve_forever()
""")


def _run(home, *args):
    env = dict(os.environ, LABEL_STUDIO_HOME=str(home), LABEL_STUDIO_START_TIMEOUT="60")
    return subprocess.run(["bash", str(SCRIPT), *args], env=env, capture_output=True, text=True, timeout=120)


def test_start_and_status_print_the_credentials_file_not_the_secrets(tmp_path):
    home = tmp_path / "ls"
    server = home / "venv" / "bin" / "label-studio"
    server.parent.mkdir(parents=True)
    server.write_text(FAKE_SERVER)
    server.chmod(0o755)
    lock = (ROOT / "scripts" / "labelstudio.lock").read_bytes()
    (home / "venv" / ".installed-lock").write_text(hashlib.sha256(lock).hexdigest() + "\n")
    env_file = home / "env"
    env_file.write_text("stale=1\n")
    env_file.chmod(0o644)  # a file left by an older version of the script
    try:
        started = _run(home, "start", "--port", "0")
        assert started.returncode == 0, started.stderr
        status = _run(home, "status")
        assert status.returncode == 0, status.stderr
    finally:
        stopped = _run(home, "stop")
    assert stopped.returncode == 0, stopped.stderr

    values = dict(line.split("=", 1) for line in env_file.read_text().splitlines() if "=" in line)
    token, password = values["LABEL_STUDIO_TOKEN"], values["LABEL_STUDIO_PASSWORD"]
    assert len(token) == len(password) == 40 and "stale" not in values
    assert stat.S_IMODE(env_file.stat().st_mode) == 0o600
    for secret_file in (home / "data").glob(".rekfeedback-*"):
        assert stat.S_IMODE(secret_file.stat().st_mode) == 0o600
    for result in (started, status, stopped):
        printed = result.stdout + result.stderr
        assert token not in printed and password not in printed
    for result in (started, status):
        assert str(env_file) in result.stdout and values["LABEL_STUDIO_URL"] in result.stdout
