"""Provision everything one turn needs on the local emulator, and return the turn's settings.

Used by the tests, the demo and `rekfeedback-local seed-local` (docker-compose). It creates (or reuses):
- the bucket, with the CORS rule Ground Truth's worker UI needs, and synthetic images under it
  (`rekfeedback_local.synthetic`: pool, seed and test manifests, truth);
- the Ground Truth execution role (trusts sagemaker.amazonaws.com; inline policy: read/write the
  bucket, invoke the two Lambdas) and a Lambda execution role;
- the two Lambda functions named in docs/contracts.md (the emulator runs the project's handlers
  for them), each with a resource policy letting SageMaker invoke it;
- a private work team (emulated CreateWorkteam);
- a Rekognition Custom Labels project and version 1 trained on the seed manifest.

Safe to run again: every name is fixed, and what exists is reused (the version is not retrained).
Against a real account use infra/ instead: a real private work team needs a Cognito workforce.
"""

from __future__ import annotations

import io
import json
import time
import zipfile
from typing import Any, Callable

from botocore.exceptions import ClientError

from rekfeedback.preflight import GT_CORS_RULE

PRE_ANNOTATION_FUNCTION = "rekfeedback-pre-annotation"
CONSOLIDATION_FUNCTION = "rekfeedback-annotation-consolidation"
_LAMBDA_STUB = (
    "# Placeholder body: the local emulator runs rekfeedback.lambdas.* for this function name; infra/ deploys "
    "the real code.\ndef handler(event, context):\n    raise NotImplementedError('deploy infra/')\n"
)


def _trust(service: str) -> dict:
    return {"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Principal": {"Service": service}, "Action": "sts:AssumeRole"}]}


def ground_truth_role_policy(bucket: str, lambda_arns: list[str]) -> dict:
    """What the Ground Truth role needs here: the bucket (images, manifests, output) and the two Lambdas."""
    return {"Version": "2012-10-17", "Statement": [
        {"Sid": "ListBucket", "Effect": "Allow", "Action": ["s3:ListBucket", "s3:GetBucketLocation"],
         "Resource": f"arn:aws:s3:::{bucket}"},
        {"Sid": "ReadWriteObjects", "Effect": "Allow", "Action": ["s3:GetObject", "s3:PutObject"],
         "Resource": f"arn:aws:s3:::{bucket}/*"},
        {"Sid": "InvokeTaskLambdas", "Effect": "Allow", "Action": "lambda:InvokeFunction", "Resource": lambda_arns},
    ]}


def _default_clients(endpoint_url: str | None, region: str) -> Callable[[str], Any]:
    import boto3

    cache: dict[str, Any] = {}

    def make(service: str):
        if service not in cache:
            cache[service] = boto3.client(service, endpoint_url=endpoint_url, region_name=region)
        return cache[service]
    return make


def provision(
    endpoint_url: str | None = None,
    *,
    region: str = "us-east-1",
    clients: Callable[[str], Any] | None = None,
    bucket: str = "rekfeedback-local",
    data_prefix: str = "synthetic",
    output_prefix: str = "loop",
    project_name: str = "rekfeedback-shapes",
    version_name: str = "v1",
    workteam_name: str = "rekfeedback-reviewers",
    role_name: str = "rekfeedback-ground-truth",
    lambda_role_name: str = "rekfeedback-lambda",
    kind: str = "detection",
    n_images: int = 60,
    n_seed: int = 8,
    n_test: int = 40,
    seed: int = 7,
    bad_files: bool = True,
    wait: bool = True,
    timeout: float = 600.0,
    log: Callable[[str], None] | None = None,
) -> dict:
    """Create or reuse the whole local setup; return {"config": turn settings, ...resource ARNs/URIs}.

    `clients` (service name -> boto3 client) wins over `endpoint_url`/`region`. With `wait`, returns once
    version 1 has finished training (raises RuntimeError if training failed or `timeout` passed).

    Returned keys: `config` (project_version_arn, input_uri, output_uri, workteam_arn, role_arn,
    pre_annotation_lambda_arn, consolidation_lambda_arn, review_backend: ready to use as DAG params),
    `bucket`, `project_arn`, `project_version_arn`, `version_status`, `workteam_arn`, `role_arn`,
    `lambda_role_arn`, `pre_annotation_lambda_arn`, `consolidation_lambda_arn`, `input_uri`, `output_uri`,
    `seed_manifest_uri`, `test_manifest_uri`, `truth_uri`, `labels`, `images`.
    """
    say = log or (lambda _msg: None)
    client = clients or _default_clients(endpoint_url, region)
    s3, iam, lam, sm, rek = (client(s) for s in ("s3", "iam", "lambda", "sagemaker", "rekognition"))

    _ensure_bucket(s3, bucket, region)
    s3.put_bucket_cors(Bucket=bucket, CORSConfiguration={"CORSRules": [GT_CORS_RULE]})
    say(f"bucket s3://{bucket} with Ground Truth's CORS rule")

    data = _ensure_synthetic(s3, bucket, data_prefix, n_images, n_seed, n_test, kind, seed, bad_files)
    say(f"{data['images']} synthetic images under {data['images_prefix_uri']}")

    lambda_role_arn = _ensure_role(iam, lambda_role_name, _trust("lambda.amazonaws.com"),
                                   "Execution role of the rekfeedback Ground Truth Lambdas")
    lambda_arns = [_ensure_function(lam, name, lambda_role_arn) for name in (PRE_ANNOTATION_FUNCTION, CONSOLIDATION_FUNCTION)]
    for name in (PRE_ANNOTATION_FUNCTION, CONSOLIDATION_FUNCTION):
        _ensure_invoke_permission(lam, name)
    role_arn = _ensure_role(iam, role_name, _trust("sagemaker.amazonaws.com"),
                            "Ground Truth execution role of the rekfeedback loop")
    iam.put_role_policy(RoleName=role_name, PolicyName="rekfeedback-ground-truth",
                        PolicyDocument=json.dumps(ground_truth_role_policy(bucket, lambda_arns)))
    say(f"role {role_arn}; Lambdas {', '.join(lambda_arns)}")

    workteam_arn = _ensure_workteam(sm, workteam_name, region)
    say(f"work team {workteam_arn}")

    project_arn = _ensure_project(rek, project_name)
    version_arn = _ensure_version(rek, project_arn, version_name, bucket, f"{output_prefix}/models/",
                                  data["seed_manifest_uri"], data["test_manifest_uri"])
    status = _wait_trained(rek, project_arn, version_name, timeout, say) if wait else \
        _version(rek, project_arn, version_name)["Status"]
    say(f"model version {version_arn}: {status}")

    output_uri = f"s3://{bucket}/{output_prefix}/"
    config = {
        "project_version_arn": version_arn,
        "input_uri": data["images_prefix_uri"],
        "output_uri": output_uri,
        "review_backend": "ground-truth",
        "workteam_arn": workteam_arn,
        "role_arn": role_arn,
        "pre_annotation_lambda_arn": lambda_arns[0],
        "consolidation_lambda_arn": lambda_arns[1],
    }
    return {
        "config": config,
        "bucket": bucket,
        "project_arn": project_arn,
        "project_version_arn": version_arn,
        "version_status": status,
        "workteam_arn": workteam_arn,
        "role_arn": role_arn,
        "lambda_role_arn": lambda_role_arn,
        "pre_annotation_lambda_arn": lambda_arns[0],
        "consolidation_lambda_arn": lambda_arns[1],
        "input_uri": data["images_prefix_uri"],
        "output_uri": output_uri,
        "seed_manifest_uri": data["seed_manifest_uri"],
        "test_manifest_uri": data["test_manifest_uri"],
        "truth_uri": data["truth_uri"],
        "labels": data["labels"],
        "images": data["images"],
    }


# ------------------------------------------------------------------------------------------ pieces

def _code(exc: ClientError) -> str:
    return exc.response.get("Error", {}).get("Code", "")


def _ensure_bucket(s3, bucket: str, region: str) -> None:
    try:
        s3.head_bucket(Bucket=bucket)
        return
    except ClientError as exc:
        if _code(exc) not in ("404", "NoSuchBucket", "NotFound"):
            raise
    kwargs = {} if region == "us-east-1" else {"CreateBucketConfiguration": {"LocationConstraint": region}}
    try:
        s3.create_bucket(Bucket=bucket, **kwargs)
    except ClientError as exc:
        if _code(exc) != "BucketAlreadyOwnedByYou":  # another provision() won the race
            raise


def _ensure_synthetic(s3, bucket: str, prefix: str, n: int, n_seed: int, n_test: int, kind: str, seed: int,
                      bad_files: bool) -> dict:
    """Generate the synthetic data once; a rerun with the same arguments reuses it (it would be identical)."""
    from rekfeedback_local import synthetic

    base = f"{prefix.strip('/')}/" if prefix.strip("/") else ""
    stamp_key = f"{base}manifests/provisioned.json"
    wanted = {"n": n, "n_seed": n_seed, "n_test": n_test, "kind": kind, "seed": seed, "bad_files": bad_files}
    try:
        stamp = json.loads(s3.get_object(Bucket=bucket, Key=stamp_key)["Body"].read())
        if stamp.get("arguments") == wanted:
            return stamp["summary"]
    except ClientError as exc:
        if _code(exc) not in ("NoSuchKey", "404"):
            raise
    summary = synthetic.generate(s3, bucket, prefix, n=n, seed=seed, n_seed=n_seed, n_test=n_test, kind=kind,
                                 bad_files=bad_files, create_bucket=False)
    summary.pop("image_keys", None)
    # Written last: its presence means every image and manifest above is in place.
    s3.put_object(Bucket=bucket, Key=stamp_key, Body=json.dumps({"arguments": wanted, "summary": summary}).encode())
    return summary


def _ensure_role(iam, name: str, trust: dict, description: str) -> str:
    try:
        role = iam.get_role(RoleName=name)["Role"]
        iam.update_assume_role_policy(RoleName=name, PolicyDocument=json.dumps(trust))
        return role["Arn"]
    except ClientError as exc:
        if _code(exc) != "NoSuchEntity":
            raise
    try:
        return iam.create_role(RoleName=name, AssumeRolePolicyDocument=json.dumps(trust),
                               Description=description)["Role"]["Arn"]
    except ClientError as exc:
        if _code(exc) != "EntityAlreadyExists":
            raise
        return iam.get_role(RoleName=name)["Role"]["Arn"]


def lambda_zip() -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("handler.py", _LAMBDA_STUB)
    return buf.getvalue()


def _ensure_function(lam, name: str, role_arn: str) -> str:
    try:
        return lam.get_function(FunctionName=name)["Configuration"]["FunctionArn"]
    except ClientError as exc:
        if _code(exc) != "ResourceNotFoundException":
            raise
    try:
        return lam.create_function(FunctionName=name, Runtime="python3.11", Role=role_arn, Handler="handler.handler",
                                   Code={"ZipFile": lambda_zip()}, Timeout=60,
                                   Description="rekfeedback Ground Truth task Lambda")["FunctionArn"]
    except ClientError as exc:
        if _code(exc) != "ResourceConflictException":
            raise
        return lam.get_function(FunctionName=name)["Configuration"]["FunctionArn"]


def _ensure_invoke_permission(lam, name: str) -> None:
    try:
        lam.add_permission(FunctionName=name, StatementId="sagemaker-ground-truth", Action="lambda:InvokeFunction",
                           Principal="sagemaker.amazonaws.com")
    except ClientError as exc:
        if _code(exc) != "ResourceConflictException":  # the statement is already there
            raise


def _ensure_workteam(sm, name: str, region: str) -> str:
    try:
        return sm.describe_workteam(WorkteamName=name)["Workteam"]["WorkteamArn"]
    except ClientError:
        pass
    members = [{"CognitoMemberDefinition": {"UserPool": f"{region}_rekfeedback", "UserGroup": "reviewers",
                                            "ClientId": "rekfeedback-local"}}]
    try:
        return sm.create_workteam(WorkteamName=name, Description="rekfeedback local reviewers",
                                  MemberDefinitions=members)["WorkteamArn"]
    except ClientError as exc:
        if _code(exc) != "ResourceInUse":
            raise
        return sm.describe_workteam(WorkteamName=name)["Workteam"]["WorkteamArn"]


def _ensure_project(rek, name: str) -> str:
    found = rek.describe_projects(ProjectNames=[name]).get("ProjectDescriptions", [])
    if found:
        return found[0]["ProjectArn"]
    try:
        return rek.create_project(ProjectName=name)["ProjectArn"]
    except ClientError as exc:
        if _code(exc) != "ResourceInUseException":
            raise
        return rek.describe_projects(ProjectNames=[name])["ProjectDescriptions"][0]["ProjectArn"]


def _version(rek, project_arn: str, name: str) -> dict | None:
    found = rek.describe_project_versions(ProjectArn=project_arn, VersionNames=[name]).get("ProjectVersionDescriptions")
    return found[0] if found else None


def _s3_object(uri: str) -> dict:
    bucket, _, key = uri.removeprefix("s3://").partition("/")
    return {"Bucket": bucket, "Name": key}


def _ensure_datasets(rek, project_arn: str, train_uri: str, test_uri: str) -> None:
    """TRAIN from the seed manifest and a fixed TEST set, as a team would start a project.

    Later versions train on TRAIN plus each turn's answers and are evaluated on the same TEST
    set, so F1 before and after a turn compare like with like.
    """
    project = rek.describe_projects(ProjectNames=[project_arn.split("/")[1]])["ProjectDescriptions"][0]
    have = {d["DatasetType"] for d in project.get("Datasets", [])}
    for kind, uri in (("TRAIN", train_uri), ("TEST", test_uri)):
        if kind not in have:
            rek.create_dataset(ProjectArn=project_arn, DatasetType=kind,
                               DatasetSource={"GroundTruthManifest": {"S3Object": _s3_object(uri)}})
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        project = rek.describe_projects(ProjectNames=[project_arn.split("/")[1]])["ProjectDescriptions"][0]
        statuses = {d["DatasetType"]: d.get("Status") for d in project.get("Datasets", [])}
        failed = [k for k, v in statuses.items() if v and v.endswith("FAILED")]
        if failed:
            raise RuntimeError(f"creating the {failed} dataset(s) of {project_arn} failed")
        if all(v and v.endswith("COMPLETE") for v in statuses.values()) and len(statuses) == 2:
            return
        time.sleep(0.2)
    raise RuntimeError(f"the datasets of {project_arn} were not ready after 120 s")


def _ensure_version(rek, project_arn: str, name: str, bucket: str, key_prefix: str, train_uri: str,
                    test_uri: str) -> str:
    existing = _version(rek, project_arn, name)
    if existing and existing["Status"] != "TRAINING_FAILED":
        return existing["ProjectVersionArn"]
    if existing:
        raise RuntimeError(f"model version {existing['ProjectVersionArn']} failed training "
                           f"({existing.get('StatusMessage')}); pass another version_name")
    _ensure_datasets(rek, project_arn, train_uri, test_uri)
    try:
        return rek.create_project_version(
            ProjectArn=project_arn, VersionName=name,
            OutputConfig={"S3Bucket": bucket, "S3KeyPrefix": key_prefix},
        )["ProjectVersionArn"]
    except ClientError as exc:
        if _code(exc) != "ResourceInUseException":
            raise
        return _version(rek, project_arn, name)["ProjectVersionArn"]


def _wait_trained(rek, project_arn: str, name: str, timeout: float, say: Callable[[str], None]) -> str:
    deadline = time.monotonic() + timeout
    delay = 0.2
    while True:
        version = _version(rek, project_arn, name)
        status = version["Status"]
        if status == "TRAINING_FAILED":
            raise RuntimeError(f"model version {version['ProjectVersionArn']} failed training: "
                               f"{version.get('StatusMessage')}")
        if status != "TRAINING_IN_PROGRESS":
            return status
        if time.monotonic() > deadline:
            raise RuntimeError(f"model version {version['ProjectVersionArn']} still training after {timeout:.0f} s")
        time.sleep(delay)
        delay = min(delay * 1.5, 5.0)
