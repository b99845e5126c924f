"""infra/ground-truth.yaml: cfn-lint clean, least privilege on S3, outputs named like the DAG's parameters."""

from __future__ import annotations

import pathlib
import shutil
import subprocess
import sys

import pytest
import yaml

ROOT = pathlib.Path(__file__).resolve().parents[2]
TEMPLATE = ROOT / "infra" / "ground-truth.yaml"


def _template() -> dict:
    return yaml.safe_load(TEMPLATE.read_text())


def _cfn_lint() -> str:
    found = pathlib.Path(sys.executable).with_name("cfn-lint")
    return str(found) if found.exists() else (shutil.which("cfn-lint") or "")


def test_cfn_lint_passes():
    exe = _cfn_lint()
    if not exe:
        pytest.fail("cfn-lint is not installed in the test environment (it is in requirements.lock)")
    proc = subprocess.run([exe, str(TEMPLATE)], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def _statements(template: dict):
    for name, res in template["Resources"].items():
        props = res.get("Properties", {})
        docs = [p["PolicyDocument"] for p in props.get("Policies", [])]
        if res["Type"] in ("AWS::IAM::RolePolicy", "AWS::IAM::Policy"):
            docs.append(props["PolicyDocument"])
        for doc in docs:
            for st in doc["Statement"]:
                yield name, st


def _resources(st) -> list:
    r = st.get("Resource")
    return r if isinstance(r, list) else [r]


def _actions(st) -> list[str]:
    a = st.get("Action")
    return a if isinstance(a, list) else [a]


def test_no_s3_statement_grants_every_resource():
    s3_statements = [(n, st) for n, st in _statements(_template()) if any(a.startswith("s3:") for a in _actions(st))]
    assert s3_statements, "expected S3 statements in the roles"
    for name, st in s3_statements:
        for res in _resources(st):
            text = res if isinstance(res, str) else str(res.get("Fn::Sub", res))
            assert text != "*", f"{name}: S3 statement {st.get('Sid')} grants Resource '*'"
            assert ":s3:::*" not in text and ":s3:::${" in text, f"{name}: S3 resource {text} is not scoped to a bucket parameter"
        assert not any(a in ("s3:*", "*") for a in _actions(st)), f"{name}: wildcard S3 action"


def test_ground_truth_role_may_invoke_only_our_lambdas():
    template = _template()
    invoke = [st for n, st in _statements(template) if n == "GroundTruthRole" and "lambda:InvokeFunction" in _actions(st)]
    assert len(invoke) == 1
    assert sorted(r["Fn::GetAtt"][0] for r in _resources(invoke[0])) == ["ConsolidationFunction", "PreAnnotationFunction"]
    trust = template["Resources"]["GroundTruthRole"]["Properties"]["AssumeRolePolicyDocument"]["Statement"][0]
    assert trust["Principal"] == {"Service": "sagemaker.amazonaws.com"}


def test_lambdas_come_from_the_package_and_outputs_match_the_dag_parameters():
    res = _template()["Resources"]
    assert res["PreAnnotationFunction"]["Properties"]["Handler"] == "rekfeedback.lambdas.pre_annotation.handler"
    assert res["ConsolidationFunction"]["Properties"]["Handler"] == "rekfeedback.lambdas.consolidation.handler"
    # The emulator and the team contract know the functions by these names.
    assert res["PreAnnotationFunction"]["Properties"]["FunctionName"] == "rekfeedback-pre-annotation"
    assert res["ConsolidationFunction"]["Properties"]["FunctionName"] == "rekfeedback-annotation-consolidation"
    for fn in ("PreAnnotationFunction", "ConsolidationFunction"):
        assert res[fn]["Properties"]["Code"] == {"S3Bucket": {"Ref": "CodeBucket"}, "S3Key": {"Ref": "CodeKey"}}
    perms = [r["Properties"] for r in res.values() if r["Type"] == "AWS::Lambda::Permission"]
    assert {p["Principal"] for p in perms} == {"sagemaker.amazonaws.com"} and len(perms) == 2
    assert set(_template()["Outputs"]) == {"PreAnnotationLambdaArn", "AnnotationConsolidationLambdaArn",
                                           "GroundTruthRoleArn"}
    for handler in ("pre_annotation", "consolidation"):
        assert (ROOT / "plugins" / "rekfeedback" / "lambdas" / f"{handler}.py").exists()


def test_ground_truth_may_write_only_its_labeling_output():
    """The data prefix also holds the cumulative manifest, the unusable list and the report history."""
    import fnmatch

    from rekfeedback import turn_config
    from rekfeedback.core.paths import turn_prefix

    puts = [st for n, st in _statements(_template()) if n == "GroundTruthRole" and "s3:PutObject" in _actions(st)]
    assert puts, "the Ground Truth role must be able to write its output"
    patterns = []
    for st in puts:
        assert _actions(st) == ["s3:PutObject"], st
        for res in _resources(st):
            text = res["Fn::Sub"] if isinstance(res, dict) else res
            patterns.append(text.split(":s3:::", 1)[1].replace("${DataBucketName}", "data").replace("${DataPrefix}", "rek"))
    # IAM's * matches across slashes, like fnmatch's.
    may = lambda key: any(fnmatch.fnmatchcase(f"data/{key}", p) for p in patterns)  # noqa: E731
    config, dag = {"output_uri": "s3://data/rek/"}, "rekognition_feedback_loop"
    turn = turn_prefix(config["output_uri"], dag, "manual__2026-12-01T00:00:00+00:00")
    assert may(turn.join("review", "ground-truth", "output", "job-1", "manifests", "output", "output.manifest").key)
    for uri in (turn_config.cumulative_manifest_uri(config, dag), turn_config.unusable_images_uri(config, dag),
                f"s3://data/rek/{dag}/reports/history.json", str(turn.join("manifest", "output.manifest")),
                str(turn.join("review", "ground-truth", "jobs", "job-1", "input.manifest"))):
        assert not may(uri.removeprefix("s3://data/")), f"Ground Truth may overwrite {uri}"


@pytest.mark.parametrize("prefix,ok", [
    ("rekfeedback", True), ("team-a/loops", True), ("a.b_c(1)", True),
    ("*", False), ("rek*", False), ("rek?", False), ("${aws:username}", False), ("/rek", False), ("rek/", False),
    ("a//b", False), ("", False),
])
def test_data_prefix_refuses_wildcards(prefix, ok):
    import re

    param = _template()["Parameters"]["DataPrefix"]
    assert bool(re.fullmatch(param["AllowedPattern"], prefix)) is ok
    assert re.fullmatch(param["AllowedPattern"], param["Default"])
