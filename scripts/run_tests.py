"""`make test`: the suite on every core, the Label Studio tests beside it in one process of their own.

    python scripts/run_tests.py [--workers auto|N|0] [pytest arguments...]

Every test that uses the session's Label Studio (the `labelstudio` marker, which tests/conftest.py also puts on
any test using the `label_studio` fixture) runs in one pytest process: those tests start, restart and stop one
server, which pytest-xdist workers would share and race for (xdist's `loadgroup` does not keep groups together
with pytest 9.2). Everything else runs on `--workers` xdist workers at the same time; most of a DAG test is
waiting, so the three processes keep two cores busy. `--workers 0` runs the whole selection in one process.

The exit code is pytest's: 0 when every part passed; a part that selected no test (5) counts as passed unless
no part ran any test. Each part's output is printed whole, the Label Studio part's after the other.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile

NO_TESTS = 5


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", default="auto", help="xdist workers for the tests without Label Studio")
    args, pytest_args = parser.parse_known_args(argv)
    pytest = [sys.executable, "-m", "pytest"]
    if args.workers in ("0", ""):
        return subprocess.call([*pytest, "-p", "no:xdist", *pytest_args])
    with tempfile.TemporaryFile("w+") as ls_log:
        label_studio = subprocess.Popen([*pytest, "-p", "no:xdist", "-m", "labelstudio", *pytest_args],
                                        stdout=ls_log, stderr=subprocess.STDOUT, text=True)
        try:
            # worksteal: a worker that runs out takes tests queued for the other (the DAG tests are long).
            rest = subprocess.call([*pytest, "-n", args.workers, "--dist", "worksteal", "-m", "not labelstudio",
                                    *pytest_args])
        finally:
            ls_rc = label_studio.wait()
        ls_log.seek(0)
        print("\n===== the Label Studio tests (one process, run beside the others) =====")
        sys.stdout.write(ls_log.read())
    return combined([rest, ls_rc])


def combined(codes: list[int]) -> int:
    """One exit code for the parts: a failure wins; "no tests" only when no part ran any."""
    if all(c == NO_TESTS for c in codes):
        return NO_TESTS
    failed = [c for c in codes if c not in (0, NO_TESTS)]
    return failed[0] if failed else 0


if __name__ == "__main__":
    sys.exit(main())
