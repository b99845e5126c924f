"""A deployment installs the runtime set only: requirements.lock holds no test tool, the production image installs
nothing else, and the development lock pins every shared package at the runtime lock's version."""

from __future__ import annotations

import re

from tests.conftest import ROOT

TEST_TOOLS = {"pytest", "pytest-timeout", "moto", "hypothesis", "cfn-lint", "responses", "pytest-benchmark",
              "rekfeedback-local"}
DEPLOYMENT_NEEDS = {"apache-airflow", "apache-airflow-providers-amazon", "apache-airflow-providers-celery",
                    "psycopg2-binary", "asyncpg", "celery", "redis", "boto3", "pillow"}


def pins(name: str) -> dict[str, str]:
    found = {}
    for line in (ROOT / name).read_text().splitlines():
        m = re.match(r"^([A-Za-z0-9_.\-]+)(?:\[[^\]]*\])?==([^\s;]+)", line)
        if m:
            found[m.group(1).lower().replace("_", "-")] = m.group(2)
    return found


def test_runtime_lock_holds_no_test_tool_and_what_a_celery_postgres_deployment_needs():
    runtime = pins("requirements.lock")
    assert not TEST_TOOLS & set(runtime), f"requirements.lock ships test tools: {sorted(TEST_TOOLS & set(runtime))}"
    assert DEPLOYMENT_NEEDS <= set(runtime), f"requirements.lock lacks {sorted(DEPLOYMENT_NEEDS - set(runtime))}"
    assert runtime["apache-airflow"].startswith("3.3.")


def test_development_lock_is_the_runtime_set_plus_the_tools_at_the_same_pins():
    runtime, dev = pins("requirements.lock"), pins("requirements-dev.lock")
    assert {"pytest", "moto", "hypothesis", "cfn-lint"} <= set(dev)
    missing = sorted(set(runtime) - set(dev))
    assert not missing, f"requirements-dev.lock lacks runtime packages {missing}: run `make lock`"
    differ = {n: (runtime[n], dev[n]) for n in runtime if dev[n] != runtime[n]}
    assert not differ, f"the two locks pin these differently (runtime, dev): {differ}; run `make lock`"


def dockerfile_stages() -> dict[str, list[str]]:
    stages: dict[str, list[str]] = {}
    current = None
    for line in (ROOT / "Dockerfile").read_text().splitlines():
        m = re.match(r"^FROM\s+(\S+)(?:\s+AS\s+(\S+))?", line, re.I)
        if m:
            current = m.group(2) or m.group(1)
            stages[current] = [line]
        elif current and not line.lstrip().startswith("#"):
            stages[current].append(line)
    return stages


def test_production_image_installs_the_runtime_lock_only():
    stages = dockerfile_stages()
    last = list(stages)[-1]
    chain, name = [], last
    while name in stages:  # the default target and every stage it is built FROM
        chain.append(name)
        name = stages[name][0].split()[1]
    text = "\n".join(line for stage in chain for line in stages[stage])
    assert "-r /opt/rekfeedback/requirements.lock" in text
    assert "requirements-dev" not in text and "/local" not in text, f"the production image ({chain}) installs dev tools"
    assert "local" in stages and "requirements-dev.lock" in "\n".join(stages["local"])


def test_mwaa_instructions_name_the_runtime_lock():
    readme = (ROOT / "README.md").read_text()
    mwaa = readme[readme.index("**MWAA**"):].split("\n\n")[0]
    assert "requirements.lock" in mwaa and "requirements-dev" not in mwaa
