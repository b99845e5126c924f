"""Benchmark: the DAG file's own parse cost, as the dag-processor pays it.

Measured in a fresh interpreter after airflow and the provider are imported (the dag-processor has
them already): what remains is this file's cost. Last line: ``dag_parse_ms=<ms>``. Target: < 500 ms
on an idle core. A timing, so a figure printed here rather than a test threshold.
"""

from __future__ import annotations

import pathlib
import subprocess
import sys

DAG_FILE = pathlib.Path(__file__).resolve().parents[1] / "dags" / "rekognition_feedback_loop.py"

CODE = (
    "import time, runpy, airflow.sdk, rekfeedback.operators as o, rekfeedback.sensors as s\n"
    "for n in o.__all__: getattr(o, n)\n"
    "for n in s.__all__: getattr(s, n)\n"
    "runpy.run_path({path!r})\n"  # warm: the second parse is the dag-processor's steady state
    "t = time.perf_counter(); runpy.run_path({path!r}); print(time.perf_counter() - t)\n"
)


def main() -> None:
    out = subprocess.run([sys.executable, "-c", CODE.format(path=str(DAG_FILE))], capture_output=True, text=True,
                         check=True)
    seconds = float(out.stdout.strip().splitlines()[-1])
    print(f"dag_parse_ms={seconds * 1000:.1f}")


if __name__ == "__main__":
    main()
