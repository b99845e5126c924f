"""Preflight against the emulator: a correct setup passes; each known way a turn fails is reported with its resource."""

from __future__ import annotations

import json
import uuid

import pytest

from rekfeedback import turn_config
from rekfeedback_local import local_setup
from rekfeedback.preflight import GT_CORS_RULE
from tests.preflight.conftest import DAG_ID

OTHER_REGION_WORKTEAM = "arn:aws:sagemaker:eu-west-1:123456789012:workteam/private-crowd/rekfeedback-reviewers"


def only_error(report):
    assert len(report.errors) == 1, report.format()
    return report.errors[0]


def test_correct_setup_passes(setup):
    report = setup.check()
    assert report.findings == [], report.format()
    assert report.facts["candidates"] == 6
    assert report.facts["new_images"] == 6
    assert report.facts["model_status"] == "TRAINING_COMPLETED"
    assert set(report.facts["labels"]) <= {"circle", "square", "triangle", "star"}
    checked = " ".join(report.passed)
    for what in ("model", "input", "output", "cors", "workteam", "role", "lambda", "template", "labels"):
        assert what in checked


def test_bucket_without_cors(setup):
    setup.client("s3").delete_bucket_cors(Bucket=setup.result["bucket"])
    finding = only_error(setup.check())
    assert (finding.check, finding.resource) == ("cors", f"s3://{setup.result['bucket']}")
    assert json.dumps(GT_CORS_RULE) in finding.advice


def test_cors_rule_without_get_from_any_origin(setup):
    setup.client("s3").put_bucket_cors(Bucket=setup.result["bucket"], CORSConfiguration={"CORSRules": [
        {"AllowedMethods": ["PUT"], "AllowedOrigins": ["https://example.com"]}]})
    finding = only_error(setup.check())
    assert finding.check == "cors" and "GET" in finding.problem


def test_workteam_in_another_region(setup):
    finding = only_error(setup.check(workteam_arn=OTHER_REGION_WORKTEAM))
    assert (finding.check, finding.resource) == ("workteam", OTHER_REGION_WORKTEAM)
    assert "eu-west-1" in finding.problem and "us-east-1" in finding.advice


def test_workteam_that_does_not_exist(setup):
    arn = "arn:aws:sagemaker:us-east-1:123456789012:workteam/private-crowd/nobody-here"
    finding = only_error(setup.check(workteam_arn=arn))
    assert (finding.check, finding.resource) == ("workteam", arn)
    assert "create it" in finding.advice


def test_role_sagemaker_cannot_assume(setup):
    role = setup.config["role_arn"].rsplit("/", 1)[1]
    setup.client("iam").update_assume_role_policy(RoleName=role, PolicyDocument=json.dumps({
        "Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Principal": {"Service": "lambda.amazonaws.com"},
                                                "Action": "sts:AssumeRole"}]}))
    finding = only_error(setup.check())
    assert (finding.check, finding.resource) == ("role", setup.config["role_arn"])
    assert "sagemaker.amazonaws.com" in finding.problem and "sagemaker.amazonaws.com" in finding.advice


def test_role_that_cannot_read_the_input(setup):
    role = setup.config["role_arn"].rsplit("/", 1)[1]
    bucket = setup.result["bucket"]
    policy = local_setup.ground_truth_role_policy(bucket, [setup.config["pre_annotation_lambda_arn"],
                                                           setup.config["consolidation_lambda_arn"]])
    # Objects only under the output prefix: the images under synthetic/ become unreadable for Ground Truth.
    policy["Statement"][1]["Resource"] = f"arn:aws:s3:::{bucket}/loop/*"
    setup.client("iam").put_role_policy(RoleName=role, PolicyName="rekfeedback-ground-truth",
                                        PolicyDocument=json.dumps(policy))
    finding = only_error(setup.check())
    assert (finding.check, finding.resource) == ("role", setup.config["role_arn"])
    assert "s3:GetObject" in finding.problem and "read the input images" in finding.problem
    assert f"arn:aws:s3:::{bucket}/synthetic/images/*" in finding.advice


def test_role_with_explicit_deny_on_output(setup):
    role = setup.config["role_arn"].rsplit("/", 1)[1]
    setup.client("iam").put_role_policy(RoleName=role, PolicyName="deny-output", PolicyDocument=json.dumps({
        "Version": "2012-10-17", "Statement": [{"Effect": "Deny", "Action": "s3:PutObject",
                                                "Resource": f"arn:aws:s3:::{setup.result['bucket']}/loop/*"}]}))
    finding = only_error(setup.check())
    assert finding.check == "role" and "explicitly denies s3:PutObject" in finding.problem


def test_missing_role(setup):
    arn = "arn:aws:iam::123456789012:role/no-such-role"
    report = setup.check(role_arn=arn)
    finding = only_error(report)
    assert (finding.check, finding.resource) == ("role", arn)
    assert "does not exist" in finding.problem


def test_missing_lambda(setup):
    arn = "arn:aws:lambda:us-east-1:123456789012:function:rekfeedback-pre-annotation-missing"
    finding = only_error(setup.check(pre_annotation_lambda_arn=arn))
    assert (finding.check, finding.resource) == ("lambda", arn)
    assert "does not exist" in finding.problem and "pre_annotation_lambda_arn" in finding.advice


def test_lambda_in_another_region(setup):
    arn = "arn:aws:lambda:eu-west-1:123456789012:function:rekfeedback-annotation-consolidation"
    finding = only_error(setup.check(consolidation_lambda_arn=arn))
    assert (finding.check, finding.resource) == ("lambda", arn)
    assert "eu-west-1" in finding.problem


def test_lambda_without_invoke_permission(setup):
    lam = setup.client("lambda")
    name = f"rekfeedback-noperm-{uuid.uuid4().hex[:6]}"
    arn = lam.create_function(FunctionName=name, Runtime="python3.11", Role=setup.result["lambda_role_arn"],
                              Handler="handler.handler", Code={"ZipFile": local_setup.lambda_zip()})["FunctionArn"]
    finding = only_error(setup.check(consolidation_lambda_arn=arn))
    assert (finding.check, finding.resource) == ("lambda", arn)
    assert "lambda:InvokeFunction" in finding.problem and "add-permission" in finding.advice
    # Granting it through the function's resource policy is enough.
    lam.add_permission(FunctionName=name, StatementId="gt", Action="lambda:InvokeFunction",
                       Principal="sagemaker.amazonaws.com")
    assert setup.check(consolidation_lambda_arn=arn).findings == []


def test_untrained_version(setup, emulator_knobs):
    emulator_knobs(training_seconds=120)
    rek = setup.client("rekognition")
    arn = rek.create_project_version(
        ProjectArn=setup.result["project_arn"], VersionName=f"slow-{uuid.uuid4().hex[:6]}",
        # local_setup gave the project TRAIN and TEST datasets, so the version trains from them.
        OutputConfig={"S3Bucket": setup.result["bucket"], "S3KeyPrefix": "models/"})["ProjectVersionArn"]
    report = setup.check(project_version_arn=arn)
    finding = only_error(report)
    assert (finding.check, finding.resource) == ("model", arn)
    assert "still training" in finding.problem and "TRAINING_COMPLETED" in finding.advice


def test_version_of_another_project(setup):
    other = local_setup.provision(setup.emulator.endpoint_url, bucket=setup.result["bucket"],
                                  role_name=setup.config["role_arn"].rsplit("/", 1)[1],
                                  project_name=f"other-{uuid.uuid4().hex[:6]}", version_name="v7",
                                  n_images=6, n_seed=8, n_test=8, bad_files=False)
    real = other["project_version_arn"]
    # The ARN names our project but carries the other project's version: edited or assembled by hand.
    forged = real.replace(real.split(":project/")[1].split("/")[0], "preflight-shapes", 1)
    finding = only_error(setup.check(project_version_arn=forged))
    assert (finding.check, finding.resource) == ("model", forged)
    assert "belongs to project" in finding.problem and real in finding.advice


def test_model_in_another_region(setup):
    arn = setup.config["project_version_arn"].replace("us-east-1", "eu-west-1")
    finding = only_error(setup.check(project_version_arn=arn))
    assert (finding.check, finding.resource) == ("model", arn) and "eu-west-1" in finding.problem


def test_stopped_model_with_start_model_false(setup):
    report = setup.check(start_model=False)
    finding = only_error(report)
    assert finding.check == "model" and "start_model" in finding.problem


def test_unwritable_output(setup):
    role = setup.config["role_arn"].rsplit("/", 1)[1]
    policy = local_setup.ground_truth_role_policy("*", [setup.config["pre_annotation_lambda_arn"],
                                                        setup.config["consolidation_lambda_arn"]])
    setup.client("iam").put_role_policy(RoleName=role, PolicyName="rekfeedback-ground-truth",
                                        PolicyDocument=json.dumps(policy))
    output = f"s3://no-such-bucket-{uuid.uuid4().hex[:8]}/loop/"
    finding = only_error(setup.check(output_uri=output))
    assert (finding.check, finding.resource) == ("output", output)
    assert "does not exist" in finding.problem


def test_input_prefix_that_does_not_exist(setup):
    uri = f"s3://no-such-input-{uuid.uuid4().hex[:8]}/images/"
    report = setup.check(input_uri=uri)
    assert report.has("input", uri, "error"), report.format()


def test_bad_settings_are_listed_without_calling_aws(setup):
    report = setup.check(input_uri="not-a-uri", project_version_arn="arn:nope")
    names = {f.resource for f in report.errors if f.check == "config"}
    assert names == {"input_uri", "project_version_arn"}, report.format()


def test_everything_wrong_at_once_is_reported_at_once(setup, emulator_knobs):
    emulator_knobs(training_seconds=120)
    s3, iam, rek = setup.client("s3"), setup.client("iam"), setup.client("rekognition")
    bucket, role = setup.result["bucket"], setup.config["role_arn"].rsplit("/", 1)[1]
    s3.delete_bucket_cors(Bucket=bucket)
    iam.update_assume_role_policy(RoleName=role, PolicyDocument=json.dumps({
        "Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Principal": {"Service": "lambda.amazonaws.com"},
                                                "Action": "sts:AssumeRole"}]}))
    policy = local_setup.ground_truth_role_policy(bucket, [setup.config["consolidation_lambda_arn"]])
    policy["Statement"][1]["Resource"] = f"arn:aws:s3:::{bucket}/loop/*"
    iam.put_role_policy(RoleName=role, PolicyName="rekfeedback-ground-truth", PolicyDocument=json.dumps(policy))
    slow = rek.create_project_version(
        ProjectArn=setup.result["project_arn"], VersionName=f"slow-{uuid.uuid4().hex[:6]}",
        OutputConfig={"S3Bucket": bucket, "S3KeyPrefix": "models/"})["ProjectVersionArn"]
    missing_lambda = "arn:aws:lambda:us-east-1:123456789012:function:rekfeedback-pre-annotation-missing"
    report = setup.check(project_version_arn=slow, workteam_arn=OTHER_REGION_WORKTEAM,
                         pre_annotation_lambda_arn=missing_lambda)
    expected = {("model", slow), ("cors", f"s3://{bucket}"), ("workteam", OTHER_REGION_WORKTEAM),
                ("role", setup.config["role_arn"]), ("lambda", missing_lambda)}
    found = {(f.check, f.resource) for f in report.errors}
    assert expected <= found, report.format()
    role_problems = [f.problem for f in report.errors if f.check == "role"]
    assert any("trust policy" in p for p in role_problems) and any("read the input images" in p for p in role_problems)
    text = report.format()
    for check, resource in expected:
        assert resource in text


def test_nothing_is_started_or_created(setup):
    before_keys = set(setup.keys())
    setup.emulator.reset_stats()
    report = setup.check()
    assert not report.failed
    calls = dict(setup.emulator.calls)
    mutating = [op for op in calls if op.split(".")[1].startswith(("Start", "Create", "Update", "Stop", "Delete",
                                                                   "Put"))]
    assert mutating == [], calls
    assert set(setup.keys()) == before_keys  # the output marker was removed


def test_new_images_are_counted_against_the_cumulative_manifest(setup):
    images = [f"s3://{setup.result['bucket']}/{k}" for k in setup.keys("synthetic/images/")]
    manifest = turn_config.cumulative_manifest_uri(turn_config.resolve(setup.config, environ={}), DAG_ID)
    bucket, key = manifest.removeprefix("s3://").split("/", 1)
    labelled = images[:4]
    setup.client("s3").put_object(Bucket=bucket, Key=key, Body="".join(
        json.dumps({"source-ref": ref, "bbox": {"annotations": []}}) + "\n" for ref in labelled).encode())
    report = setup.check()
    assert report.facts["candidates"] == 6 and report.facts["already_labelled"] == 4
    assert report.facts["new_images"] == 2
    assert report.findings == [], report.format()


def test_nothing_new_is_a_warning(setup):
    images = [f"s3://{setup.result['bucket']}/{k}" for k in setup.keys("synthetic/images/")]
    manifest = turn_config.cumulative_manifest_uri(turn_config.resolve(setup.config, environ={}), DAG_ID)
    bucket, key = manifest.removeprefix("s3://").split("/", 1)
    setup.client("s3").put_object(Bucket=bucket, Key=key, Body="".join(
        json.dumps({"source-ref": ref}) + "\n" for ref in images).encode())
    report = setup.check()
    assert not report.failed and report.facts["new_images"] == 0
    assert [f.check for f in report.warnings] == ["input"]
    assert "nothing new" in report.warnings[0].problem


@pytest.mark.parametrize("backend_config", [{"review_backend": "label-studio"}])
def test_label_studio_backend_skips_ground_truth_checks(setup, backend_config):
    from rekfeedback.preflight import LabelStudioTarget

    setup.client("s3").delete_bucket_cors(Bucket=setup.result["bucket"])  # only Ground Truth needs it
    report = setup.check(labelstudio=LabelStudioTarget(url="http://127.0.0.1:9", token="x", conn_id="ls"),
                         workteam_arn=OTHER_REGION_WORKTEAM, **backend_config)
    assert [(f.check, f.resource) for f in report.errors] == [("labelstudio", "http://127.0.0.1:9")], report.format()
    assert "cannot be reached" in report.errors[0].problem
