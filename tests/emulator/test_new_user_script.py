"""Done-when check of issue 2: a new user's plain boto3 script against the emulator's console script.

The parent test starts `rekfeedback-local emulator` in a subprocess and writes synthetic images and manifests
to a local folder (using this package). The script itself imports nothing but boto3 and the standard
library, as a user trying the emulator would write it.
"""

from __future__ import annotations

import json
import os
import pathlib
import random
import signal
import subprocess
import sys
import textwrap

import pytest

from rekfeedback_local import synthetic

BUCKET = "new-user-bucket"

USER_SCRIPT = textwrap.dedent('''
    import json, pathlib, sys, time
    from concurrent.futures import ThreadPoolExecutor

    import boto3
    from botocore.config import Config
    from botocore.exceptions import ClientError

    data, bucket = pathlib.Path(sys.argv[1]), sys.argv[2]
    s3 = boto3.client("s3")
    rek = boto3.client("rekognition", config=Config(retries={"total_max_attempts": 1}))
    report = {}

    # 1. Upload the generated images and manifests.
    s3.create_bucket(Bucket=bucket)
    for path in sorted(data.rglob("*")):
        if path.is_file():
            s3.upload_file(str(path), bucket, path.relative_to(data).as_posix())

    # 2. A project and its datasets from the seed and test manifests.
    project = rek.create_project(ProjectName="new-user-shapes")["ProjectArn"]
    for kind, key in (("TRAIN", "manifests/seed.manifest"), ("TEST", "manifests/test.manifest")):
        arn = rek.create_dataset(ProjectArn=project, DatasetType=kind, DatasetSource={
            "GroundTruthManifest": {"S3Object": {"Bucket": bucket, "Name": key}}})["DatasetArn"]
        while (status := rek.describe_dataset(DatasetArn=arn)["DatasetDescription"]["Status"]) == "CREATE_IN_PROGRESS":
            time.sleep(0.1)
        report[f"dataset_{kind}"] = status

    # 3. Train and wait with boto3's own waiter.
    version = rek.create_project_version(ProjectArn=project, VersionName="v1",
                                         OutputConfig={"S3Bucket": bucket, "S3KeyPrefix": "models"})["ProjectVersionArn"]
    rek.get_waiter("project_version_training_completed").wait(
        ProjectArn=project, VersionNames=["v1"], WaiterConfig={"Delay": 1, "MaxAttempts": 60})
    desc = rek.describe_project_versions(ProjectArn=project, VersionNames=["v1"])["ProjectVersionDescriptions"][0]
    report["trained"] = desc["Status"]
    report["f1"] = desc["EvaluationResult"]["F1Score"]

    # 4. Start and wait.
    rek.start_project_version(ProjectVersionArn=version, MinInferenceUnits=1)
    rek.get_waiter("project_version_running").wait(
        ProjectArn=project, VersionNames=["v1"], WaiterConfig={"Delay": 1, "MaxAttempts": 60})

    # 5. Detect labels on the unlabelled images and compare with the truth we generated.
    rows = [json.loads(line) for line in (data / "manifests" / "truth.jsonl").read_text().splitlines()]
    truth = {row["source-ref"]: row["labels"] for row in rows}
    sizes = {row["source-ref"]: (row["width"], row["height"]) for row in rows}
    predictions = {}  # reviewed by people in step 7
    right = 0
    for ref, labels in truth.items():
        key = ref.split("/", 3)[3]
        for attempt in range(20):
            try:
                found = rek.detect_custom_labels(ProjectVersionArn=version, MinConfidence=0,
                                                 Image={"S3Object": {"Bucket": bucket, "Name": key}})["CustomLabels"]
                break
            except ClientError as exc:
                if exc.response["Error"]["Code"] != "ProvisionedThroughputExceededException":
                    raise
                time.sleep(0.3)
        predictions[ref] = found
        right += bool(found) and found[0]["Name"] in labels
    report["top_label_accuracy"] = right / len(truth)

    # 6. Over capacity: a burst of calls gets throttled.
    def call(_):
        try:
            rek.detect_custom_labels(ProjectVersionArn=version,
                                     Image={"S3Object": {"Bucket": bucket, "Name": next(iter(truth)).split("/", 3)[3]}})
            return "ok"
        except ClientError as exc:
            return exc.response["Error"]["Code"]
    time.sleep(1.1)
    with ThreadPoolExecutor(8) as pool:
        burst = list(pool.map(call, range(30)))
    report["burst_ok"] = burst.count("ok")
    report["burst_throttled"] = burst.count("ProvisionedThroughputExceededException")

    # 7. Labeling jobs: people review the model's answers in Ground Truth.
    # >>> GROUND TRUTH PART (added by the Ground Truth emulator engineer): create a custom labeling job and a
    # >>> bounding-box adjustment job, wait for both to reach Completed, read their output manifests.
    sm = boto3.client("sagemaker")
    region = sm.meta.region_name
    account = boto3.client("sts").get_caller_identity()["Account"]
    own_lambda = f"arn:aws:lambda:{region}:{account}:function:"
    aws_lambda = "arn:aws:lambda:us-east-1:432418664414:function:"  # AWS's built-in PRE-/ACS- functions, us-east-1
    label_set = sorted({name for labels in truth.values() for name in labels}
                       | {p["Name"] for found in predictions.values() for p in found})
    reviewed = sorted(predictions)[:6]
    shown = {ref: [p for p in predictions[ref] if p["Confidence"] >= 50] or predictions[ref][:1] for ref in reviewed}

    def put(key, body):
        s3.put_object(Bucket=bucket, Key=key, Body=body.encode())
        return f"s3://{bucket}/{key}"

    def put_lines(key, lines):
        return put(key, "".join(json.dumps(line) + "\\n" for line in lines))

    labels_uri = put("gt/labels.json", json.dumps(
        {"document-version": "2018-11-28", "labels": [{"label": name} for name in label_set]}))
    # The form posts the worker's verdicts as one JSON field `answer` (filled by the page's script, left out here).
    verify_template = put("gt/verify.liquid.html", """<script src="https://assets.crowd.aws/crowd-html-elements.js"></script>
    <crowd-form>
      {% for image in task.input.images %}
        <img src="{{ image.source-ref | grant_read_access }}" style="max-width: 320px">
        {% for p in image.predicted %}<crowd-checkbox checked>{{ p.name }}</crowd-checkbox>{% endfor %}
      {% endfor %}
      <input type="hidden" name="answer">
    </crowd-form>""")
    boxes_template = put("gt/adjust.liquid.html", """<script src="https://assets.crowd.aws/crowd-html-elements.js"></script>
    <crowd-form>
      <crowd-bounding-box name="boundingBox" src="{{ task.input.taskObject | grant_read_access }}"
        header="Fix the boxes" labels="{{ task.input.labels | to_json | escape }}"
        initial-value="[{% for box in task.input.manifestLine.bbox.annotations %}{% capture id %}{{ box.class_id }}{% endcapture %}
          { label: {{ task.input.manifestLine.bbox-metadata.class-map[id] | to_json }}, left: {{ box.left }},
            top: {{ box.top }}, width: {{ box.width }}, height: {{ box.height }} },{% endfor %}]">
      </crowd-bounding-box>
    </crowd-form>""")

    # (1) Custom verification: one data object per batch of three images with their predicted labels.
    custom_lines = [{"source": f"batch-{b}", "labels": label_set, "images": [
        {"source-ref": ref, "width": sizes[ref][0], "height": sizes[ref][1],
         "predicted": [{"name": p["Name"], "confidence": p["Confidence"]} for p in shown[ref]]}
        for ref in reviewed[3 * b:3 * b + 3]]} for b in range(2)]
    custom_manifest = put_lines("gt/custom.manifest", custom_lines)

    # (2) Box adjustment: the predicted boxes, in pixels inside the frame, as the prior attribute `bbox`.
    def pixels(box, width, height):
        left, top = min(max(round(box["Left"] * width), 0), width - 2), min(max(round(box["Top"] * height), 0), height - 2)
        return {"left": left, "top": top, "width": max(min(round(box["Width"] * width), width - left), 2),
                "height": max(min(round(box["Height"] * height), height - top), 2)}

    box_lines = []
    for ref in reviewed:
        boxed = [p for p in shown[ref] if "Geometry" in p]
        if boxed:
            (width, height), ids = sizes[ref], {p["Name"]: label_set.index(p["Name"]) for p in boxed}
            box_lines.append({"source-ref": ref,
                              "bbox": {"image_size": [{"width": width, "height": height, "depth": 3}],
                                       "annotations": [{"class_id": ids[p["Name"]],
                                                        **pixels(p["Geometry"]["BoundingBox"], width, height)}
                                                       for p in boxed]},
                              "bbox-metadata": {"objects": [{"confidence": round(p["Confidence"] / 100, 2)} for p in boxed],
                                                "class-map": {str(i): name for name, i in ids.items()},
                                                "type": "groundtruth/object-detection", "human-annotated": "no",
                                                "creation-date": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime()),
                                                "job-name": "rekognition-prediction"}})
    boxes_manifest = put_lines("gt/boxes.manifest", box_lines)

    def create_job(name, manifest, attribute, template, pre, post):
        sm.create_labeling_job(
            LabelingJobName=name, LabelAttributeName=attribute,
            InputConfig={"DataSource": {"S3DataSource": {"ManifestS3Uri": manifest}}},
            OutputConfig={"S3OutputPath": f"s3://{bucket}/gt/output"},
            RoleArn=f"arn:aws:iam::{account}:role/GroundTruthExecution", LabelCategoryConfigS3Uri=labels_uri,
            HumanTaskConfig={
                "WorkteamArn": f"arn:aws:sagemaker:{region}:{account}:workteam/private-crowd/reviewers",
                "UiConfig": {"UiTemplateS3Uri": template}, "PreHumanTaskLambdaArn": pre,
                "TaskTitle": "Check the model", "TaskDescription": "Confirm or fix what the model found",
                "NumberOfHumanWorkersPerDataObject": 1, "TaskTimeLimitInSeconds": 300,
                "AnnotationConsolidationConfig": {"AnnotationConsolidationLambdaArn": post}})
        return name

    jobs = {"custom": create_job("new-user-review", custom_manifest, "review", verify_template,
                                 own_lambda + "rekfeedback-pre-annotation",
                                 own_lambda + "rekfeedback-annotation-consolidation"),
            "boxes": create_job("new-user-boxes", boxes_manifest, "bbox-reviewed", boxes_template,
                                aws_lambda + "PRE-AdjustmentBoundingBox", aws_lambda + "ACS-AdjustmentBoundingBox")}
    outputs = {}
    for kind, name in jobs.items():
        for _ in range(300):
            job = sm.describe_labeling_job(LabelingJobName=name)
            if job["LabelingJobStatus"] in ("Completed", "Failed", "Stopped"):
                break
            time.sleep(0.2)
        report[f"{kind}_job"] = job["LabelingJobStatus"]
        report[f"{kind}_failure"] = job.get("FailureReason")
        report[f"{kind}_human_labeled"] = job["LabelCounters"]["HumanLabeled"]
        key = f"gt/output/{name}/manifests/output/output.manifest"
        report[f"{kind}_output_uri_matches"] = job.get("LabelingJobOutput", {}).get("OutputDatasetS3Uri") == f"s3://{bucket}/{key}"
        outputs[kind] = [json.loads(line) for line in
                         s3.get_object(Bucket=bucket, Key=key)["Body"].read().decode().splitlines() if line.strip()]

    custom_out = outputs["custom"]
    report["custom_lines"] = [len(custom_out), len(custom_lines)]
    report["custom_sources"] = [line["source"] for line in custom_out] == [line["source"] for line in custom_lines]
    report["custom_types"] = sorted({line["review-metadata"]["type"] for line in custom_out})
    report["custom_images_reviewed"] = all(
        [i["source-ref"] for i in out["review"]["images"]] == [i["source-ref"] for i in line["images"]]
        for out, line in zip(custom_out, custom_lines))
    report["custom_image_keys"] = sorted({k for line in custom_out for i in line["review"]["images"] for k in i})
    # Nobody knows better than the model about these images, so the workforce confirms its labels.
    report["custom_labels_as_predicted"] = all(
        sorted(i["labels"]) == sorted({p["name"] for p in src["predicted"]})  # image-level: distinct
        for out, line in zip(custom_out, custom_lines) for i, src in zip(out["review"]["images"], line["images"]))
    boxes_out = outputs["boxes"]
    report["boxes_lines"] = [len(boxes_out), len(box_lines)]
    report["boxes_prior_kept"] = all(out["bbox"] == line["bbox"] for out, line in zip(boxes_out, box_lines))
    report["boxes_types"] = sorted({line["bbox-reviewed-metadata"]["type"] for line in boxes_out})
    report["boxes_adjustment"] = sorted({line["bbox-reviewed-metadata"]["adjustment-status"] for line in boxes_out})
    report["boxes_image_size_kept"] = all(out["bbox-reviewed"]["image_size"] == line["bbox"]["image_size"]
                                          for out, line in zip(boxes_out, box_lines))
    report["boxes_class_maps_known"] = all(set(line["bbox-reviewed-metadata"]["class-map"].values()) <= set(label_set)
                                           for line in boxes_out)
    report["boxes_annotations_kept"] = all(out["bbox-reviewed"]["annotations"] == line["bbox"]["annotations"]
                                           for out, line in zip(boxes_out, box_lines))
    # <<< END OF GROUND TRUTH PART

    # 8. Stop the model.
    report["stop"] = rek.stop_project_version(ProjectVersionArn=version)["Status"]
    while (status := rek.describe_project_versions(ProjectArn=project, VersionNames=["v1"])
           ["ProjectVersionDescriptions"][0]["Status"]) == "STOPPING":
        time.sleep(0.1)
    report["final_status"] = status
    print(json.dumps(report))
''')


def _write_data(folder: pathlib.Path) -> None:
    rng = random.Random(4)
    labels = synthetic.LABELS
    pool = [synthetic.make_image(rng, f"images/img-{i:05d}") for i in range(1, 21)]
    seeds = [synthetic.make_image(rng, f"seed/seed-{i:05d}", only=labels[(i - 1) % 4]) for i in range(1, 13)]
    tests = [synthetic.make_image(rng, f"test/test-{i:05d}") for i in range(1, 13)]
    for img in (*pool, *seeds, *tests):
        (folder / img.key).parent.mkdir(parents=True, exist_ok=True)
        (folder / img.key).write_bytes(img.body)
    (folder / "manifests").mkdir()
    (folder / "manifests" / "seed.manifest").write_text(synthetic.manifest(BUCKET, seeds, "detection"))
    (folder / "manifests" / "test.manifest").write_text(synthetic.manifest(BUCKET, tests, "detection"))
    (folder / "manifests" / "truth.jsonl").write_text("".join(
        json.dumps({"source-ref": f"s3://{BUCKET}/{img.key}", "labels": img.truth["labels"],
                    "width": img.width, "height": img.height}) + "\n" for img in pool))


@pytest.fixture
def console_emulator():
    """`rekfeedback-local emulator --port 0` in a subprocess; yields the environment it printed."""
    script = pathlib.Path(sys.executable).parent / "rekfeedback-local"
    command = [str(script), "emulator"] if script.exists() else [sys.executable, "-m", "rekfeedback_local.cli", "emulator"]
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "AIRFLOW_CONN_"))}
    proc = subprocess.Popen([*command, "--host", "127.0.0.1", "--port", "0", "--training-seconds", "0.5",
                             "--start-seconds", "0.3", "--stop-seconds", "0.3", "--dataset-seconds", "0.1",
                             "--labeling-seconds", "0.5"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=clean)
    printed = {}
    try:
        for line in proc.stdout:
            if line.startswith("export "):
                key, _, value = line[len("export "):].strip().partition("=")
                printed[key] = value
            if line.startswith("# Ctrl-C"):
                break
        assert {"AWS_ENDPOINT_URL", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_DEFAULT_REGION"} <= set(printed), \
            proc.stderr.read() if proc.poll() is not None else printed
        yield {**clean, **printed}
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            assert proc.wait(timeout=60) == 0
        finally:
            if proc.poll() is None:
                proc.kill()


def test_plain_boto3_script_runs_the_whole_model_lifecycle(tmp_path, console_emulator):
    data = tmp_path / "data"
    data.mkdir()
    _write_data(data)
    script = tmp_path / "new_user.py"
    script.write_text(USER_SCRIPT)
    assert "rekfeedback" not in USER_SCRIPT.replace("rekfeedback-", "")  # the script stands alone
    result = subprocess.run([sys.executable, str(script), str(data), BUCKET], env=console_emulator,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report["dataset_TRAIN"] == report["dataset_TEST"] == "CREATE_COMPLETE"
    assert report["trained"] == "TRAINING_COMPLETED" and 0 < report["f1"] <= 1
    assert report["top_label_accuracy"] > 0.5, report  # a guess is right about a third of the time
    assert report["burst_ok"] >= 1 and report["burst_throttled"] >= 1, report
    for kind in ("custom", "boxes"):
        assert report[f"{kind}_job"] == "Completed", report[f"{kind}_failure"]
        assert report[f"{kind}_output_uri_matches"], report
        lines, expected = report[f"{kind}_lines"]
        assert lines == expected > 0 and report[f"{kind}_human_labeled"] == expected, report
    assert report["custom_sources"] and report["custom_images_reviewed"], report
    assert report["custom_types"] == ["groundtruth/custom"], report
    # The Lambda only votes; the collect step diffs the vote against the prediction (one label diff).
    assert {"source-ref", "labels", "workers", "agreement"} <= set(report["custom_image_keys"]), report
    assert report["custom_labels_as_predicted"], report
    assert report["boxes_types"] == ["groundtruth/object-detection"], report
    assert report["boxes_prior_kept"] and report["boxes_image_size_kept"] and report["boxes_class_maps_known"], report
    assert report["boxes_adjustment"] == ["unadjusted"] and report["boxes_annotations_kept"], report
    assert report["stop"] == "STOPPING" and report["final_status"] == "STOPPED"
