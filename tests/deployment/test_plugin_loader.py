"""Airflow's plugin loader, run over the repository's plugins/ (what docker-compose mounts as the plugins
folder and the deployment test uses), imports nothing: the provider is installed, not a plugin."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

# In a subprocess: the loader puts every module it imports into sys.modules under its bare file name.
PROBE = """
import json, sys
from airflow._shared.module_loading import find_path_from_directory
from airflow._shared.plugins_manager.plugins_manager import _load_plugins_from_plugin_directory
folder = sys.argv[1]
before = set(sys.modules)
plugins, errors = _load_plugins_from_plugin_directory(folder)
print(json.dumps({
    "seen": [p for p in find_path_from_directory(folder, ".airflowignore", "glob") if p.endswith(".py")],
    "plugins": [p.name for p in plugins],
    "errors": errors,
    "new_top_level_modules": sorted(m for m in set(sys.modules) - before if "." not in m and m in {
        "cli", "validation", "report", "server", "merge", "model", "rekognition", "preflight_cli", "turn_config"}),
}))
"""


def load(folder: Path) -> dict:
    out = subprocess.run([sys.executable, "-c", PROBE, str(folder)], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_plugin_loader_imports_nothing_from_plugins_folder():
    result = load(ROOT / "plugins")
    assert result == {"seen": [], "plugins": [], "errors": {}, "new_top_level_modules": []}


def test_without_the_ignore_file_the_loader_would_import_the_provider_modules(tmp_path):
    # The same folder minus .airflowignore: the loader walks into the package (what the ignore file prevents).
    (tmp_path / "rekfeedback").symlink_to(ROOT / "plugins" / "rekfeedback", target_is_directory=True)
    result = load(tmp_path)
    assert result["seen"], "the loader saw no provider module: this test no longer shows what .airflowignore does"
    assert result["new_top_level_modules"] or result["errors"]
