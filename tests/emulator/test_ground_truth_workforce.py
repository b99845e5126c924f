"""The simulated Ground Truth workforce through boto3 over HTTP: custom jobs with their Lambda events,
built-in box jobs with AWS's output format, the S3 output layout, counters and failure injection."""

from __future__ import annotations

import io
import json
import time
import uuid

import boto3
import pytest
from PIL import Image

from rekfeedback_local.emulator.lambda_registry import REGISTRY
from tests.fixtures.waits import LABELING_JOB_ENDED, labeling_job_reaches

REGION = "us-east-1"
ACCOUNT = "123456789012"
AWS_LAMBDA = f"arn:aws:lambda:{REGION}:432418664414:function:"
OWN_LAMBDA = f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:"
LABELS = ["circle", "square", "star"]


def truth_of(i: int) -> dict:
    label = LABELS[i % 2]
    return {"labels": [label], "boxes": [{"label": label, "left": 8 + i, "top": 10, "width": 30, "height": 24}]}


@pytest.fixture(scope="module")
def aws(emulator):
    session = boto3.session.Session(region_name=REGION)
    return (session.client("sagemaker", endpoint_url=emulator.endpoint_url),
            session.client("s3", endpoint_url=emulator.endpoint_url))


@pytest.fixture(scope="module")
def bucket(aws):
    _, s3 = aws
    name = f"gt-work-{uuid.uuid4().hex[:8]}"
    s3.create_bucket(Bucket=name)
    for i in range(6):
        buf = io.BytesIO()
        Image.new("RGB", (64, 48), (200, 200, 200)).save(buf, "PNG")
        s3.put_object(Bucket=name, Key=f"img/{i}.png", Body=buf.getvalue(),
                      Metadata={"truth": json.dumps(truth_of(i))})
    s3.put_object(Bucket=name, Key="labels.json", Body=json.dumps(
        {"document-version": "2018-11-28", "labels": [{"label": x} for x in LABELS]}).encode())
    s3.put_object(Bucket=name, Key="template.html", Body=b"<crowd-form></crowd-form>")
    # Custom verification: two data objects, each a batch of three images predicted wrongly or rightly.
    batches = [{"source": f"batch-{b}", "images": [
        {"source-ref": f"s3://{name}/img/{i}.png", "width": 64, "height": 48,
         "predicted": [{"name": "circle", "confidence": 90.0}]} for i in range(3 * b, 3 * b + 3)]} for b in range(2)]
    put_lines(s3, name, "custom.manifest", batches)
    # Box review: predictions in Ground Truth's object-detection format, slightly off the truth.
    boxes = []
    for i in range(6):
        t = truth_of(i)["boxes"][0]
        boxes.append({"source-ref": f"s3://{name}/img/{i}.png",
                      "prediction": {"image_size": [{"width": 64, "height": 48, "depth": 3}],
                                     "annotations": [{"class_id": 0, "left": t["left"] + 2, "top": 10,
                                                      "width": 30, "height": 24}]},
                      "prediction-metadata": {"objects": [{"confidence": 0.8}], "class-map": {"0": "circle"},
                                              "type": "groundtruth/object-detection", "human-annotated": "no",
                                              "creation-date": "2024-01-01T00:00:00", "job-name": "rekognition"}})
    put_lines(s3, name, "boxes.manifest", boxes)
    put_lines(s3, name, "plain.manifest", [{"source-ref": f"s3://{name}/img/{i}.png"} for i in range(4)])
    return name


@pytest.fixture
def knobs(emulator_knobs):
    # The config, restored after the test.
    return emulator_knobs(labeling_seconds=0.5, workforce_policy="oracle", error_rate=0.0, unlabelled_share=0.0,
                          workers_per_object=None, fail_labeling_jobs=False)


@pytest.fixture
def recorded():
    """Local pre-annotation and consolidation handlers that record their events (docs/contracts.md shapes)."""
    events = {"pre": [], "post": [], "payloads": []}
    suffix = uuid.uuid4().hex[:6]
    pre_name, post_name = f"test-pre-{suffix}", f"test-post-{suffix}"

    def pre(event, context):
        events["pre"].append(event)
        images = event["dataObject"]["images"]
        return {"taskInput": {"batch": event["dataObject"]["source"], "images": images, "labels": LABELS},
                "isHumanAnnotationRequired": "true"}

    def post(event, context):
        events["post"].append(event)
        s3 = boto3.client("s3")  # as a deployed Lambda would, through AWS_ENDPOINT_URL
        bucket, key = event["payload"]["s3Uri"][5:].split("/", 1)
        payload = json.loads(s3.get_object(Bucket=bucket, Key=key)["Body"].read())
        events["payloads"].append(payload)
        out = []
        for obj in payload:
            answers = [json.loads(json.loads(a["annotationData"]["content"])["answer"]) for a in obj["annotations"]]
            first = answers[0]["images"]
            value = {"images": [{"source-ref": img["source-ref"],
                                 "labels": sorted([v["name"] for v in img["verdicts"] if v["present"]] + img["added"])}
                                for img in first], "workers": len(answers)}
            out.append({"datasetObjectId": obj["datasetObjectId"],
                        "consolidatedAnnotation": {"content": {event["labelAttributeName"]: value}}})
        return out

    REGISTRY.register(pre_name, pre)
    REGISTRY.register(post_name, post)
    events["arns"] = (OWN_LAMBDA + pre_name, OWN_LAMBDA + post_name)
    yield events
    REGISTRY.unregister(pre_name)
    REGISTRY.unregister(post_name)


def put_lines(s3, bucket: str, key: str, lines: list[dict]) -> None:
    s3.put_object(Bucket=bucket, Key=key, Body="\n".join(json.dumps(x) for x in lines).encode())


def job_request(bucket: str, name: str, manifest: str, attribute: str, pre: str, post: str | None,
                workers: int = 1) -> dict:
    task = {"WorkteamArn": f"arn:aws:sagemaker:{REGION}:{ACCOUNT}:workteam/private-crowd/reviewers",
            "UiConfig": {"UiTemplateS3Uri": f"s3://{bucket}/template.html"},
            "PreHumanTaskLambdaArn": pre, "TaskTitle": "Review", "TaskDescription": "Review the model",
            "NumberOfHumanWorkersPerDataObject": workers, "TaskTimeLimitInSeconds": 300}
    if post:
        task["AnnotationConsolidationConfig"] = {"AnnotationConsolidationLambdaArn": post}
    return {"LabelingJobName": name, "LabelAttributeName": attribute,
            "InputConfig": {"DataSource": {"S3DataSource": {"ManifestS3Uri": f"s3://{bucket}/{manifest}"}}},
            "OutputConfig": {"S3OutputPath": f"s3://{bucket}/out"},
            "RoleArn": f"arn:aws:iam::{ACCOUNT}:role/GroundTruthExecution",
            "LabelCategoryConfigS3Uri": f"s3://{bucket}/labels.json", "HumanTaskConfig": task}


def builtin(task: str) -> tuple[str, str]:
    return f"{AWS_LAMBDA}PRE-{task}", f"{AWS_LAMBDA}ACS-{task}"


def run(aws, req: dict, timeout: float = 20.0) -> dict:
    sm, _ = aws
    sm.create_labeling_job(**req)
    return labeling_job_reaches(sm, req["LabelingJobName"], timeout=timeout)


def read_lines(aws, uri: str) -> list[dict]:
    _, s3 = aws
    bucket, key = uri[5:].split("/", 1)
    return [json.loads(x) for x in s3.get_object(Bucket=bucket, Key=key)["Body"].read().decode().splitlines()]


def keys(aws, bucket: str, prefix: str) -> list[str]:
    _, s3 = aws
    return sorted(o["Key"][len(prefix):] for o in s3.list_objects_v2(Bucket=bucket, Prefix=prefix).get("Contents", []))


def test_custom_job_calls_the_lambdas_with_lambda_events_and_writes_the_layout(aws, bucket, knobs, recorded):
    name = f"custom-{uuid.uuid4().hex[:8]}"
    pre, post = recorded["arns"]
    job = run(aws, job_request(bucket, name, "custom.manifest", "review", pre, post, workers=2))
    assert job["LabelingJobStatus"] == "Completed", job.get("FailureReason")
    assert job["LabelCounters"] == {"TotalLabeled": 2, "HumanLabeled": 2, "MachineLabeled": 0,
                                    "FailedNonRetryableError": 0, "Unlabeled": 0}
    arn = f"arn:aws:sagemaker:{REGION}:{ACCOUNT}:labeling-job/{name}"
    manifest = read_lines(aws, f"s3://{bucket}/custom.manifest")
    assert recorded["pre"] == [{"version": "2018-10-16", "labelingJobArn": arn, "dataObject": line}
                               for line in manifest]
    prefix = f"s3://{bucket}/out/{name}"
    for event in recorded["post"]:
        assert event["payload"]["s3Uri"].startswith(
            f"{prefix}/annotations/consolidated-annotation/consolidation-request/iteration-1/")
        assert {k: v for k, v in event.items() if k != "payload"} == {
            "version": "2018-10-16", "labelingJobArn": arn, "labelCategories": LABELS,
            "labelAttributeName": "review", "roleArn": f"arn:aws:iam::{ACCOUNT}:role/GroundTruthExecution",
            "outputConfig": f"{prefix}/annotations"}
    objects = [o for payload in recorded["payloads"] for o in payload]
    assert [o["datasetObjectId"] for o in objects] == ["0", "1"]
    assert objects[0]["dataObject"] == {"content": "batch-0"}
    assert len(objects[0]["annotations"]) == 2
    worker_answer = json.loads(json.loads(objects[0]["annotations"][0]["annotationData"]["content"])["answer"])
    # Oracle: images 0 and 2 are circles (confirmed), image 1 a square (circle rejected, square added).
    assert worker_answer["images"][1] == {"source-ref": f"s3://{bucket}/img/1.png",
                                          "verdicts": [{"name": "circle", "present": False}], "added": ["square"]}
    out = read_lines(aws, job["LabelingJobOutput"]["OutputDatasetS3Uri"])
    assert [line["source"] for line in out] == ["batch-0", "batch-1"]
    assert out[0]["images"] == manifest[0]["images"]  # input keys are copied through
    assert [i["labels"] for i in out[0]["review"]["images"]] == [["circle"], ["square"], ["circle"]]
    meta = out[0]["review-metadata"]
    assert meta["type"] == "groundtruth/custom" and meta["job-name"] == name and meta["human-annotated"] == "yes"
    assert time.strptime(meta["creation-date"][:19], "%Y-%m-%dT%H:%M:%S")
    files = keys(aws, bucket, f"out/{name}/")
    assert "manifests/output/output.manifest" in files
    assert "manifests/intermediate/1/output.manifest" in files
    assert any(f.startswith("annotations/consolidated-annotation/consolidation-response/iteration-1/") for f in files)
    responses = [f for f in files if f.startswith("annotations/worker-response/iteration-1/")]
    assert sorted({f.split("/")[3] for f in responses}) == ["0", "1"]
    worker_file = read_json(aws, bucket, f"out/{name}/{responses[0]}")
    answer = worker_file["answers"][0]
    assert set(answer) == {"acceptanceTime", "answerContent", "submissionTime", "timeSpentInSeconds", "workerId",
                           "workerMetadata"}
    assert answer["workerId"].startswith(f"private.{REGION}.")


def read_json(aws, bucket: str, key: str):
    _, s3 = aws
    return json.loads(s3.get_object(Bucket=bucket, Key=key)["Body"].read())


def test_custom_job_with_the_projects_own_lambdas(aws, bucket, knobs):
    import rekfeedback.lambdas.consolidation  # noqa: F401 - the package's own handler must import, never skip
    name = f"own-{uuid.uuid4().hex[:8]}"
    job = run(aws, job_request(bucket, name, "custom.manifest", "review", OWN_LAMBDA + "rekfeedback-pre-annotation",
                               OWN_LAMBDA + "rekfeedback-annotation-consolidation", workers=3))
    assert job["LabelingJobStatus"] == "Completed", job.get("FailureReason")
    out = read_lines(aws, job["LabelingJobOutput"]["OutputDatasetS3Uri"])
    finals = {i["source-ref"]: i["labels"] for line in out for i in line["review"]["images"]}
    assert finals == {f"s3://{bucket}/img/{i}.png": truth_of(i)["labels"] for i in range(6)}


def test_adjustment_job_writes_aws_object_detection_output(aws, bucket, knobs):
    name = f"adjust-{uuid.uuid4().hex[:8]}"
    job = run(aws, job_request(bucket, name, "boxes.manifest", "bbox-reviewed", *builtin("AdjustmentBoundingBox")))
    assert job["LabelingJobStatus"] == "Completed", job.get("FailureReason")
    assert job["LabelCounters"]["HumanLabeled"] == 6
    out = read_lines(aws, job["LabelingJobOutput"]["OutputDatasetS3Uri"])
    for i, line in enumerate(out):
        truth = truth_of(i)["boxes"][0]
        assert line["prediction"]["annotations"][0]["left"] == truth["left"] + 2  # prior attribute untouched
        assert line["bbox-reviewed"] == {
            "image_size": [{"width": 64, "height": 48, "depth": 3}],
            "annotations": [{"class_id": LABELS.index(truth["label"]), "left": truth["left"], "top": 10,
                             "width": 30, "height": 24}]}
        meta = line["bbox-reviewed-metadata"]
        assert {k: meta[k] for k in ("objects", "class-map", "type", "human-annotated", "job-name",
                                     "adjustment-status")} == {
            "objects": [{"confidence": 0.0}], "class-map": {str(LABELS.index(truth["label"])): truth["label"]},
            "type": "groundtruth/object-detection", "human-annotated": "yes", "job-name": f"labeling-job/{name}",
            "adjustment-status": "adjusted"}
        assert meta["creation-date"]


def test_accept_all_leaves_boxes_unadjusted_and_verification_says_good(aws, bucket, knobs):
    knobs.workforce_policy = "accept-all"
    name = f"accept-{uuid.uuid4().hex[:8]}"
    job = run(aws, job_request(bucket, name, "boxes.manifest", "bbox-reviewed", *builtin("AdjustmentBoundingBox")))
    out = read_lines(aws, job["LabelingJobOutput"]["OutputDatasetS3Uri"])
    assert all(line["bbox-reviewed"]["annotations"] == line["prediction"]["annotations"] for line in out)
    assert {line["bbox-reviewed-metadata"]["adjustment-status"] for line in out} == {"unadjusted"}
    job = run(aws, job_request(bucket, f"verify-{uuid.uuid4().hex[:8]}", "boxes.manifest", "verified",
                               *builtin("VerificationBoundingBox"), workers=3))
    out = read_lines(aws, job["LabelingJobOutput"]["OutputDatasetS3Uri"])
    assert {(line["verified"], line["verified-metadata"]["class-name"], line["verified-metadata"]["confidence"],
             line["verified-metadata"]["type"]) for line in out} == {("0", "good", 1.0, "groundtruth/label-verification")}


def test_reject_all_verification_says_bad_and_labelling_from_scratch_finds_nothing(aws, bucket, knobs):
    knobs.workforce_policy = "reject-all"
    job = run(aws, job_request(bucket, f"reject-{uuid.uuid4().hex[:8]}", "boxes.manifest", "verified",
                               *builtin("VerificationBoundingBox")))
    out = read_lines(aws, job["LabelingJobOutput"]["OutputDatasetS3Uri"])
    assert {line["verified-metadata"]["class-name"] for line in out} == {"bad"}
    assert all(line["verified-metadata"]["worker-feedback"] for line in out)


def test_labelling_from_scratch_boxes_and_classes(aws, bucket, knobs):
    job = run(aws, job_request(bucket, f"draw-{uuid.uuid4().hex[:8]}", "plain.manifest", "bbox",
                               *builtin("BoundingBox")))
    out = read_lines(aws, job["LabelingJobOutput"]["OutputDatasetS3Uri"])
    for i, line in enumerate(out):
        # No width/height in the line: the size comes from the image itself.
        assert line["bbox"]["image_size"] == [{"width": 64, "height": 48, "depth": 3}]
        assert line["bbox-metadata"]["class-map"] == {str(LABELS.index(truth_of(i)["labels"][0])): truth_of(i)["labels"][0]}
        assert "adjustment-status" not in line["bbox-metadata"]
    job = run(aws, job_request(bucket, f"classify-{uuid.uuid4().hex[:8]}", "plain.manifest", "shape",
                               *builtin("ImageMultiClass"), workers=3))
    out = read_lines(aws, job["LabelingJobOutput"]["OutputDatasetS3Uri"])
    for i, line in enumerate(out):
        label = truth_of(i)["labels"][0]
        assert line["shape"] == LABELS.index(label)
        assert {k: line["shape-metadata"][k] for k in ("class-name", "confidence", "type", "human-annotated")} == {
            "class-name": label, "confidence": 1.0, "type": "groundtruth/image-classification", "human-annotated": "yes"}
    job = run(aws, job_request(bucket, f"multi-{uuid.uuid4().hex[:8]}", "plain.manifest", "shapes",
                               *builtin("ImageMultiClassMultiLabel")))
    out = read_lines(aws, job["LabelingJobOutput"]["OutputDatasetS3Uri"])
    assert out[1]["shapes"] == [1] and out[1]["shapes-metadata"]["class-map"] == {"1": "square"}
    assert out[1]["shapes-metadata"]["type"] == "groundtruth/image-classification-multilabel"


def test_counters_advance_while_the_job_runs(aws, bucket, knobs, emulator):
    # Ten emulated minutes of work (85 emulated seconds per object); the test moves the emulator's clock 5 s
    # per look, so every step spans many looks however slowly the machine runs: no timing assumption.
    knobs.labeling_seconds = 600.0
    sm, _ = aws
    name = f"progress-{uuid.uuid4().hex[:8]}"
    sm.create_labeling_job(**job_request(bucket, name, "boxes.manifest", "bbox-reviewed",
                                         *builtin("AdjustmentBoundingBox")))
    seen = []
    for _ in range(5000):
        job = sm.describe_labeling_job(LabelingJobName=name)
        seen.append((job["LabelingJobStatus"], job["LabelCounters"]["TotalLabeled"], job["LabelCounters"]["Unlabeled"]))
        if job["LabelingJobStatus"] in LABELING_JOB_ENDED:
            break
        emulator.advance_clock(5.0)
    statuses = [s for s, _, _ in seen]
    assert statuses[0] == "Initializing" and "InProgress" in statuses and statuses[-1] == "Completed"
    assert any(s == "InProgress" and 0 < done < 6 and left > 0 for s, done, left in seen)
    assert seen[-1][1:] == (6, 0)


def test_fail_labeling_jobs_knob(aws, bucket, knobs):
    knobs.fail_labeling_jobs = True
    job = run(aws, job_request(bucket, f"fail-{uuid.uuid4().hex[:8]}", "boxes.manifest", "bbox-reviewed",
                               *builtin("AdjustmentBoundingBox")))
    assert job["LabelingJobStatus"] == "Failed"
    assert "fail_labeling_jobs" in job["FailureReason"]
    assert "LabelingJobOutput" not in job


def test_unlabelled_share_fails_some_objects_visibly(aws, bucket, knobs):
    knobs.unlabelled_share = 0.5
    job = run(aws, job_request(bucket, "unlabelled-share-fixed-name-1", "boxes.manifest", "bbox-reviewed",
                               *builtin("AdjustmentBoundingBox")))
    counters = job["LabelCounters"]
    assert job["LabelingJobStatus"] == "Completed"
    assert counters["FailedNonRetryableError"] > 0 and counters["TotalLabeled"] > 0
    assert counters["FailedNonRetryableError"] + counters["TotalLabeled"] == 6
    out = read_lines(aws, job["LabelingJobOutput"]["OutputDatasetS3Uri"])
    failed = [line for line in out if "bbox-reviewed" not in line]
    assert len(failed) == counters["FailedNonRetryableError"]
    assert all("expired" in line["bbox-reviewed-metadata"]["failure-reason"] for line in failed)


def test_missing_manifest_and_failing_lambda_end_the_job_with_a_reason(aws, bucket, knobs):
    job = run(aws, job_request(bucket, f"nomanifest-{uuid.uuid4().hex[:8]}", "absent.manifest", "bbox-reviewed",
                               *builtin("AdjustmentBoundingBox")))
    assert job["LabelingJobStatus"] == "Failed"
    assert f"s3://{bucket}/absent.manifest" in job["FailureReason"]

    def broken(event, context):
        raise RuntimeError("template input is missing")

    REGISTRY.register("test-broken-pre", broken)
    try:
        job = run(aws, job_request(bucket, f"broken-{uuid.uuid4().hex[:8]}", "custom.manifest", "review",
                                   OWN_LAMBDA + "test-broken-pre", OWN_LAMBDA + "test-broken-pre"))
    finally:
        REGISTRY.unregister("test-broken-pre")
    assert job["LabelingJobStatus"] == "Failed"
    assert "template input is missing" in job["FailureReason"]
    assert job["LabelCounters"]["FailedNonRetryableError"] == 2


def test_unregistered_lambda_is_named_in_the_failure(aws, bucket, knobs):
    job = run(aws, job_request(bucket, f"unknown-{uuid.uuid4().hex[:8]}", "custom.manifest", "review",
                               OWN_LAMBDA + "nobody-registered-this", OWN_LAMBDA + "nor-this"))
    assert job["LabelingJobStatus"] == "Failed"
    assert "nobody-registered-this" in job["FailureReason"]


def test_workers_per_object_and_error_rate_knobs(aws, bucket, knobs):
    knobs.workers_per_object = 3
    knobs.error_rate = 1.0
    name = f"sloppy-{uuid.uuid4().hex[:8]}"
    job = run(aws, job_request(bucket, name, "boxes.manifest", "bbox-reviewed", *builtin("AdjustmentBoundingBox")))
    assert job["LabelingJobStatus"] == "Completed", job.get("FailureReason")
    responses = [k for k in keys(aws, bucket, f"out/{name}/annotations/worker-response/")]
    assert len(read_json(aws, bucket, f"out/{name}/annotations/worker-response/{responses[0]}")["answers"]) == 3
    out = read_lines(aws, job["LabelingJobOutput"]["OutputDatasetS3Uri"])
    right = [{"class_id": LABELS.index(truth_of(i)["labels"][0]), **{k: v for k, v in truth_of(i)["boxes"][0].items()
                                                                     if k != "label"}} for i in range(6)]
    assert all(line["bbox-reviewed"]["annotations"] != [r] for line, r in zip(out, right))
