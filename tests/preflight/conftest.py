"""A correct local setup (rekfeedback_local.local_setup.provision) per test, and helpers to run the checks on it.

Each test gets its own bucket and Ground Truth role (so breaking one thing never leaks into another
test); the Lambdas, the work team and the trained project version are shared, as `provision` reuses
what exists.
"""

from __future__ import annotations

import uuid

import boto3
import pytest

# The real Label Studio (tests/fixtures/label_studio.py: started once per session, reused when already running).

DAG_ID = "preflight_dag"


class Setup:
    def __init__(self, emulator, result: dict):
        self.emulator = emulator
        self.result = result
        self.config = dict(result["config"])
        self._clients: dict = {}

    def client(self, service: str):
        if service not in self._clients:
            self._clients[service] = boto3.client(service, endpoint_url=self.emulator.endpoint_url,
                                                  region_name="us-east-1")
        return self._clients[service]

    def check(self, labelstudio=None, **overrides):
        from rekfeedback import turn_config
        from rekfeedback.preflight import run_checks

        config = turn_config.resolve({**self.config, **overrides}, environ={})
        return run_checks(config, clients=self.client, region="us-east-1", dag_id=DAG_ID, labelstudio=labelstudio)

    def keys(self, prefix: str = "") -> list[str]:
        s3 = self.client("s3")
        return [o["Key"] for page in s3.get_paginator("list_objects_v2").paginate(Bucket=self.result["bucket"],
                                                                                  Prefix=prefix)
                for o in page.get("Contents", [])]


@pytest.fixture
def setup(emulator):
    from rekfeedback_local import local_setup

    tag = uuid.uuid4().hex[:8]
    result = local_setup.provision(emulator.endpoint_url, bucket=f"preflight-{tag}", role_name=f"gt-role-{tag}",
                                   project_name="preflight-shapes", n_images=6, n_seed=8, n_test=8, bad_files=False)
    return Setup(emulator, result)
