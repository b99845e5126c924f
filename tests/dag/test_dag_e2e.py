"""End-to-end: the real DAG, run with dag.test() against the emulator (issue 7's Done-when)."""

from __future__ import annotations

import time

import pytest

from .conftest import task_log, task_states, xcom


def test_happy_path_ground_truth(loop_setup, run_dag, aws, emulator):
    setup = loop_setup()
    t0 = time.monotonic()
    dag_run = run_dag(setup["run_conf"])
    print("took", time.monotonic() - t0)
    print(task_states(dag_run))
    print(xcom(dag_run, "summary"))
    assert str(dag_run.state) == "success"
