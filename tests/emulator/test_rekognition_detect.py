"""DetectCustomLabels: answers from the fitted model, its parameters, its errors, throttling and latency."""

from __future__ import annotations

import io
import json
from concurrent.futures import ThreadPoolExecutor

import pytest
from botocore.exceptions import ClientError
from PIL import Image

from rekfeedback_local import synthetic

from tests.fixtures.waits import until

from .helpers import FAST, client, project_with_datasets, train, unique


@pytest.fixture(scope="module")
def model(emulator):
    """Object-detection and classification models trained on 40 labelled images, both RUNNING with 1 unit."""
    s3 = client(emulator, "s3", retries=3)
    rek = client(emulator, "rekognition")
    bucket = unique("detect")
    det = synthetic.generate(s3, bucket, "det", n=30, seed=31, n_seed=60, n_test=30)
    cls = synthetic.generate(s3, bucket, "cls", n=0, seed=32, n_seed=40, n_test=12, kind="classification", bad_files=False)
    out = {"bucket": bucket, "pool": det["image_keys"], "bad": det["bad_keys"]}
    for name, summary in (("detection", det), ("classification", cls)):
        project = project_with_datasets(rek, summary["seed_manifest_uri"], summary["test_manifest_uri"])
        arn = train(rek, project, "v1", bucket)
        rek.start_project_version(ProjectVersionArn=arn, MinInferenceUnits=1)
        rek.get_waiter("project_version_running").wait(ProjectArn=project, VersionNames=["v1"], WaiterConfig=FAST)
        out[name] = arn
        out[f"{name}_project"] = project
    return out


@pytest.fixture
def rek(emulator, emulator_knobs):
    emulator_knobs(capacity_per_unit=1000.0)  # most tests here are about answers, not throughput
    return client(emulator, "rekognition")


def _truth(emulator, bucket: str, key: str) -> dict:
    return json.loads(client(emulator, "s3").head_object(Bucket=bucket, Key=key)["Metadata"]["truth"])


def test_detection_answers_beat_chance_on_held_out_images(emulator, rek, model):
    hits = total = 0
    for key in model["pool"]:  # the pool is not in the training or test manifests
        labels = rek.detect_custom_labels(ProjectVersionArn=model["detection"],
                                          Image={"S3Object": {"Bucket": model["bucket"], "Name": key}})["CustomLabels"]
        truth = _truth(emulator, model["bucket"], key)
        for label in labels:
            box = label["Geometry"]["BoundingBox"]
            assert set(box) == {"Width", "Height", "Left", "Top"}
            assert 0 <= box["Left"] <= 1 and 0 < box["Width"] <= 1
            assert 0 <= label["Confidence"] <= 100
        confidences = [label["Confidence"] for label in labels]
        assert confidences == sorted(confidences, reverse=True)
        hits += bool(labels) and labels[0]["Name"] in truth["labels"]
        total += 1
    # A guess would name a present shape about a third of the time (4 labels, 1-3 shapes per image).
    assert hits / total > 0.7, f"top label right on {hits}/{total} images"

def test_boxes_match_the_truth(emulator, rek, model):
    from rekfeedback.core.boxes import iou, ratio_to_pixels

    key = model["pool"][0]
    body = client(emulator, "s3").get_object(Bucket=model["bucket"], Key=key)["Body"].read()
    width, height = Image.open(io.BytesIO(body)).size
    truth = _truth(emulator, model["bucket"], key)
    labels = rek.detect_custom_labels(ProjectVersionArn=model["detection"], Image={"Bytes": body}, MinConfidence=0)["CustomLabels"]
    # At MinConfidence 0 each box comes back with its rival labels too (the same geometry), as on AWS.
    boxes = {tuple(sorted(label["Geometry"]["BoundingBox"].items())) for label in labels}
    assert len(boxes) == len(truth["boxes"])
    for label in labels:
        box = ratio_to_pixels(label["Geometry"]["BoundingBox"], width, height)
        assert max(iou(box, t) for t in truth["boxes"]) > 0.6


def test_classification_model_returns_image_level_labels(emulator, rek, model):
    key = model["pool"][1]
    labels = rek.detect_custom_labels(ProjectVersionArn=model["classification"], MinConfidence=0,
                                      Image={"S3Object": {"Bucket": model["bucket"], "Name": key}})["CustomLabels"]
    assert labels and all("Geometry" not in label for label in labels)
    assert len({label["Name"] for label in labels}) == len(labels)


def test_min_confidence_and_max_results(emulator, rek, model):
    image = {"S3Object": {"Bucket": model["bucket"], "Name": model["pool"][2]}}
    everything = rek.detect_custom_labels(ProjectVersionArn=model["classification"], Image=image, MinConfidence=0)["CustomLabels"]
    assert len(everything) == 4  # every label has some confidence when thresholds are ignored
    default = rek.detect_custom_labels(ProjectVersionArn=model["classification"], Image=image)["CustomLabels"]
    assert len(default) < len(everything)  # the assumed per-label thresholds apply
    top = rek.detect_custom_labels(ProjectVersionArn=model["classification"], Image=image, MinConfidence=0, MaxResults=1)["CustomLabels"]
    assert top == everything[:1]
    cut = everything[1]["Confidence"]
    above = rek.detect_custom_labels(ProjectVersionArn=model["classification"], Image=image, MinConfidence=cut)["CustomLabels"]
    assert [label["Name"] for label in above] == [label["Name"] for label in everything[:2]]
    with pytest.raises(ClientError) as err:
        rek.detect_custom_labels(ProjectVersionArn=model["classification"], Image=image, MinConfidence=101)
    assert err.value.response["Error"]["Code"] == "ValidationException"


@pytest.mark.parametrize("key_kind, code", [("bad", "InvalidImageFormatException"), ("missing", "InvalidS3ObjectException")])
def test_bad_objects(emulator, rek, model, key_kind, code):
    keys = model["bad"] if key_kind == "bad" else ["det/images/does-not-exist.jpg"]
    for key in keys:
        with pytest.raises(ClientError) as err:
            rek.detect_custom_labels(ProjectVersionArn=model["detection"], Image={"S3Object": {"Bucket": model["bucket"], "Name": key}})
        assert err.value.response["Error"]["Code"] == code, key


def test_image_too_large(emulator, rek, model):
    big = b"\xff\xd8" + b"\0" * (15 * 1024 * 1024 + 10)
    client(emulator, "s3").put_object(Bucket=model["bucket"], Key="det/big.jpg", Body=big)
    with pytest.raises(ClientError) as err:
        rek.detect_custom_labels(ProjectVersionArn=model["detection"], Image={"S3Object": {"Bucket": model["bucket"], "Name": "det/big.jpg"}})
    assert err.value.response["Error"]["Code"] == "ImageTooLargeException"
    with pytest.raises(ClientError) as err:  # Bytes: the blob shape allows 5 MB, DetectCustomLabels only 4 MB
        rek.detect_custom_labels(ProjectVersionArn=model["detection"], Image={"Bytes": b"\xff\xd8" + b"\0" * (4 * 1024 * 1024 + 10)})
    assert err.value.response["Error"]["Code"] == "ImageTooLargeException"
    with pytest.raises(ClientError) as err:
        rek.detect_custom_labels(ProjectVersionArn=model["detection"], Image={"Bytes": b"not an image at all"})
    assert err.value.response["Error"]["Code"] == "InvalidImageFormatException"


def test_wrong_arguments(emulator, rek, model):
    with pytest.raises(ClientError) as err:
        rek.detect_custom_labels(ProjectVersionArn=model["detection"], Image={})
    assert err.value.response["Error"]["Code"] == "InvalidParameterException"
    raw = client(emulator, "rekognition", validate=False)
    with pytest.raises(ClientError) as err:
        raw.detect_custom_labels(ProjectVersionArn=model["detection"], Image={"S3Object": {"Bucket": "b", "Name": ""}})
    assert err.value.response["Error"]["Code"] == "ValidationException"
    with pytest.raises(ClientError) as err:
        raw.detect_custom_labels(ProjectVersionArn=model["detection"])
    assert err.value.response["Error"]["Code"] == "ValidationException"
    unknown = model["detection"].rsplit("/", 1)[0] + "/1"
    with pytest.raises(ClientError) as err:
        rek.detect_custom_labels(ProjectVersionArn=unknown, Image={"Bytes": b"x"})
    assert err.value.response["Error"]["Code"] == "ResourceNotFoundException"


def test_not_running_is_resource_not_ready(emulator, rek, model):
    arn = rek.create_project_version(ProjectArn=model["detection_project"], VersionName=unique("idle"),
                                     OutputConfig={"S3Bucket": model["bucket"]})["ProjectVersionArn"]
    image = {"S3Object": {"Bucket": model["bucket"], "Name": model["pool"][0]}}
    with pytest.raises(ClientError) as err:
        rek.detect_custom_labels(ProjectVersionArn=arn, Image=image)
    assert err.value.response["Error"]["Code"] == "ResourceNotReadyException"
    assert "TRAINING_IN_PROGRESS" in err.value.response["Error"]["Message"]


def detect_outcome(rek, arn: str, image: dict) -> str:
    """"ok", or the error code DetectCustomLabels answered."""
    try:
        rek.detect_custom_labels(ProjectVersionArn=arn, Image=image)
        return "ok"
    except ClientError as exc:
        return exc.response["Error"]["Code"]


def test_throttled_over_capacity(emulator, model, emulator_knobs):
    emulator_knobs(capacity_per_unit=3.0, latency=0.0, throttle_rate=0.0)
    rek = client(emulator, "rekognition")
    image = {"S3Object": {"Bucket": model["bucket"], "Name": model["pool"][0]}}

    def call(_):
        return detect_outcome(rek, model["detection"], image)

    call(0)  # warm the client and the feature cache, then let the one-second window empty
    emulator.advance_clock(1.05)
    started = emulator.env.clock()
    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(call, range(12)))
    windows = int(emulator.env.clock() - started) + 1  # a slow machine may spread the burst over two windows
    assert 3 <= results.count("ok") <= 3 * windows
    assert results.count("ProvisionedThroughputExceededException") == 12 - results.count("ok")
    emulator.advance_clock(1.05)  # capacity comes back once the window has passed
    assert call(0) == "ok"


def test_random_throttling_knob(emulator, rek, model, emulator_knobs):
    emulator_knobs(throttle_rate=1.0)
    before = emulator.errors["Rekognition.DetectCustomLabels.ProvisionedThroughputExceededException"]
    with pytest.raises(ClientError) as err:
        rek.detect_custom_labels(ProjectVersionArn=model["detection"], Image={"Bytes": b"x"})
    assert err.value.response["Error"]["Code"] == "ProvisionedThroughputExceededException"
    assert emulator.errors["Rekognition.DetectCustomLabels.ProvisionedThroughputExceededException"] == before + 1


def test_a_call_in_flight_does_not_hold_up_the_others(emulator, rek, model, emulator_knobs):
    """DetectCustomLabels calls overlap (no lock is held while one waits), as on AWS: two calls held inside the
    emulator by the detect_hold_after knob, a third answered meanwhile. Events and counters, no timing."""
    image = {"S3Object": {"Bucket": model["bucket"], "Name": model["pool"][0]}}
    rek.detect_custom_labels(ProjectVersionArn=model["detection"], Image=image)  # warm the feature cache
    emulator.reset_stats()
    emulator_knobs(detect_hold_after=1)

    def call(_):
        return detect_outcome(rek, model["detection"], image)

    with ThreadPoolExecutor(3) as pool:
        held = [pool.submit(call, i) for i in range(3)]
        assert until(lambda: sum(f.done() for f in held) >= 1
                     and emulator.calls["Rekognition.DetectCustomLabels"] >= 3, timeout=30), \
            "the calls never reached the emulator"
        assert sum(f.done() for f in held) == 1  # one let through, two still inside the emulator
        assert rek.describe_projects()["ProjectDescriptions"]  # the server answers others meanwhile
        emulator_knobs(detect_hold_after=0)  # let the held calls go: they end throttled, unpaid
        results = sorted(f.result(timeout=30) for f in held)
    assert results == ["ThrottlingException", "ThrottlingException", "ok"]


def test_calls_are_counted(emulator, rek, model):
    before = emulator.calls["Rekognition.DetectCustomLabels"]
    rek.detect_custom_labels(ProjectVersionArn=model["detection"], Image={"S3Object": {"Bucket": model["bucket"], "Name": model["pool"][0]}})
    assert emulator.calls["Rekognition.DetectCustomLabels"] == before + 1


def test_an_object_rewritten_under_the_same_key_is_analysed_again(emulator, rek, model):
    # The analysis is cached per (bucket, key, ETag): new bytes under the same key are a new image.
    s3, bucket = client(emulator, "s3"), model["bucket"]
    first, second = model["pool"][0], model["pool"][1]

    def labels(key):
        return rek.detect_custom_labels(ProjectVersionArn=model["detection"],
                                        Image={"S3Object": {"Bucket": bucket, "Name": key}})["CustomLabels"]

    s3.copy_object(Bucket=bucket, Key="det/rewritten.jpg", CopySource={"Bucket": bucket, "Key": first})
    before = labels("det/rewritten.jpg")
    assert before == labels(first)
    s3.put_object(Bucket=bucket, Key="det/rewritten.jpg", Body=s3.get_object(Bucket=bucket, Key=second)["Body"].read())
    assert labels("det/rewritten.jpg") == labels(second) != before
