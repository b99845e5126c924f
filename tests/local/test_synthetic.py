"""The synthetic data generator: determinism, formats, truth, bad objects, manifests, console command."""

from __future__ import annotations

import hashlib
import io
import json

import boto3
import pytest
from PIL import Image

from rekfeedback_local import synthetic
from rekfeedback_local.emulator import manifests


def _s3(emulator):
    return boto3.client("s3", endpoint_url=emulator.endpoint_url, region_name="us-east-1")


def _digest(s3, bucket: str, prefix: str) -> dict:
    out = {}
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        for obj in page.get("Contents", []):
            body = s3.get_object(Bucket=bucket, Key=obj["Key"])["Body"].read()
            out[obj["Key"][len(prefix):]] = hashlib.sha1(body).hexdigest()
    return out


def test_same_seed_same_objects(emulator, s3_bucket):
    s3 = _s3(emulator)
    first = synthetic.generate(s3, s3_bucket, "one", n=12, seed=5, n_seed=4, n_test=4)
    second = synthetic.generate(s3, s3_bucket, "two", n=12, seed=5, n_seed=4, n_test=4)
    other = synthetic.generate(s3, s3_bucket, "three", n=12, seed=6, n_seed=4, n_test=4)
    one, two, three = (_digest(s3, s3_bucket, p + "/") for p in ("one", "two", "three"))
    # Manifests name their own prefix; every image object is byte-identical.
    images = {k: v for k, v in one.items() if not k.startswith("manifests/")}
    assert images == {k: v for k, v in two.items() if not k.startswith("manifests/")}
    assert images != {k: v for k, v in three.items() if not k.startswith("manifests/")}
    assert first["label_counts"] == second["label_counts"]
    assert first["images"] == other["images"] == 12


def test_images_formats_sizes_and_truth(emulator, s3_bucket):
    s3 = _s3(emulator)
    summary = synthetic.generate(s3, s3_bucket, "imgs", n=30, seed=9, n_seed=0, n_test=0)
    assert summary["formats"]["jpeg"] > 0 and summary["formats"]["png"] > 0
    sizes = set()
    for key in summary["image_keys"]:
        obj = s3.get_object(Bucket=s3_bucket, Key=key)
        img = Image.open(io.BytesIO(obj["Body"].read()))
        assert img.format == ("PNG" if key.endswith(".png") else "JPEG")
        assert obj["ContentType"] == f"image/{img.format.lower()}"
        assert min(img.size) >= 64
        sizes.add(img.size)
        truth = json.loads(obj["Metadata"]["truth"])
        assert truth["labels"] == sorted({b["label"] for b in truth["boxes"]})
        assert set(truth["labels"]) <= set(synthetic.LABELS) and truth["boxes"]
        for box in truth["boxes"]:
            assert box["left"] >= 0 and box["top"] >= 0 and box["width"] > 1 and box["height"] > 1
            assert box["left"] + box["width"] <= img.size[0] and box["top"] + box["height"] <= img.size[1]
    assert len(sizes) >= 3
    truth_lines = s3.get_object(Bucket=s3_bucket, Key="imgs/manifests/truth.jsonl")["Body"].read().decode().splitlines()
    assert len(truth_lines) == 30


def test_bad_objects_are_not_images(emulator, s3_bucket):
    s3 = _s3(emulator)
    summary = synthetic.generate(s3, s3_bucket, "bad", n=1, seed=1, n_seed=0, n_test=0)
    assert {k.rsplit("/", 1)[1] for k in summary["bad_keys"]} == {"corrupt-00001.jpg", "corrupt-00002.jpg", "notes.txt", "not-an-image.png"}
    for key in summary["bad_keys"]:
        body = s3.get_object(Bucket=s3_bucket, Key=key)["Body"].read()
        with pytest.raises(Exception):
            Image.open(io.BytesIO(body)).load()


@pytest.mark.parametrize("kind, use_case", [("detection", manifests.OBJECT_LOCALIZATION),
                                            ("classification", manifests.IMAGE_LEVEL_LABELS)])
def test_seed_and_test_manifests_are_valid_rekognition_manifests(emulator, s3_bucket, kind, use_case):
    s3 = _s3(emulator)
    summary = synthetic.generate(s3, s3_bucket, kind, n=0, seed=3, n_seed=8, n_test=6, kind=kind)
    for uri, count in ((summary["seed_manifest_uri"], 8), (summary["test_manifest_uri"], 6)):
        key = uri.split("/", 3)[3]
        text = s3.get_object(Bucket=s3_bucket, Key=key)["Body"].read().decode()
        parsed = manifests.parse_manifest(text)
        assert parsed.dropped == 0 and len(parsed.entries) == count
        for entry in parsed.entries:
            assert entry.use_cases == {use_case} and not entry.errors
            assert entry.bucket_key[0] == s3_bucket
            truth = json.loads(s3.head_object(Bucket=s3_bucket, Key=entry.bucket_key[1])["Metadata"]["truth"])
            assert entry.labels == truth["labels"]
    seed_text = s3.get_object(Bucket=s3_bucket, Key=summary["seed_manifest_uri"].split("/", 3)[3])["Body"].read().decode()
    seed_labels = [manifests.parse_line(line).labels[0] for line in seed_text.splitlines()]
    assert sorted(seed_labels) == sorted(synthetic.LABELS * 2)  # balanced, one object per seed image


def test_bad_arguments_are_explained(emulator, s3_bucket):
    with pytest.raises(ValueError, match="kind"):
        synthetic.generate(_s3(emulator), s3_bucket, "x", kind="segmentation")
    with pytest.raises(ValueError, match="labels"):
        synthetic.generate(_s3(emulator), s3_bucket, "x", labels=("octagon",))


def test_console_command(emulator, capsys):
    from rekfeedback_local.cli import main

    bucket = "synth-cli-bucket"
    assert main(["synth", "--bucket", bucket, "--prefix", "cli", "--n", "5", "--n-seed", "4", "--n-test", "2",
                 "--labels", "circle,square", "--seed", "2"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["images"] == 5 and summary["labels"] == ["circle", "square"]
    listed = _s3(emulator).list_objects_v2(Bucket=bucket, Prefix="cli/images/")["KeyCount"]
    assert listed == 5 + 4  # images plus the bad objects
    with pytest.raises(SystemExit):  # argparse rejects an unknown kind before anything is written
        main(["synth", "--bucket", bucket, "--kind", "nope"])
    assert main(["synth", "--bucket", bucket, "--labels", "octagon"]) == 2
    assert "labels" in capsys.readouterr().err
