"""The repository's scripts import test helpers lazily (the deployment test drives the Trigger form with
tests/deployment/trigger_form.py): every module they name must exist, or the failure shows only at the end of CI."""

from __future__ import annotations

import ast
import importlib.util

from tests.conftest import ROOT


def _imported_modules(path):
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            yield node.module
        elif isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)


def test_every_module_the_scripts_import_from_the_repository_exists():
    scripts = sorted((ROOT / "scripts").glob("*.py")) + sorted((ROOT / "bench").glob("*.py"))
    ours = ("tests", "rekfeedback", "rekfeedback_local")
    named = {(path.name, module) for path in scripts for module in _imported_modules(path)
             if module.split(".")[0] in ours}
    assert any(module.startswith("tests.") for _, module in named), "the deployment test's form helper is not seen"
    missing = sorted((script, module) for script, module in named if importlib.util.find_spec(module) is None)
    assert not missing, f"scripts import modules that do not exist: {missing}"
