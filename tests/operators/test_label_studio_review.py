"""A turn through a real Label Studio: tasks with predictions, simulated annotators, normalized answers."""

from __future__ import annotations

import json
import uuid

import pytest

from rekfeedback.core import answers as answerlib
from rekfeedback.core import label_studio as lsfmt
from rekfeedback_local.annotator import annotate_project, s3_truth_reader
from rekfeedback.operators.label_studio import LabelStudioReviewOperator
from rekfeedback.sensors.label_studio import LabelStudioReviewSensor
from tests.fixtures.label_studio import CONN_ID, context_for, read_s3, run_operator

pytestmark = pytest.mark.labelstudio


def test_turn_tasks_annotated_collected_and_merged(make_turn, ls_hook, s3, tmp_path):
    turn = make_turn(n=6, parts=2)
    run_id = f"manual__{uuid.uuid4().hex[:8]}"
    out, ctx = run_operator(turn, run_id, predictions_uris=f"{turn['turn']}/predictions/")
    human = [line for line in turn["lines"] if line["labels"]]
    assert out["backend"] == "label-studio" and out["counts"]["human"] == len(human)
    assert ctx["ti"].xcoms["label_studio_project"]["url"] == out["project_url"]

    # Predictions are visible through the API: one task per image, the model's boxes as percent rectangles.
    tasks = ls_hook.list_tasks(out["project_id"])
    assert sorted(t["data"][lsfmt.SOURCE_KEY] for t in tasks) == sorted(line["source-ref"] for line in human)
    by_ref = {line["source-ref"]: line for line in human}
    for task in tasks:
        pred = task["predictions"][0]
        line = by_ref[task["data"][lsfmt.SOURCE_KEY]]
        assert pred["model_version"] == "shapes.v1"
        assert len(pred["result"]) == len(line["labels"])
        first, model = pred["result"][0], line["labels"][0]
        assert first["value"]["rectanglelabels"] == [model["name"]]
        assert first["value"]["x"] == pytest.approx(100 * model["box"]["left"], abs=0.5)
        assert first["score"] == pytest.approx(model["confidence"] / 100, abs=1e-3)
        assert task["data"]["image"].startswith("http") and "Signature" in task["data"]["image"]
    project_json = json.loads(read_s3(s3, f"{turn['turn']}/review/label-studio/project.json"))
    assert project_json["project_id"] == out["project_id"] and len(project_json["tasks"]) == len(human)

    # Three simulated annotators (oracle, 20% errors) answer every task through the API.
    counts = annotate_project(ls_hook, out["project_id"], policy="oracle", error_rate=0.2, annotators=3, seed=5,
                              truth=s3_truth_reader(s3))
    assert counts["created"] == 3 * len(human)
    assert annotate_project(ls_hook, out["project_id"], annotators=3, truth=s3_truth_reader(s3))["created"] == 0

    sensor = LabelStudioReviewSensor(task_id="wait", review=out, label_studio_conn_id=CONN_ID, poll_interval=1)
    result = sensor.execute(context_for(run_id))  # all annotated: completes without deferring
    pending = result["counts"]["pending"]  # three oracles with 20% errors sometimes disagree: below the threshold
    # The same count keys as the Ground Truth sensor's for the same things, then Label Studio's own.
    assert result["counts"] == {"answers": len(human) - pending, "unresolved": 0, "pending": pending,
                                "tasks": len(human), "annotations": 3 * len(human)}
    assert read_s3(s3, result["unresolved_uri"]) == ""
    verified = answerlib.loads_jsonl(read_s3(s3, result["answers_uri"]))
    held = answerlib.loads_jsonl(read_s3(s3, result["pending_uri"]))
    assert len(held) == pending and all(a["agreement"] < 0.6 for a in held)
    answers = verified + held
    assert len(answers) == len(human) and all(a["workers"] == 3 for a in answers)
    assert all(a["backend"] == "label-studio" and a["source"] == out["project_title"] for a in answers)
    assert {round(a["agreement"], 2) for a in answers} <= {0.0, 0.33, 0.67, 1.0}
    # The majority of three oracles with 20% errors mostly finds the truth: the model's wrong "star" boxes get rejected.
    exact = sum(a["labels"] == sorted(set(turn["truth"][a["source-ref"]]["labels"])) for a in answers)
    assert exact >= len(answers) // 2
    fake_stars = [line["source-ref"] for line in human if any(lab["confidence"] == 51.0 for lab in line["labels"])]
    for a in answers:
        if a["source-ref"] in fake_stars and "star" not in turn["truth"][a["source-ref"]]["labels"]:
            assert "star" in a["rejected"]

    # The merge accepts these answers as they are.
    from rekfeedback.core.merge import merge_manifest

    written, rejects = [], []
    summary = merge_manifest(answers=[(result["answers_uri"], read_s3(s3, result["answers_uri"]).splitlines())],
                             write_manifest=written.append, write_reject=rejects.append)
    assert rejects == [] and summary["rejects"] == 0
    assert summary["answers"]["applied_human"] == len(human) - pending


def test_retried_operator_and_sensor_duplicate_nothing(make_turn, ls_hook, s3):
    turn = make_turn(n=6, parts=2)
    run_id = f"manual__{uuid.uuid4().hex[:8]}"
    # First attempt "dies" after importing only the first shard's images; the retry sees both shards.
    first, _ = run_operator(turn, run_id, predictions_uris=turn["predictions_uris"][:1])
    n_first = len(ls_hook.list_tasks(first["project_id"]))
    retry, _ = run_operator(turn, run_id)
    again, _ = run_operator(turn, run_id)
    assert first["project_id"] == retry["project_id"] == again["project_id"]
    assert [p["id"] for p in ls_hook.list_projects() if p["title"] == first["project_title"]] == [first["project_id"]]
    refs = [t["data"][lsfmt.SOURCE_KEY] for t in ls_hook.list_tasks(first["project_id"])]
    human = [line["source-ref"] for line in turn["lines"] if line["labels"]]
    assert 0 < n_first < len(refs) and sorted(refs) == sorted(human)  # nothing twice, nothing missing

    annotate_project(ls_hook, first["project_id"], policy="accept-all")
    sensor = LabelStudioReviewSensor(task_id="wait", review=again, label_studio_conn_id=CONN_ID)
    one = sensor.execute(context_for(run_id))
    body_one = read_s3(s3, one["answers_uri"])
    two = LabelStudioReviewSensor(task_id="wait", review=again, label_studio_conn_id=CONN_ID).execute(context_for(run_id))
    assert one == two and read_s3(s3, two["answers_uri"]) == body_one
    assert len(body_one.splitlines()) == len(human)
    # accept-all confirms every prediction: nothing rejected, nothing added.
    for a in answerlib.loads_jsonl(body_one):
        assert a["rejected"] == [] and a["added"] == [] and a["agreement"] == 1.0


def test_empty_predictions_create_nothing(make_turn, ls_hook, s3):
    turn = make_turn(n=1)
    key = f"{turn['turn'][len('s3://' + turn['bucket']) + 1:]}/predictions/empty.jsonl"
    s3.put_object(Bucket=turn["bucket"], Key=key, Body=b"")
    before = len(ls_hook.list_projects())
    out, _ = run_operator(turn, "manual__empty", predictions_uris=[f"s3://{turn['bucket']}/{key}"])
    assert out["project_id"] is None and sum(out["counts"].values()) == 0
    assert len(ls_hook.list_projects()) == before
    result = LabelStudioReviewSensor(task_id="w", review=out, label_studio_conn_id=CONN_ID).execute(context_for("x"))
    assert result["counts"]["answers"] == 0 and read_s3(s3, result["answers_uri"]) == ""


def test_routing_auto_accepts_confident_images(make_turn, ls_hook, s3):
    turn = make_turn(n=6)
    out, _ = run_operator(turn, f"manual__{uuid.uuid4().hex[:8]}", auto_accept_threshold=60.0, audit_rate=0.0)
    auto = answerlib.loads_jsonl(read_s3(s3, out["auto_accepted_uri"]))
    assert len(auto) == out["counts"]["auto_accept"] and all(a["backend"] == "auto-accept" for a in auto)
    sent = out["counts"]["human"] + out["counts"]["audit"]
    assert len(ls_hook.list_tasks(out["project_id"])) == sent if sent else out["project_id"] is None
    assert sent + out["counts"]["auto_accept"] + out["counts"]["unlabelled"] == len(turn["lines"])
