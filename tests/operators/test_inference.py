"""The batch inference operator against the emulator over HTTP."""

from __future__ import annotations

import io
import json
import uuid

import pytest
from airflow.sdk.exceptions import AirflowException
from PIL import Image

from rekfeedback.core.paths import parse_s3_uri
from rekfeedback.core.predictions import read_prediction_lines
from rekfeedback.core.shard_rates import memory_key, memory_record
from rekfeedback.operators.inference import RekognitionCustomLabelsInferenceOperator

from tests.fixtures.models import clients

DETECT = "Rekognition.DetectCustomLabels"


def infer(model, dataset, **kw):
    kw.setdefault("output_prefix", f"s3://{dataset['bucket']}/turns/{uuid.uuid4().hex[:8]}")
    if "input_manifest" not in kw:
        kw.setdefault("input_prefix", dataset["images_prefix_uri"])
    kw.setdefault("progress_interval", 5)
    kw.setdefault("initial_rate", 100.0)  # the emulated model is fast here; production starts lower
    kw.setdefault("max_failed_share", 0.2)  # the synthetic pool is ~6% bad objects on purpose
    return RekognitionCustomLabelsInferenceOperator(task_id="infer", project_version_arn=model["arn"], **kw)


def lines_of(emulator, uri):
    s3, _ = clients(emulator)
    bucket, key = uri[5:].split("/", 1)
    return list(read_prediction_lines(s3.get_object(Bucket=bucket, Key=key)["Body"].read()))


def test_every_image_gets_one_line_and_bad_ones_do_not_stop_the_others(emulator, dataset, running):
    emulator.reset_stats()
    out = infer(running, dataset).execute({})
    images = {f"s3://{dataset['bucket']}/{k}" for k in dataset["image_keys"]}
    bad = {f"s3://{dataset['bucket']}/{k}" for k in dataset["bad_keys"] if not k.endswith(".txt")}
    lines = lines_of(emulator, out["output_uri"])
    assert {line["source-ref"] for line in lines} == images | bad
    assert len(lines) == out["images_total"] == len(images) + len(bad)
    assert out["predicted"] + out["no_prediction"] + out["failed"] == len(lines)
    failed = {line["source-ref"] for line in lines if line["error"]}
    assert failed == bad  # corrupt/non-images recorded with a reason; every real image predicted
    assert out["failed"] == len(bad) and sum(out["errors"].values()) == len(bad)
    # Found by the header probe: never sent, so fewer calls than images.
    assert out["calls"] == emulator.calls[DETECT] < len(lines)
    good = [line for line in lines if not line["error"]]
    assert all(line["width"] and line["height"] and line["format"] in ("jpeg", "png") for line in good)
    assert sum(out["labels"].values()) >= out["predicted"] > 0
    boxed = [label for line in good for label in line["labels"] if label["box"]]
    assert boxed and all(0 <= b["box"]["left"] <= 1 for b in boxed)


def test_exclusion_of_labelled_images_and_missing_exclude_manifest(emulator, dataset, running):
    s3, _ = clients(emulator)
    labelled = [f"s3://{dataset['bucket']}/{k}" for k in dataset["image_keys"][:10]]
    key = f"turns/{uuid.uuid4().hex[:8]}/manifest/output.manifest"
    s3.put_object(Bucket=dataset["bucket"], Key=key,
                  Body="".join(f'{{"source-ref": "{ref}", "bbox": {{}}}}\n' for ref in labelled).encode())
    emulator.reset_stats()
    out = infer(running, dataset, exclude_manifests=[f"s3://{dataset['bucket']}/{key}",
                                                       f"s3://{dataset['bucket']}/nope/first-turn.manifest"]).execute({})
    assert out["images_skipped"] == 10
    refs = {line["source-ref"] for line in lines_of(emulator, out["output_uri"])}
    assert not refs & set(labelled)
    assert len(refs) == out["images_total"] - 10


def test_shards_are_disjoint_and_cover_everything(emulator, dataset, running):
    prefix = f"s3://{dataset['bucket']}/turns/{uuid.uuid4().hex[:8]}"
    manifest_key = f"{prefix[5 + len(dataset['bucket']) + 1:]}/input.manifest"
    refs = [f"s3://{dataset['bucket']}/{k}" for k in dataset["image_keys"]]
    s3, _ = clients(emulator)
    s3.put_object(Bucket=dataset["bucket"], Key=manifest_key,
                  Body="".join(f'{{"source-ref": "{r}"}}\n' for r in refs).encode())
    seen: list[str] = []
    outputs = set()
    for index in range(3):
        out = infer(running, dataset, output_prefix=prefix, input_manifest=f"s3://{dataset['bucket']}/{manifest_key}",
                    shard_index=str(index), shard_count="3").execute({})
        assert out["output_uri"].endswith(f"predictions/part-{index:05d}-of-00003.jsonl")
        outputs.add(out["output_uri"])
        seen.extend(line["source-ref"] for line in lines_of(emulator, out["output_uri"]))
    assert len(outputs) == 3
    assert sorted(seen) == sorted(refs)  # disjoint (no duplicates) and covering


def test_throttling_storm_loses_nothing(emulator, dataset, running, emulator_knobs):
    emulator_knobs(throttle_rate=0.3, capacity_per_unit=60.0)
    emulator.reset_stats()
    out = infer(running, dataset).execute({})
    lines = lines_of(emulator, out["output_uri"])
    assert out["throttles"] > 0
    assert emulator.errors[f"{DETECT}.ProvisionedThroughputExceededException"] == out["throttles"]
    assert not [line for line in lines if line["error"] and "Throughput" in line["error"]["code"]]
    assert out["failed"] == len([k for k in dataset["bad_keys"] if not k.endswith(".txt")])
    assert len(lines) == out["images_total"]


def test_oversized_and_too_small_images_are_recorded_not_sent(emulator, dataset, running):
    s3, _ = clients(emulator)
    prefix = f"odd/{uuid.uuid4().hex[:8]}/"
    buf = io.BytesIO()
    Image.new("RGB", (4100, 300), (10, 200, 10)).save(buf, "PNG")
    s3.put_object(Bucket=dataset["bucket"], Key=prefix + "wide.png", Body=buf.getvalue())
    buf = io.BytesIO()
    Image.new("RGB", (40, 40), (10, 200, 10)).save(buf, "JPEG")
    s3.put_object(Bucket=dataset["bucket"], Key=prefix + "tiny.jpg", Body=buf.getvalue())
    s3.put_object(Bucket=dataset["bucket"], Key=prefix + "huge.jpg", Body=b"\xff\xd8\xff" + bytes(15 * 1024 * 1024))
    s3.put_object(Bucket=dataset["bucket"], Key=prefix + "ok.png", Body=s3.get_object(
        Bucket=dataset["bucket"], Key=next(k for k in dataset["image_keys"] if k.endswith(".png")))["Body"].read())
    emulator.reset_stats()
    with pytest.raises(AirflowException, match=r"3 of 4 images failed .*ImageTooLargeException x2"):
        infer(running, dataset, input_prefix=f"s3://{dataset['bucket']}/{prefix}", max_failed_share=0.05).execute({})
    assert emulator.calls[DETECT] == 1  # only ok.png was sent
    out = infer(running, dataset, input_prefix=f"s3://{dataset['bucket']}/{prefix}",
                output_prefix=f"s3://{dataset['bucket']}/turns/odd", max_failed_share=0.9).execute({})
    errors = {line["source-ref"].rsplit("/", 1)[1]: line["error"] for line in lines_of(emulator, out["output_uri"])}
    assert errors["ok.png"] is None
    assert errors["wide.png"]["code"] == "ImageTooLargeException" and "4100x300" in errors["wide.png"]["message"]
    assert errors["huge.jpg"]["code"] == "ImageTooLargeException"
    assert errors["tiny.jpg"]["code"] == "InvalidParameterException"


def test_model_not_running_is_a_clear_error(emulator, dataset, trained):
    emulator.reset_stats()
    with pytest.raises(AirflowException, match=r"not RUNNING.*RekognitionStartProjectVersionOperator"):
        infer(trained, dataset).execute({})
    assert emulator.calls[DETECT] == 0


class Killed(BaseException):
    """Stands in for the worker dying (SIGKILL, OOM) right after a checkpoint reached S3."""


def test_kill_and_retry_resumes_without_repeating_calls(emulator, dataset, running, monkeypatch):
    from rekfeedback.hooks.inference_inputs import ShardInputs

    prefix = f"s3://{dataset['bucket']}/turns/{uuid.uuid4().hex[:8]}"
    reference = infer(running, dataset).execute({})
    expected = [(l["source-ref"], l["labels"], l["error"]) for l in lines_of(emulator, reference["output_uri"])]

    op = infer(running, dataset, output_prefix=prefix, checkpoint_every=20, max_concurrency=4)
    original = ShardInputs.put_lines
    written = []

    def put_then_die(self, uri, lines):
        original(self, uri, lines)
        if str(uri).endswith(".checkpoint.jsonl"):
            written.append(len(lines))
            raise Killed()

    monkeypatch.setattr(ShardInputs, "put_lines", put_then_die)
    emulator.reset_stats()
    with pytest.raises(Killed):
        op.execute({})
    monkeypatch.undo()  # the retry runs on a healthy worker
    first_calls = emulator.calls[DETECT]
    checkpointed = lines_of(emulator, f"{prefix}/predictions/part-00000-of-00001.checkpoints/000001.checkpoint.jsonl")
    assert len(checkpointed) == written[0] == 20  # exactly the cadence, whatever completed together

    emulator.reset_stats()
    out = infer(running, dataset, output_prefix=prefix).execute({})
    assert out["resumed"] == len(checkpointed)
    sent_before = {l["source-ref"] for l in checkpointed if not l["error"] or l["error"]["code"] == "InvalidImageFormatException"}
    called_before = len([l for l in checkpointed if l["width"] is not None])  # header passed: the model was called
    assert emulator.calls[DETECT] == reference["calls"] - called_before  # nothing done is sent again
    assert first_calls >= called_before and sent_before
    got = [(l["source-ref"], l["labels"], l["error"]) for l in lines_of(emulator, out["output_uri"])]
    assert got == expected  # same output as an uninterrupted run


def test_a_turn_starts_at_its_share_of_the_rate_remembered_for_the_model_and_leaves_a_hint(emulator, dataset,
                                                                                          running):
    s3, _ = clients(emulator)
    memory = f"s3://{dataset['bucket']}/loop/dataset/throughput/"
    key = "loop/dataset/throughput/" + memory_key(running["arn"], 1, None)  # started with MinInferenceUnits=1
    s3.put_object(Bucket=dataset["bucket"], Key=key, Body=memory_record(30.0, model=running["arn"]).encode())
    op = infer(running, dataset, throughput_memory_uri=memory, initial_rate=1.0, shard_index=1, shard_count=2)
    out = op.execute({})
    assert out["start_rate"] == pytest.approx(15.0)  # its share of the remembered 30 calls/s, not 1.0
    turn = parse_s3_uri(op.output_prefix)
    hint = json.loads(s3.get_object(Bucket=turn.bucket, Key=f"{turn.key}/inference/rate-hint.json")["Body"].read())
    assert hint["shards"]["1"]["done"] is True  # the other shard takes over its rate
    other = infer(running, dataset, throughput_memory_uri=f"s3://{dataset['bucket']}/elsewhere/", initial_rate=7.0)
    assert other.execute({})["start_rate"] == pytest.approx(7.0)  # nothing remembered there: probe from initial_rate
