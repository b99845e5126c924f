"""docker-compose.yaml is valid for the Compose Specification and follows the official Airflow 3.3 compose where
it matters: an init service that runs the image's entrypoint (migration), health checks, a Celery result backend
that names psycopg2, the settings the deployment test runs with (deploy/airflow.env), no dev tool in production.

compose-spec.json is the Compose Specification's JSON schema, pinned from github.com/compose-spec/compose-spec
(schema/compose-spec.json at commit 170098ba07d9f53c383a41bfd4c5166b0a4529a6, Apache-2.0), so no network is needed.
"""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import pytest
import yaml

from tests.conftest import ROOT

SCHEMA = Path(__file__).with_name("compose-spec.json")
AIRFLOW_SERVICES = ("airflow-apiserver", "airflow-scheduler", "airflow-dag-processor", "airflow-triggerer",
                    "airflow-worker")


@pytest.fixture(scope="module")
def compose() -> dict:
    return yaml.safe_load((ROOT / "docker-compose.yaml").read_text())


def test_compose_file_is_valid_for_the_compose_specification(compose):
    validator = jsonschema.Draft7Validator(json.loads(SCHEMA.read_text()))
    errors = sorted(validator.iter_errors(compose), key=lambda e: list(e.absolute_path))
    assert not errors, "\n".join(f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in errors)


def test_the_schema_catches_a_broken_compose_file(compose):
    broken = json.loads(json.dumps(compose))
    broken["services"]["airflow-init"]["depends_on"] = {"postgres": {"condition": "service_ready"}}
    validator = jsonschema.Draft7Validator(json.loads(SCHEMA.read_text()))
    assert list(validator.iter_errors(broken)), "the pinned schema accepted an unknown depends_on condition"


def test_init_service_runs_the_image_entrypoint_which_migrates(compose):
    init = compose["services"]["airflow-init"]
    script = "\n".join(init["command"])
    assert "/entrypoint airflow version" in script, "without the image's /entrypoint the database is not migrated"
    assert init["environment"]["_AIRFLOW_DB_MIGRATE"] == "true"
    for name in AIRFLOW_SERVICES:
        assert compose["services"][name]["depends_on"]["airflow-init"]["condition"] == "service_completed_successfully"


def test_health_checks_and_celery_result_backend(compose):
    for name in AIRFLOW_SERVICES + ("postgres", "redis"):
        assert compose["services"][name].get("healthcheck", {}).get("test"), f"{name} has no health check"
    env = compose["x-airflow-common"]["environment"]
    assert env["AIRFLOW__CELERY__RESULT_BACKEND"].startswith("db+postgresql+psycopg2://")
    assert env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"].startswith("postgresql+psycopg2://")


def test_compose_and_the_deployment_test_share_their_airflow_settings(compose):
    import importlib.util

    spec = importlib.util.spec_from_file_location("deploy_stack", ROOT / "scripts" / "deploy_stack.py")
    deploy_stack = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(deploy_stack)
    shared = deploy_stack.read_env_file(ROOT / "deploy" / "airflow.env")
    assert shared["AIRFLOW__CORE__EXECUTOR"] == "CeleryExecutor"
    assert "SimpleAuthManager" in shared["AIRFLOW__CORE__AUTH_MANAGER"]
    env_files = [e["path"] if isinstance(e, dict) else e for e in compose["x-airflow-common"]["env_file"]]
    assert "deploy/airflow.env" in env_files
    overlap = set(shared) & set(compose["x-airflow-common"]["environment"])
    assert not overlap, f"set in both deploy/airflow.env and compose (one place only): {sorted(overlap)}"


def test_only_the_local_profile_uses_the_image_with_the_emulator(compose):
    for name, service in compose["services"].items():
        target = (service.get("build") or {}).get("target") if isinstance(service.get("build"), dict) else None
        if name in ("emulator", "emulator-seed"):
            assert target == "local" and service["profiles"] == ["local"], name
        else:
            assert target is None, f"{name} builds the {target} target"


def test_label_studio_script_defaults_to_the_port_compose_publishes_not_airflows(compose):
    import re

    script = (ROOT / "scripts" / "labelstudio.sh").read_text()
    default = int(re.search(r"LABEL_STUDIO_PORT:-(\d+)", script).group(1))
    published = {int(p.split(":")[0]) for p in compose["services"]["label-studio"]["ports"]}
    api_server = {int(p.split(":")[0]) for p in compose["services"]["airflow-apiserver"]["ports"]}
    assert default not in api_server and default in published
