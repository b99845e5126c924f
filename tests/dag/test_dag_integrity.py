"""The DAG file parses cleanly, fast, with no I/O, and its Trigger form explains itself."""

from __future__ import annotations

import subprocess
import sys
import time

import pytest

from tests.conftest import ROOT

DAG_FILE = ROOT / "dags" / "rekognition_feedback_loop.py"


@pytest.fixture(scope="module")
def dagbag():
    from airflow.dag_processing.dagbag import BundleDagBag

    return BundleDagBag(dag_folder=str(ROOT / "dags"), bundle_path=str(ROOT / "dags"))


def test_imports_without_errors(dagbag):
    assert dagbag.import_errors == {}
    assert "rekognition_feedback_loop" in dagbag.dag_ids


def test_parsing_imports_nothing_beyond_airflow_and_the_provider():
    # Parse cost without a wall-clock threshold (bench/dag_parse_time.py prints the time): after airflow
    # and the provider are imported, as the dag-processor has them, the file itself may only pull in
    # Airflow's own modules (and theirs), never a library of its own or a client.
    code = (
        "import sys, runpy, airflow.sdk, rekfeedback.operators as o, rekfeedback.sensors as s\n"
        "for n in o.__all__: getattr(o, n)\n"
        "for n in s.__all__: getattr(s, n)\n"
        "before = set(sys.modules)\n"
        f"runpy.run_path({str(DAG_FILE)!r})\n"
        "print(sorted(set(sys.modules) - before))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    new = eval(out.stdout.strip().splitlines()[-1])  # noqa: S307 - our own subprocess's list of names
    allowed = ("airflow.", "rekfeedback.", "croniter", "packaging.")  # Airflow's timetables and decorators
    assert [m for m in new if not m.startswith(allowed)] == []


def test_parsing_does_no_network_io(monkeypatch):
    import socket

    attempts = []  # recorded, not raised: a broad `except` on the parse path cannot hide one

    def record(*args, **kwargs):
        attempts.append(args[1:] or kwargs)
        raise OSError("no network at parse time")

    monkeypatch.setattr(socket.socket, "connect", record)
    monkeypatch.setattr(socket.socket, "connect_ex", record)
    monkeypatch.setattr(socket, "getaddrinfo", record)
    import runpy

    namespace = runpy.run_path(str(DAG_FILE))
    assert attempts == []
    assert namespace["dag"].dag_id == "rekognition_feedback_loop"  # the file was parsed to the end


def test_every_param_is_documented(dagbag):
    dag = dagbag.dags["rekognition_feedback_loop"]
    for name, param in dag.params.items():
        schema = param.schema
        # Markdown only: the form shows a plain `description` raw and renders `description_md`.
        assert schema.get("description_md") and not param.description, f"param {name} has no Markdown description"
        assert schema.get("section"), f"param {name} has no section"
        assert "type" in schema, f"param {name} has no type"


def test_defaults_and_concurrency(dagbag):
    dag = dagbag.dags["rekognition_feedback_loop"]
    assert dag.max_active_runs == 1
    assert dag.default_args["retries"] >= 1
    for t in dag.tasks:
        if t.is_mapped:  # a mapped task's fields live in its partial kwargs until it expands
            continue
        for field in t.template_fields:
            assert hasattr(t, field), f"{t.task_id}: template field {field} is not an attribute"


def test_blank_settings_are_optional_and_an_empty_form_validates(dagbag):
    from rekfeedback.turn_config import SETTINGS

    dag = dagbag.dags["rekognition_feedback_loop"]
    blank = [s.name for s in SETTINGS if s.default in (None, "")]
    assert {"project_version_arn", "input_uri", "output_uri", "workteam_arn", "role_arn"} <= set(blank)
    for name in blank:
        schema = dag.params.get_param(name).schema
        assert "null" in schema["type"], f"{name} is blank by default but required by the form: {schema['type']}"
    dag.params.validate()  # the empty form: every blank setting comes from Variables at run time
    import copy

    with_arn = copy.deepcopy(dag.params)  # the form with only the ARN typed in
    with_arn["project_version_arn"] = "arn:aws:rekognition:us-east-1:123456789012:project/p/version/p.v1/1700000000000"
    with_arn.validate()


def test_malformed_arn_is_rejected_by_the_form(dagbag):
    from airflow.sdk.exceptions import ParamValidationError

    dag = dagbag.dags["rekognition_feedback_loop"]
    params = dag.params.deep_merge({"project_version_arn": "my-model"}) if hasattr(dag.params, "deep_merge") else None
    with pytest.raises((ParamValidationError, ValueError)) as err:
        if params is None:
            dag.params["project_version_arn"] = "my-model"
        else:
            params.validate()
    assert "project_version_arn" in str(err.value) or "does not match" in str(err.value)


def test_readme_documents_every_param(dagbag):
    readme = (ROOT / "README.md").read_text()
    dag = dagbag.dags["rekognition_feedback_loop"]
    missing = [name for name in dag.params if f"| `{name}` |" not in readme]
    assert not missing, f"README's params table lacks {missing}"
