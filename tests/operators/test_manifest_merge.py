"""ManifestMergeOperator against the emulator's S3, over HTTP."""

from __future__ import annotations

import hashlib
import json

import pytest
from airflow.sdk import Asset
from airflow.sdk.exceptions import AirflowFailException
from airflow.sdk.execution_time.context import OutletEventAccessors

from rekfeedback.core import validation
from rekfeedback.operators import ManifestMergeOperator

from tests.fixtures.merge import clients, jsonl, make_dataset, put_text, read_text, truth_answers


@pytest.fixture(scope="module")
def data(emulator):
    return make_dataset(emulator, kind="detection", n=30)


class _Ti:
    """Collects the operator's links (XCom pushes); its AWS calls go to the emulator for real."""

    def __init__(self):
        self.pushed = {}

    def xcom_push(self, key, value):
        self.pushed[key] = value


def ctx(run_id: str, **extra) -> dict:
    return {"run_id": run_id, "ti": _Ti(), **extra}


def merge_op(turn, **kw):
    return ManifestMergeOperator(task_id="merge_manifest", output_prefix=turn, **kw)


def test_merge_writes_manifest_rejects_summary_and_the_cumulative_copy(emulator, data):
    s3, _ = clients(emulator)
    base = f"s3://{data['bucket']}/loop/dag"
    turn = f"{base}/run-1/"
    answers = truth_answers(s3, data, limit=20)
    human, auto = answers[:14], [dict(a, human=False, backend="auto-accept", workers=0) for a in answers[14:]]
    gt_uri = put_text(s3, f"{turn}answers/ground-truth.jsonl", jsonl(human + human[:3]) + "{broken\n")  # a retry repeated 3
    auto_uri = put_text(s3, f"{turn}review/auto-accepted.jsonl", jsonl(auto))
    unl_uri = put_text(s3, f"{turn}review/unlabelled.jsonl",
                       jsonl({"source-ref": f"s3://{data['bucket']}/data/images/none-{i}.jpg"} for i in range(3)))
    # Objects the backend left unresolved (no consensus): counted, never written.
    unres_uri = put_text(s3, f"{turn}answers/ground-truth.unresolved.jsonl",
                         jsonl({"source-ref": f"s3://{data['bucket']}/data/images/open-{i}.jpg", "reason": "no consensus"}
                               for i in range(2)))
    cumulative = f"{base}/cumulative/output.manifest"
    manifest_asset = Asset(uri=cumulative, name="rekfeedback_cumulative_manifest")
    op = merge_op(turn, answers_uris=[gt_uri], auto_accepted_uris=auto_uri, unlabelled_uris=[unl_uri],
                  unresolved_uris=[unres_uri],
                  previous_manifest_uri=data["seed_manifest_uri"], cumulative_manifest_uri=cumulative,
                  outlets=[manifest_asset])
    events = OutletEventAccessors()
    result = op.execute(ctx("manual__1", outlet_events=events))

    seed_lines = read_text(s3, data["seed_manifest_uri"]).splitlines()
    assert result["manifest_uri"] == f"{turn}manifest/output.manifest"
    assert result["manifest_lines"] == len(seed_lines) + 20
    assert result["images"] == {"added": 20, "updated": 0, "kept_from_previous": len(seed_lines),
                                "rewritten_from_previous": 0, "verified_empty": 0, "unlabelled": 3, "unresolved": 2}
    assert result["answers"]["repeated"] == 3 and result["answers"]["applied_human"] == 14
    assert result["answers"]["applied_auto_accepted"] == 6
    assert result["rejects"] == 1 and result["rejects_by_code"] == {"ERROR_INVALID_JSON_LINE": 1}

    manifest = read_text(s3, result["manifest_uri"])
    assert read_text(s3, cumulative) == manifest
    lines = manifest.splitlines()
    assert all(validation.validate_line(line, data["bucket"]).ok for line in lines)
    refs = [json.loads(line)["source-ref"] for line in lines]
    assert refs == sorted(refs) and len(set(refs)) == len(refs)
    reject = json.loads(read_text(s3, result["rejects_uri"]))
    assert reject["file"] == gt_uri and reject["code"] == "ERROR_INVALID_JSON_LINE"
    assert json.loads(read_text(s3, result["summary_uri"]))["manifest_lines"] == result["manifest_lines"]
    label_total = sum(len(json.loads(l)["bounding-box"]["annotations"]) for l in lines if "bounding-box" in l)
    assert label_total > 0
    assert events[manifest_asset].extra["manifest_lines"] == result["manifest_lines"]
    assert events[manifest_asset].extra["added"] == 20

    # The next turn: no previous_manifest_uri, so it merges into the cumulative manifest; a newer human
    # answer replaces an auto-accepted line, and a retry of the task writes the same bytes.
    turn2 = f"{base}/run-2/"
    newer = [dict(a, answered_at="2026-11-27T08:00:00Z") for a in truth_answers(s3, data, source="job-2")[14:16]]
    gt2 = put_text(s3, f"{turn2}answers/ground-truth.jsonl", jsonl(newer))
    op2 = merge_op(turn2, answers_uris=gt2, cumulative_manifest_uri=cumulative)
    second = op2.execute(ctx("manual__2"))
    assert second["previous_manifest_uri"] == cumulative
    assert second["images"]["updated"] == 2 and second["manifest_lines"] == result["manifest_lines"]
    first_bytes = read_text(s3, second["manifest_uri"])
    retry = merge_op(turn2, answers_uris=gt2, cumulative_manifest_uri=cumulative).execute(ctx("manual__2"))
    assert read_text(s3, retry["manifest_uri"]) == first_bytes == read_text(s3, cumulative)
    assert retry == second  # same answers over the same lines: the same summary, too

    # The first merge validated the seed manifest (no record of ours beside it); the next ones trust the
    # record the previous merge left beside the cumulative manifest, which is byte for byte what it wrote.
    assert result["previous"]["carried_forward"] is False and second["previous"]["carried_forward"] is True
    record = json.loads(read_text(s3, cumulative + ".merge.json"))
    assert record == retry["record"] == json.loads(read_text(s3, retry["manifest_uri"] + ".merge.json"))
    assert record["sha256"] == hashlib.sha256(read_text(s3, cumulative).encode("utf-8")).hexdigest()
    # Edited by hand (the first image twice): the digest differs, so every line is validated again.
    kept = read_text(s3, cumulative).splitlines(keepends=True)
    put_text(s3, cumulative, kept[0] + "".join(kept))
    third = merge_op(f"{base}/run-3/", answers_uris=gt2, cumulative_manifest_uri=cumulative).execute(ctx("manual__3"))
    assert third["previous"]["carried_forward"] is False
    assert third["rejects_by_code"] == {"TERMINAL_DUPLICATE_SOURCE_REF": 1}
    assert third["manifest_lines"] == second["manifest_lines"] and read_text(s3, cumulative) == first_bytes


def test_too_many_rejects_fail_and_leave_the_cumulative_manifest_alone(emulator, data):
    s3, _ = clients(emulator)
    turn = f"s3://{data['bucket']}/loop/bad/run-1/"
    cumulative = put_text(s3, f"s3://{data['bucket']}/loop/bad/cumulative/output.manifest", "")
    answers = truth_answers(s3, data, limit=4)
    uri = put_text(s3, f"{turn}answers/ground-truth.jsonl", jsonl(answers) + "{}\n[]\nnope\n")
    with pytest.raises(AirflowFailException, match=r"3 of 7 lines rejected.*max_reject_ratio 20%"):
        merge_op(turn, answers_uris=[uri], cumulative_manifest_uri=cumulative).execute(ctx("r"))
    assert read_text(s3, cumulative) == ""
    assert len(read_text(s3, f"{turn}manifest/rejects.jsonl").splitlines()) == 3


def test_missing_inputs_are_named(emulator, data):
    turn = f"s3://{data['bucket']}/loop/missing/run-1/"
    with pytest.raises(FileNotFoundError, match="answers_uris item .*nothing-here.jsonl does not exist"):
        merge_op(turn, answers_uris=[f"{turn}nothing-here.jsonl"]).execute(ctx("r"))
    # A literal cumulative location is the default outlet; a templated one cannot be.
    assert [a.uri for a in merge_op(turn, answers_uris=[], cumulative_manifest_uri=f"{turn}c.manifest").outlets] == [f"{turn}c.manifest"]
    assert merge_op(turn, answers_uris=[], cumulative_manifest_uri="{{ params.c }}").outlets == []
    with pytest.raises(ValueError, match="output_prefix must look like"):
        merge_op("bucket-only", answers_uris=[]).execute(ctx("r"))


def test_images_from_another_bucket_fail_the_merge_and_keep_every_verified_line(emulator, data):
    """A turn whose images come from another bucket used to drop every earlier verified line (below the
    reject threshold, so the task succeeded)."""
    s3, _ = clients(emulator)
    base = f"s3://{data['bucket']}/loop/moved"
    seed = "".join(read_text(s3, data["seed_manifest_uri"]).splitlines(keepends=True)[:5])
    cumulative = put_text(s3, f"{base}/cumulative/output.manifest", seed)
    other = f"other-{data['bucket']}"[:63]
    s3.create_bucket(Bucket=other)
    moved = [dict(a, **{"source-ref": a["source-ref"].replace(f"s3://{data['bucket']}/", f"s3://{other}/")})
             for a in truth_answers(s3, data)]
    assert len(moved) > 4 * len(seed.splitlines())  # the old code's rejects stayed under 20 %
    turn = f"{base}/run-1/"
    uri = put_text(s3, f"{turn}answers/ground-truth.jsonl", jsonl(moved))
    with pytest.raises(AirflowFailException, match=rf"bucket.*{data['bucket']}.*{other}.*dataset_name.*was not changed"):
        merge_op(turn, answers_uris=[uri], cumulative_manifest_uri=cumulative).execute(ctx("r"))
    assert read_text(s3, cumulative) == seed
