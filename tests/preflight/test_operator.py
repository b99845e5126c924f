"""FeedbackLoopPreflightOperator: fails once with every problem, skips when nothing is new, returns the config."""

from __future__ import annotations

import json
from types import SimpleNamespace

import pytest
from airflow.sdk.exceptions import AirflowFailException, AirflowSkipException

from rekfeedback import turn_config
from rekfeedback.operators import FeedbackLoopPreflightOperator
from tests.preflight.conftest import DAG_ID

OTHER_REGION_WORKTEAM = "arn:aws:sagemaker:eu-west-1:123456789012:workteam/private-crowd/rekfeedback-reviewers"


def run(params, **kwargs):
    op = FeedbackLoopPreflightOperator(task_id="preflight", params_to_check=params, **kwargs)
    return op.execute({"dag": SimpleNamespace(dag_id=DAG_ID), "params": {}, "ti": SimpleNamespace(dag_id=DAG_ID),
                       "run_id": "manual__preflight-test"})


def test_returns_the_resolved_config_and_counts(setup, monkeypatch):
    monkeypatch.setenv("REKFEEDBACK_AUDIT_RATE", "0.25")  # a blank param filled from the environment
    out = run({**setup.config, "audit_rate": None})
    assert out["config"]["audit_rate"] == 0.25
    assert out["config"]["project_version_arn"] == setup.config["project_version_arn"]
    assert out["candidates"] == 6 and out["new_images"] == 6 and out["warnings"] == []
    json.dumps(out)  # an XCom


def test_params_default_to_the_runs_params(setup):
    op = FeedbackLoopPreflightOperator(task_id="preflight")
    out = op.execute({"dag": SimpleNamespace(dag_id=DAG_ID), "params": dict(setup.config), "run_id": "manual__t"})
    assert out["config"]["input_uri"] == setup.config["input_uri"]


def test_params_rendered_as_text_are_accepted(setup):
    out = run(repr(dict(setup.config)))
    assert out["new_images"] == 6


def test_fails_once_listing_every_problem(setup):
    setup.client("s3").delete_bucket_cors(Bucket=setup.result["bucket"])
    missing = "arn:aws:lambda:us-east-1:123456789012:function:rekfeedback-pre-annotation-missing"
    setup.emulator.reset_stats()
    with pytest.raises(AirflowFailException) as info:
        run({**setup.config, "workteam_arn": OTHER_REGION_WORKTEAM, "pre_annotation_lambda_arn": missing})
    text = str(info.value)
    assert "3 problems" in text
    for resource in (f"s3://{setup.result['bucket']}", OTHER_REGION_WORKTEAM, missing):
        assert resource in text
    assert "put-bucket-cors" in text and "us-east-1" in text
    calls = setup.emulator.calls
    assert calls["Rekognition.StartProjectVersion"] == 0 and calls["SageMaker.CreateLabelingJob"] == 0


def test_config_errors_fail_without_retry(setup):
    with pytest.raises(AirflowFailException) as info:
        run({**setup.config, "output_uri": "bucket-without-scheme"})
    assert "output_uri" in str(info.value)


def test_nothing_new_skips(setup):
    images = [f"s3://{setup.result['bucket']}/{k}" for k in setup.keys("synthetic/images/")]
    manifest = turn_config.cumulative_manifest_uri(turn_config.resolve(setup.config, environ={}), DAG_ID)
    bucket, key = manifest.removeprefix("s3://").split("/", 1)
    setup.client("s3").put_object(Bucket=bucket, Key=key,
                                  Body="".join(json.dumps({"source-ref": r}) + "\n" for r in images).encode())
    setup.emulator.reset_stats()
    with pytest.raises(AirflowSkipException) as info:
        run(setup.config)
    assert "nothing new" in str(info.value)
    assert setup.emulator.calls["Rekognition.StartProjectVersion"] == 0
    # With the skip turned off the task succeeds and says so in its warnings.
    out = run(setup.config, skip_when_nothing_new=False)
    assert out["new_images"] == 0 and out["warnings"][0]["check"] == "input"


def test_label_studio_connection_that_does_not_exist(setup):
    with pytest.raises(AirflowFailException) as info:
        run({**setup.config, "review_backend": "label-studio", "labelstudio_conn_id": "no_such_ls_conn"})
    assert "no_such_ls_conn" in str(info.value)


@pytest.mark.parametrize("name,value", [("MAX_RESULTS", "-5"), ("AUTO_ACCEPT_CONFIDENCE", "-1"),
                                        ("SHARD_COUNT", "many"), ("TRAIN", "maybe")])
def test_a_bad_value_from_an_environment_variable_fails_preflight_naming_it(setup, monkeypatch, name, value):
    monkeypatch.setenv(f"REKFEEDBACK_{name}", value)
    setup.emulator.reset_stats()
    with pytest.raises(AirflowFailException) as info:
        run({**setup.config, name.lower(): None})
    assert f"REKFEEDBACK_{name}" in str(info.value) and f"{name.lower()}=" in str(info.value)
    assert setup.emulator.calls["Rekognition.StartProjectVersion"] == 0
    assert sum(setup.emulator.calls.values()) == 0  # failed before touching anything
