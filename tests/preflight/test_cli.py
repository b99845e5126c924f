"""`rekfeedback preflight --config FILE [--param name=value]`: prints the report, exits 1 on problems."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import yaml

from rekfeedback.cli import main
from tests.conftest import ROOT

OTHER_REGION_WORKTEAM = "arn:aws:sagemaker:eu-west-1:123456789012:workteam/private-crowd/rekfeedback-reviewers"


def args(setup, path, *extra):
    return ["preflight", "--config", str(path), "--endpoint-url", setup.emulator.endpoint_url,
            "--region", "us-east-1", "--dag-id", "preflight_dag", *extra]


def test_correct_setup_exits_0(setup, tmp_path, capsys):
    path = tmp_path / "turn.json"
    path.write_text(json.dumps(setup.result))  # provision()'s output as is: settings under "config"
    assert main(args(setup, path)) == 0
    out = capsys.readouterr().out
    assert out.startswith("Preflight of preflight_dag passed: 0 problems")
    assert "new_images: 6" in out


def test_problems_exit_1_with_resource_and_advice(setup, tmp_path, capsys):
    path = tmp_path / "turn.yaml"
    path.write_text(yaml.safe_dump({"params": setup.config}))
    setup.client("s3").delete_bucket_cors(Bucket=setup.result["bucket"])
    assert main(args(setup, path, "--param", f"workteam_arn={OTHER_REGION_WORKTEAM}")) == 1
    out = capsys.readouterr().out
    assert "FAILED: 2 problems" in out
    assert f"[cors] s3://{setup.result['bucket']}" in out and f"[workteam] {OTHER_REGION_WORKTEAM}" in out
    assert "put-bucket-cors" in out


def test_json_output(setup, tmp_path, capsys):
    path = tmp_path / "turn.json"
    path.write_text(json.dumps(setup.config))
    assert main(args(setup, path, "--json", "--param", "start_model=false")) == 1
    report = json.loads(capsys.readouterr().out)
    assert report["failed"] is True
    assert [(f["check"], f["severity"]) for f in report["findings"]] == [("model", "error")]


def test_bad_usage_exits_2(setup, tmp_path, capsys):
    path = tmp_path / "turn.json"
    path.write_text(json.dumps({**setup.config, "input_url": "s3://typo/"}))
    assert main(args(setup, path)) == 2
    assert "unknown setting(s) input_url" in capsys.readouterr().err
    path.write_text(json.dumps(setup.config))
    assert main(args(setup, path, "--param", "shard_count=many")) == 2
    assert "shard_count" in capsys.readouterr().err


def test_console_script(setup, tmp_path):
    path = tmp_path / "turn.json"
    path.write_text(json.dumps(setup.config))
    env = {**os.environ, "AWS_ENDPOINT_URL": setup.emulator.endpoint_url, "AWS_DEFAULT_REGION": "us-east-1"}
    r = subprocess.run([sys.executable, "-m", "rekfeedback.cli", "preflight", "--config", str(path),
                        "--param", "pre_annotation_lambda_arn=arn:aws:lambda:us-east-1:123456789012:function:gone"],
                       capture_output=True, text=True, cwd=ROOT, env=env, timeout=120)
    assert r.returncode == 1, r.stderr
    assert "[lambda] arn:aws:lambda:us-east-1:123456789012:function:gone" in r.stdout


def test_labelstudio_connection_variable_is_read_like_the_hook_reads_it(monkeypatch):
    """JSON and URI forms of AIRFLOW_CONN_<id> give the URL, token and token kind the DAG's hook uses."""
    from argparse import Namespace

    from rekfeedback.preflight_cli import labelstudio_target

    flags = Namespace(labelstudio_url=None, labelstudio_token=None)
    for name in ("LABEL_STUDIO_URL", "LABEL_STUDIO_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    forms = {
        "json": json.dumps({"conn_type": "labelstudio", "host": "ls.example.com", "port": 8443, "password": "tok/1",
                            "extra": json.dumps({"scheme": "https", "auth": "pat"})}),
        "uri": "labelstudio://:tok%2F1@ls.example.com:8443/?scheme=https&auth=pat",
    }
    for form, value in forms.items():
        monkeypatch.setenv("AIRFLOW_CONN_LS_CLI", value)
        target = labelstudio_target(flags, "ls_cli")
        assert (target.error, target.url, target.token, target.auth) == (None, "https://ls.example.com:8443",
                                                                          "tok/1", "pat"), form
        assert target.client().auth.kind == "pat"
    monkeypatch.setenv("AIRFLOW_CONN_LS_CLI", "{not json")
    target = labelstudio_target(flags, "ls_cli")
    assert target.url is None and "AIRFLOW_CONN_LS_CLI cannot be read" in target.error
