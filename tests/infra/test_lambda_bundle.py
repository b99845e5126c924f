"""The Lambda zip holds the handlers and only the pure modules they import; they import from it alone."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
import zipfile

from tests.conftest import ROOT


def _package_lambda():
    spec = importlib.util.spec_from_file_location("package_lambda", ROOT / "infra" / "package_lambda.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_bundle_packs_only_what_the_handlers_import(tmp_path):
    from rekfeedback import __version__

    target = _package_lambda().build(tmp_path)
    assert target.name == f"rekfeedback-lambda-{__version__}.zip"
    names = zipfile.ZipFile(target).namelist()
    assert {"rekfeedback/lambdas/pre_annotation.py", "rekfeedback/lambdas/consolidation.py",
            "rekfeedback/core/verification_task.py"} <= set(names)
    # The worker side only: no job planning, no answer records (pydantic is not in the Lambda runtime).
    assert "rekfeedback/core/ground_truth.py" not in names and "rekfeedback/core/answers.py" not in names
    assert not [n for n in names if n.startswith(("rekfeedback/operators", "rekfeedback/hooks", "rekfeedback/sensors",
                                                  "rekfeedback/triggers", "rekfeedback/preflight", "rekfeedback/dags"))]
    assert target.read_bytes() == _package_lambda().build(tmp_path / "again").read_bytes()  # same bytes each build

    # The handlers import from the zip with Airflow out of reach, as in the Lambda runtime.
    code = (
        "import sys\n"
        "class NoAirflow:\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name.split('.')[0] in ('airflow', 'rekfeedback_local'):\n"
        "            raise ImportError(f'{name} is not in the Lambda runtime')\n"
        "sys.meta_path.insert(0, NoAirflow())\n"
        f"sys.path = [{str(target)!r}] + [p for p in sys.path if 'plugins' not in p and p != '']\n"
        "import rekfeedback.lambdas.pre_annotation as p, rekfeedback.lambdas.consolidation as c\n"
        "assert p.__file__.startswith(sys.path[0]) and callable(p.handler) and callable(c.handler)\n"
        "print('ok')\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path, timeout=120)
    assert out.stdout.strip() == "ok", out.stderr[-2000:]
