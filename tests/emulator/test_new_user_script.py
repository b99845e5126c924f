"""Done-when check of issue 2: a new user's plain boto3 script against the emulator's console script.

The parent test starts `rekfeedback-emulator` in a subprocess and writes synthetic images and manifests
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

from rekfeedback import synthetic

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
    truth = {json.loads(line)["source-ref"]: json.loads(line)["labels"]
             for line in (data / "manifests" / "truth.jsonl").read_text().splitlines()}
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

    # 7. Labeling jobs.
    # >>> GROUND TRUTH PART (added by the Ground Truth emulator engineer): create a custom labeling job and a
    # >>> bounding-box adjustment job, wait for both to reach Completed, read their output manifests.
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
        json.dumps({"source-ref": f"s3://{BUCKET}/{img.key}", "labels": img.truth["labels"]}) + "\n" for img in pool))


@pytest.fixture
def console_emulator():
    """`rekfeedback-emulator --port 0` in a subprocess; yields the environment it printed."""
    script = pathlib.Path(sys.executable).parent / "rekfeedback-emulator"
    command = [str(script)] if script.exists() else [sys.executable, "-m", "rekfeedback.emulator.cli"]
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "AIRFLOW_CONN_"))}
    proc = subprocess.Popen([*command, "--host", "127.0.0.1", "--port", "0", "--training-seconds", "0.5",
                             "--start-seconds", "0.3", "--stop-seconds", "0.3", "--dataset-seconds", "0.1"],
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
            assert proc.wait(timeout=10) == 0
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
    assert report["stop"] == "STOPPING" and report["final_status"] == "STOPPED"
