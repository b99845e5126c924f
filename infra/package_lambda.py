"""Build the Lambda zip: the two handlers and only the rekfeedback modules they import.

Run from the repository root: `python infra/package_lambda.py` writes
`build/rekfeedback-lambda-<version>.zip` and prints its path. The modules are found by following the
handlers' imports (modulefinder), so a module the handlers stop importing leaves the bundle too;
boto3 is the Lambda runtime's own and is never packed.
"""

from __future__ import annotations

import modulefinder
import pathlib
import sys
import zipfile

ROOT = pathlib.Path(__file__).resolve().parents[1]
SOURCE = ROOT / "plugins"
HANDLERS = ("rekfeedback.lambdas.pre_annotation", "rekfeedback.lambdas.consolidation")


def bundled_modules() -> list[pathlib.Path]:
    """Source files of every rekfeedback module the handlers import (and the packages holding them)."""
    finder = modulefinder.ModuleFinder(path=[str(SOURCE), *sys.path])
    for name in HANDLERS:
        finder.import_hook(name)
    files = set()
    for name, module in finder.modules.items():
        if (name == "rekfeedback" or name.startswith("rekfeedback.")) and module.__file__:
            files.add(pathlib.Path(module.__file__).resolve())
    return sorted(files)


def build(out_dir: pathlib.Path = ROOT / "build") -> pathlib.Path:
    sys.path.insert(0, str(SOURCE))
    from rekfeedback import __version__

    out_dir.mkdir(parents=True, exist_ok=True)
    target = out_dir / f"rekfeedback-lambda-{__version__}.zip"
    with zipfile.ZipFile(target, "w", zipfile.ZIP_DEFLATED) as zf:
        for path in bundled_modules():
            info = zipfile.ZipInfo(str(path.relative_to(SOURCE)), date_time=(1980, 1, 1, 0, 0, 0))  # same bytes each build
            info.external_attr = 0o644 << 16
            zf.writestr(info, path.read_bytes(), zipfile.ZIP_DEFLATED)
    return target


if __name__ == "__main__":
    print(build())
