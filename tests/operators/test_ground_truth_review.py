"""Ground Truth operator + sensor against the emulator over HTTP: each job kind, end to end."""

from __future__ import annotations

import boto3
import pytest
from airflow.sdk import DAG
from airflow.sdk.exceptions import AirflowFailException

from rekfeedback.operators import GroundTruthVerificationOperator
from rekfeedback.sensors import GroundTruthLabelingJobSensor
from tests.fixtures import ground_truth as helpers
from tests.fixtures.ground_truth import make_operator, make_sensor


def test_classification_verification_and_labelling(emulator, emulator_knobs, s3_bucket, account):
    emulator_knobs(workforce_policy="oracle", error_rate=0.0, workers_per_object=None)
    data = helpers.make_predictions(s3_bucket, "classification", n=8)
    op = make_operator(data, account, "gt_cls", batch_size=3, label_unpredicted=True, workers_per_object=3)
    result = op.execute(helpers.context())

    assert result["backend"] == "ground-truth"
    assert [j["kind"] for j in result["jobs"]] == ["verify-labels", "label-classes"]
    assert result["counts"] == {"human": 6, "audit": 0, "auto_accept": 0, "to_label": 2, "unlabelled": 1}
    assert [(j["images"], j["objects"]) for j in result["jobs"]] == [(6, 2), (2, 1)]
    sm = boto3.client("sagemaker")
    desc = sm.describe_labeling_job(LabelingJobName=result["jobs"][0]["name"])
    assert desc["HumanTaskConfig"]["PreHumanTaskLambdaArn"] == account["pre_annotation_lambda_arn"]
    assert desc["HumanTaskConfig"]["NumberOfHumanWorkersPerDataObject"] == 3
    assert desc["LabelAttributeName"] == "verified-labels"
    assert desc["HumanTaskConfig"]["UiConfig"]["UiTemplateS3Uri"].endswith(
        "/review/ground-truth/templates/verification.liquid.html")
    template = helpers.read_bytes(desc["HumanTaskConfig"]["UiConfig"]["UiTemplateS3Uri"]).decode()
    assert "grant_read_access" in template and 'name="answer"' in template
    unlabelled = helpers.read_lines(result["unlabelled_uri"])
    assert [(u["source-ref"].rsplit("/", 1)[1], u["reason"]) for u in unlabelled] == [("broken.jpg", "error")]
    assert helpers.read_lines(result["auto_accepted_uri"]) == []

    sensor = make_sensor(result, "gt_cls")
    out = sensor.execute(helpers.context())
    answers = helpers.read_lines(out["answers_uri"])
    assert out["counts"]["answers"] == 8 and out["counts"]["unresolved"] == 0 and out["counts"]["jobs"] == 2
    truth = data["truth"]
    assert sorted(a["source-ref"] for a in answers) == sorted(truth)
    for a in answers:
        # The oracle answers the truth, so the consolidated answers are the truth.
        assert a["labels"] == truth[a["source-ref"]]["labels"], a
        assert a["workers"] == 3 and a["agreement"] == 1.0 and a["human"] is True and a["kind"] == "classification"
        assert a["source"] in {j["name"] for j in result["jobs"]} and a["answered_at"].endswith("Z")
    predicted = {l["source-ref"]: [x["name"] for x in l["labels"]] for l in data["lines"]}
    for a in answers:
        assert sorted(a["confirmed"] + a["rejected"]) == sorted(predicted[a["source-ref"]])
        assert set(a["added"]) == set(a["labels"]) - set(predicted[a["source-ref"]])
    assert any(a["rejected"] for a in answers) and any(a["added"] for a in answers)

    # Rerunning the collect step writes the same bytes.
    first = helpers.read_bytes(out["answers_uri"])
    assert make_sensor(result, "gt_cls").execute(helpers.context()) == out
    assert helpers.read_bytes(out["answers_uri"]) == first

    # Every image of the turn once, with its route, in review/items.jsonl: what the sensor joined the answers to.
    items = helpers.read_lines(result["items_uri"])
    assert result["items_uri"] == data["turn"] + "/review/items.jsonl"
    assert sorted(i["source-ref"] for i in items if i["route"] != "unlabelled") == sorted(truth)
    assert sorted(i["route"] for i in items) == ["human"] * 6 + ["to-label"] * 2 + ["unlabelled"]
    # Without them the sensor says what to do: it never recovers the items from the jobs' input manifests.
    bucket, key = result["items_uri"][len("s3://"):].split("/", 1)
    boto3.client("s3").delete_object(Bucket=bucket, Key=key)
    with pytest.raises(AirflowFailException, match="review items .* are missing; clear the review task"):
        make_sensor(result, "gt_cls").execute(helpers.context())


@pytest.mark.parametrize("box_task, kind", [("adjustment", "adjust-boxes"), ("verification", "verify-boxes")])
def test_bounding_box_jobs(emulator, emulator_knobs, s3_bucket, account, box_task, kind):
    emulator_knobs(workforce_policy="oracle", error_rate=0.0, workers_per_object=None)
    data = helpers.make_predictions(s3_bucket, "boxes", n=8)
    op = make_operator(data, account, f"gt_{box_task}", box_task=box_task, label_unpredicted=True)
    result = op.execute(helpers.context())
    assert [j["kind"] for j in result["jobs"]] == [kind, "label-boxes"]
    desc = boto3.client("sagemaker").describe_labeling_job(LabelingJobName=result["jobs"][0]["name"])
    suffix = "AdjustmentBoundingBox" if box_task == "adjustment" else "VerificationBoundingBox"
    assert desc["HumanTaskConfig"]["PreHumanTaskLambdaArn"].endswith(f":function:PRE-{suffix}")

    out = make_sensor(result, f"gt_{box_task}").execute(helpers.context())
    answers = {a["source-ref"]: a for a in helpers.read_lines(out["answers_uri"])}
    truth = data["truth"]
    predicted = {l["source-ref"]: l["labels"] for l in data["lines"]}
    unresolved = helpers.read_lines(out["unresolved_uri"])
    for ref, t in truth.items():
        if box_task == "verification" and predicted[ref] and ref not in answers:
            # A wrong prediction judged "incorrect": listed with the reason, not passed off as an answer.
            assert any(u["source-ref"] == ref and "incorrect" in u["reason"] for u in unresolved)
            continue
        a = answers[ref]
        assert a["kind"] == "boxes" and a["labels"] == t["labels"], (a, t)
        assert sorted(b["label"] for b in a["boxes"]) == sorted(b["label"] for b in t["boxes"])
        assert len(a["confirmed"]) + len(a["rejected"]) == len(predicted[ref])
        if not predicted[ref]:
            assert a["confirmed"] == [] and {b["status"] for b in a["boxes"]} <= {"added"}
    if box_task == "adjustment":
        statuses = {b["status"] for a in answers.values() for b in a["boxes"]}
        assert {"unchanged", "added"} <= statuses
        assert any(a["rejected"] for a in answers.values())
    else:
        assert unresolved, "the wrong predictions should have been judged incorrect"


def test_routing_auto_accept_and_unlabelled(emulator, s3_bucket, account):
    data = helpers.make_predictions(s3_bucket, "classification", n=8)
    op = make_operator(data, account, "gt_route", auto_accept_threshold=90, audit_rate=0.0,
                       predictions_uris=data["predictions_prefix"])
    result = op.execute(helpers.context())
    assert result["counts"] == {"human": 4, "audit": 0, "auto_accept": 2, "to_label": 0, "unlabelled": 3}
    auto = helpers.read_lines(result["auto_accepted_uri"])
    assert len(auto) == 2 and all(a["backend"] == "auto-accept" and a["human"] is False for a in auto)
    assert all(a["labels"] == data["truth"][a["source-ref"]]["labels"] for a in auto)
    unl = helpers.read_lines(result["unlabelled_uri"])
    assert sorted(u["reason"] for u in unl) == ["error", "no-prediction", "no-prediction"]
    assert [j["images"] for j in result["jobs"]] == [4]


def test_empty_predictions_create_no_job(emulator, s3_bucket, account):
    s3 = boto3.client("s3")
    s3.put_object(Bucket=s3_bucket, Key="turn/predictions/part-00000-of-00001.jsonl", Body=b"")
    emulator.reset_stats()
    data = {"predictions_uri": f"s3://{s3_bucket}/turn/predictions/part-00000-of-00001.jsonl",
            "turn": f"s3://{s3_bucket}/turn"}
    result = make_operator(data, account, "gt_empty").execute(helpers.context())
    assert result["jobs"] == [] and set(result["counts"].values()) == {0}
    assert emulator.calls["SageMaker.CreateLabelingJob"] == 0
    out = make_sensor(result, "gt_empty").execute(helpers.context())
    assert out["counts"]["answers"] == 0 and helpers.read_bytes(out["answers_uri"]) == b""
