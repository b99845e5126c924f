"""The provider is discoverable by Airflow and lists exactly what exists; docker-compose matches the pins."""

from __future__ import annotations

import importlib
import re
from importlib.metadata import entry_points

import yaml

from tests.conftest import ROOT


def _provider_info() -> dict:
    (ep,) = [e for e in entry_points(group="apache_airflow_provider") if e.value.startswith("rekfeedback.")]
    return ep.load()()


def test_provider_info_lists_what_exists():
    info = _provider_info()
    assert info["package-name"] == "rekfeedback"
    for kind in ("hooks", "operators", "sensors", "triggers"):
        modules = [m for group in info[kind] for m in group["python-modules"]]
        assert modules, f"{kind} lists no module"
        for module in modules:
            importlib.import_module(module)
    for path in info["extra-links"]:
        module, _, name = path.rpartition(".")
        assert hasattr(importlib.import_module(module), name), path
    for conn in info["connection-types"]:
        module, _, name = conn["hook-class-name"].rpartition(".")
        hook = getattr(importlib.import_module(module), name)
        assert hook.conn_type == conn["connection-type"]


def test_public_names_resolve():
    for package in ("hooks", "operators", "sensors", "triggers", "links"):
        mod = importlib.import_module(f"rekfeedback.{package}")
        for name in mod.__all__:
            assert getattr(mod, name).__name__ == name


def test_airflow_sees_the_provider():
    from airflow.providers_manager import ProvidersManager

    assert "rekfeedback" in ProvidersManager().providers


def _pins(lock: str = "requirements.lock") -> dict[str, str]:
    pins = {}
    for line in (ROOT / lock).read_text().splitlines():
        m = re.match(r"^([A-Za-z0-9_.\-]+)==([^\s;]+)", line)
        if m:
            pins[m.group(1).lower()] = m.group(2)
    return pins


def test_lock_pins_the_required_versions():
    pins = _pins()
    assert pins["apache-airflow"].startswith("3.3.")
    assert pins["apache-airflow-providers-amazon"].startswith("9.")
    assert _pins("requirements-dev.lock")["moto"].startswith("5.")
    for name in ("boto3", "pillow", "botocore", "apache-airflow-task-sdk"):
        assert name in pins, name


def test_compose_file_structure_matches_the_pins():
    compose = yaml.safe_load((ROOT / "docker-compose.yaml").read_text())
    services = compose["services"]
    for name in ("postgres", "redis", "airflow-apiserver", "airflow-scheduler", "airflow-dag-processor",
                 "airflow-triggerer", "airflow-worker", "airflow-init", "label-studio", "emulator"):
        assert name in services, f"docker-compose.yaml has no {name} service"
    common = compose["x-airflow-common"]
    mounts = {v.split(":")[1] for v in common["volumes"]}
    assert {"/opt/airflow/dags", "/opt/airflow/plugins"} <= mounts
    pins = _pins()
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert f"AIRFLOW_VERSION={pins['apache-airflow']}" in dockerfile
    assert common["image"].endswith(pins["apache-airflow"])
    assert "requirements.lock" in dockerfile
    ls_image = services["label-studio"]["image"]
    ls_lock = (ROOT / "scripts" / "labelstudio.lock").read_text()
    ls_version = re.search(r"^label-studio==(\S+)", ls_lock, re.M).group(1)
    assert ls_image.endswith(":" + ls_version), (ls_image, ls_version)
    assert services["emulator"]["profiles"] == ["local"]
    assert services["emulator-seed"]["profiles"] == ["local"]
