"""`rekfeedback-local seed-local` provisions a setup that preflight then accepts."""

from __future__ import annotations

import json
import subprocess
import sys


def test_seed_local_then_preflight_passes(emulator, tmp_path):
    out = subprocess.run(
        [sys.executable, "-m", "rekfeedback_local.cli", "seed-local", "--endpoint-url", emulator.endpoint_url,
         "--images", "6"],
        capture_output=True, text=True, timeout=300,
    )
    assert out.returncode == 0, out.stderr
    config = json.loads(out.stdout[out.stdout.index("{"):])
    assert config["project_version_arn"].startswith("arn:aws:rekognition:")
    path = tmp_path / "turn.json"
    path.write_text(json.dumps(config))
    check = subprocess.run(
        [sys.executable, "-m", "rekfeedback.cli", "preflight", "--config", str(path),
         "--endpoint-url", emulator.endpoint_url],
        capture_output=True, text=True, timeout=300,
    )
    assert check.returncode == 0, check.stdout + check.stderr
