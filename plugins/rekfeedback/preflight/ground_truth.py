"""Preflight: the Ground Truth work team, role and Lambda functions."""

from __future__ import annotations

import json

from botocore.exceptions import ClientError

from rekfeedback.core import arns
from rekfeedback.core import ground_truth_jobs as gtjobs
from rekfeedback.core import iam_policy
from rekfeedback.core.paths import parse_s3_uri
from rekfeedback.preflight.checker import Checker, SAGEMAKER, SAGEMAKER_TRUST_POLICY, error_message, is_not_found, s3_arn

def check_workteam(checker: Checker) -> None:
    if not checker.ground_truth or not checker.usable("workteam_arn"):
        return
    report, arn = checker.report, checker.config["workteam_arn"]
    m = arns.match(arns.WORKTEAM, arn)
    if not m:
        report.error("workteam", arn, "not a work team ARN",
                     "use arn:aws:sagemaker:<region>:<account>:workteam/private-crowd/<team> (SageMaker console > "
                     "Ground Truth > Labeling workforces > Private)")
        return
    if m["region"] != checker.region:
        report.error("workteam", arn, f"the work team is in {m['region']}, but labeling jobs run in {checker.region}",
                     f"create a private work team in {checker.region} and use its ARN; a labeling job can only "
                     "use a team of its own region")
        return
    if m["kind"] == "public-crowd":
        report.warning("workteam", arn, "this is the Mechanical Turk public workforce: anyone may see the images",
                       "use a private team for private images")
        report.ok("workteam", arn)
        return
    if m["kind"] == "vendor-crowd":
        report.ok("workteam", arn)  # subscribed vendor teams are not described by DescribeWorkteam
        return
    try:
        team = checker.client("sagemaker").describe_workteam(WorkteamName=m["name"])["Workteam"]
    except ClientError as exc:
        if is_not_found(exc):
            report.error("workteam", arn, f"no private work team named {m['name']!r} in {checker.region}",
                         "create it (SageMaker console > Labeling workforces > Private > Create private team) or fix "
                         "workteam_arn")
        else:
            report.error("workteam", arn, f"cannot describe the work team ({error_message(exc)})",
                         "give the connection sagemaker:DescribeWorkteam, or check the ARN")
        return
    if team.get("WorkteamArn") != arn:
        report.error("workteam", arn, f"the work team {m['name']!r} here has ARN {team.get('WorkteamArn')}",
                     "use that ARN (the account in workteam_arn is not this account)")
        return
    report.ok("workteam", arn)


# ------------------------------------------------------------------------------------------- role

def _read_role_policies(iam, role_name: str) -> tuple[list, list[str]]:
    documents, unreadable = [], []
    try:
        for page in iam.get_paginator("list_role_policies").paginate(RoleName=role_name):
            for name in page.get("PolicyNames", []):
                try:
                    documents.append(iam.get_role_policy(RoleName=role_name, PolicyName=name)["PolicyDocument"])
                except ClientError:
                    unreadable.append(f"inline policy {name}")
    except ClientError:
        unreadable.append("inline policies")
    try:
        for page in iam.get_paginator("list_attached_role_policies").paginate(RoleName=role_name):
            for attached in page.get("AttachedPolicies", []):
                policy_arn = attached["PolicyArn"]
                try:
                    version = iam.get_policy(PolicyArn=policy_arn)["Policy"]["DefaultVersionId"]
                    documents.append(iam.get_policy_version(PolicyArn=policy_arn, VersionId=version)
                                     ["PolicyVersion"]["Document"])
                except ClientError:
                    unreadable.append(policy_arn)
    except ClientError:
        unreadable.append("attached policies")
    return documents, unreadable


def check_role(checker: Checker) -> None:
    if not checker.ground_truth or not checker.usable("role_arn"):
        return
    report, arn = checker.report, checker.config["role_arn"]
    m = arns.match(arns.ROLE, arn)
    if not m:
        report.error("role", arn, "not an IAM role ARN",
                     "use arn:aws:iam::<account>:role/<name> (infra output GroundTruthRoleArn)")
        return
    iam = checker.client("iam")
    try:
        role = iam.get_role(RoleName=m["name"])["Role"]
    except ClientError as exc:
        if is_not_found(exc):
            report.error("role", arn, "the role does not exist", "deploy infra/ (output GroundTruthRoleArn) or fix role_arn")
        else:
            report.warning("role", arn, f"the role cannot be read ({error_message(exc)})",
                           "give the connection iam:GetRole, or check the role by hand")
        return
    if role.get("Arn") and role["Arn"] != arn:
        report.error("role", arn, f"the role named {m['name']!r} has ARN {role['Arn']}", "use that ARN")
        return
    failed = False
    trust = role.get("AssumeRolePolicyDocument") or {}
    verdict = iam_policy.principal_allowed(trust, "sts:AssumeRole", service=SAGEMAKER)
    if verdict in (iam_policy.NOT_ALLOWED, iam_policy.DENIED):
        failed = True
        report.error("role", arn, "the role's trust policy does not let SageMaker (sagemaker.amazonaws.com) assume it, "
                                  "so Ground Truth cannot start the job",
                     "set its trust policy to " + json.dumps(SAGEMAKER_TRUST_POLICY))
    elif verdict == iam_policy.CONDITIONAL:
        report.warning("role", arn, "SageMaker may assume the role only under a condition",
                       "check that the condition holds for Ground Truth labeling jobs")
    documents, unreadable = _read_role_policies(iam, m["name"])
    checker.role_documents, checker.role_unreadable = documents, unreadable
    for action, resource, what in _role_needs(checker):
        verdict = iam_policy.evaluate(documents, action, resource)
        if verdict == iam_policy.ALLOWED:
            continue
        failed = True if verdict != iam_policy.CONDITIONAL and not unreadable else failed
        _role_finding(checker, arn, action, resource, what, verdict, unreadable)
    if not failed:
        report.ok("role", arn)


def _role_needs(checker: Checker) -> list[tuple[str, str, str]]:
    needs = []
    if checker.usable("input_uri"):
        loc = parse_s3_uri(checker.config["input_uri"])
        sample = parse_s3_uri(checker.image_uris[0]) if checker.image_uris else loc.join("image.jpg")
        needs.append(("s3:GetObject", s3_arn(sample.bucket, sample.key), "read the input images"))
    if checker.usable("output_uri"):
        turn = parse_s3_uri(checker.config["output_uri"]).join(checker.dag_id, "run", "review", "ground-truth", "x")
        needs.append(("s3:GetObject", s3_arn(turn.bucket, turn.key), "read the input manifests under the output prefix"))
        needs.append(("s3:PutObject", s3_arn(turn.bucket, turn.key), "write the labeling job's output"))
    return needs


def _role_finding(checker: Checker, arn: str, action: str, resource: str, what: str, verdict: str,
                  unreadable: list[str]) -> None:
    advice = f"add {action} on {resource.rsplit('/', 1)[0]}/* to the role's policy"
    if verdict == iam_policy.CONDITIONAL:
        checker.report.warning("role", arn, f"the role may {what} ({action}) only under a condition", advice)
    elif unreadable:
        checker.report.warning("role", arn, f"could not confirm the role may {what} ({action} on {resource}): "
                                            f"{', '.join(unreadable)} could not be read", advice + " if it lacks it")
    elif verdict == iam_policy.DENIED:
        checker.report.error("role", arn, f"the role's policy explicitly denies {action} on {resource}, so "
                                          f"Ground Truth cannot {what}", "remove the Deny statement")
    else:
        checker.report.error("role", arn, f"no policy of the role allows {action} on {resource}, so Ground Truth "
                                          f"cannot {what}", advice)


# ---------------------------------------------------------------------------------------- lambdas

def check_lambdas(checker: Checker) -> None:
    if not checker.ground_truth:
        return
    for setting in ("pre_annotation_lambda_arn", "consolidation_lambda_arn"):
        if checker.usable(setting):
            _check_lambda(checker, setting, checker.config[setting])
    if checker.model_kind == "boxes" and checker.region not in gtjobs.AWS_LAMBDA_ACCOUNTS:
        checker.report.error("lambda", f"region {checker.region}", "the model detects boxes and the built-in Ground "
                                                                 "Truth bounding-box tasks do not exist in this region",
                             f"use the label-studio backend, or a region among {', '.join(sorted(gtjobs.AWS_LAMBDA_ACCOUNTS))}")


def _check_lambda(checker: Checker, setting: str, arn: str) -> None:
    report = checker.report
    m = arns.match(arns.LAMBDA, arn)
    if not m:
        report.error("lambda", arn, f"{setting} is not a Lambda function ARN",
                     "use arn:aws:lambda:<region>:<account>:function:<name> (infra outputs PreAnnotationLambdaArn "
                     "and AnnotationConsolidationLambdaArn)")
        return
    if m["region"] != checker.region:
        report.error("lambda", arn, f"the function is in {m['region']}, the labeling job runs in {checker.region}",
                     f"deploy the function in {checker.region} (infra/) and use that ARN")
        return
    if gtjobs.AWS_LAMBDA_ACCOUNTS.get(m["region"]) == m["account"] and m["name"].startswith(("PRE-", "ACS-")):
        report.ok("lambda", arn)  # an AWS-owned Ground Truth function: always invocable by Ground Truth
        return
    lam = checker.client("lambda")
    try:
        config = lam.get_function(FunctionName=arn)["Configuration"]
    except ClientError as exc:
        if is_not_found(exc):
            report.error("lambda", arn, f"the function {m['name']} ({setting}) does not exist",
                         "deploy infra/ (functions rekfeedback-pre-annotation and rekfeedback-annotation-consolidation) "
                         f"or fix {setting}")
        else:
            report.warning("lambda", arn, f"the function cannot be read ({error_message(exc)})",
                           "give the connection lambda:GetFunction, or check the function by hand")
        return
    state = config.get("State")
    if state in ("Failed", "Inactive"):
        report.error("lambda", arn, f"the function is {state} ({config.get('StateReason', 'no reason given')})",
                     "redeploy it (infra/)")
        return
    if _lambda_invocable(checker, lam, arn, m):
        report.ok("lambda", arn)


def _lambda_invocable(checker: Checker, lam, arn: str, m) -> bool:
    role_arn = checker.config.get("role_arn") or ""
    try:
        policy = lam.get_policy(FunctionName=arn)["Policy"]
        verdict = iam_policy.principal_allowed(policy, "lambda:InvokeFunction", service=SAGEMAKER, arns=[role_arn])
    except ClientError as exc:
        if not is_not_found(exc):
            checker.report.warning("lambda", arn, f"the function's resource policy cannot be read ({error_message(exc)})",
                                   "check by hand that Ground Truth may invoke it")
            return False
        verdict = iam_policy.NOT_ALLOWED
    if verdict == iam_policy.ALLOWED:
        return True
    role_verdict = (iam_policy.evaluate(checker.role_documents, "lambda:InvokeFunction", arn)
                    if checker.role_documents is not None else None)
    if role_verdict == iam_policy.ALLOWED:
        return True
    advice = (f"allow it: `aws lambda add-permission --function-name {m['name']} --statement-id sagemaker-gt "
              f"--action lambda:InvokeFunction --principal {SAGEMAKER}`, or add lambda:InvokeFunction on {arn} "
              "to the Ground Truth role's policy")
    if verdict == iam_policy.CONDITIONAL or role_verdict == iam_policy.CONDITIONAL:
        checker.report.warning("lambda", arn, "Ground Truth may invoke the function only under a condition", advice)
    elif checker.role_documents is None or checker.role_unreadable:
        checker.report.warning("lambda", arn, "could not confirm that Ground Truth may invoke the function: its "
                                              "resource policy does not allow it and the role's policies could not "
                                              "all be read", advice)
    else:
        checker.report.error("lambda", arn, "neither the function's resource policy nor the Ground Truth role's "
                                            "policies allow lambda:InvokeFunction, so the labeling job fails", advice)
    return False
