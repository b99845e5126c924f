"""End-to-end: a review budget on the real DAG (dag.test() against the emulator): humans get exactly the
chosen images, each with why; the others are deferred, come back next turn and are not paid for again."""

from __future__ import annotations

import json

from .conftest import task_states, xcom
from .test_dag_e2e import read_lines, timed


def test_a_budget_defers_images_to_the_next_turn_without_paying_for_them_twice(loop_setup, run_dag, aws, emulator):
    # No training: the next turn runs the same version, so the deferred images' paid answers are reusable.
    setup = loop_setup(n_images=16, bad_files=False, review_budget=4, train=False, auto_accept_confidence=None)
    emulator.reset_stats()
    first = timed(run_dag, setup["run_conf"])
    assert str(first.state) == "success", task_states(first)
    summary = xcom(first, "summary")
    chosen = xcom(first, "selection.choose_images")
    assert summary["selection"] == "balanced" and summary["selected"] == chosen["selected"] == 4
    assert summary["deferred"] == chosen["deferred"] == 16 - 4 > 0
    assert summary["sent_to_humans"] == 4
    # The inference kept the signals selection reads, at the cost of reading each image once.
    shards = [xcom(first, "inference.detect_custom_labels", i) for i in range(2)]
    assert all(s["signals"] for s in shards) and sum(s["descriptor_bytes"] for s in shards) > 0

    picked = [json.loads(x) for x in read_lines(aws, chosen["for_review_uri"])]
    picked = {x["source-ref"]: x["selection"] for x in picked if x.get("selection")}
    assert sorted(r["rank"] for r in picked.values()) == [1, 2, 3, 4]
    assert all(r["reason"] and r["strategy"] == "balanced" for r in picked.values())
    answered = {json.loads(a)["source-ref"] for a in read_lines(aws, summary["outputs"]["answers"])}
    assert answered == set(picked)  # humans saw the selected images, and only those
    deferred = {json.loads(x)["source-ref"] for x in read_lines(aws, chosen["deferred_uri"])}
    assert len(deferred) == 12 and not deferred & answered
    # The report shows the choice: per reason and per label.
    report = xcom(first, "report")
    page = aws["s3"].get_object(Bucket=setup["bucket"], Key=report["report_uri"].split("/", 3)[3])["Body"].read().decode()
    assert 'data-table="selection-reasons"' in page and 'data-table="selection-labels"' in page
    calls_first = emulator.calls["Rekognition.DetectCustomLabels"]  # 16 images, and the throttled calls retried
    assert calls_first >= 16

    second = timed(run_dag, setup["run_conf"])
    assert str(second.state) == "success", task_states(second)
    again = xcom(second, "selection.choose_images")
    predicted = {json.loads(x)["source-ref"] for x in read_lines(aws, again["for_review_uri"])} | \
                {json.loads(x)["source-ref"] for x in read_lines(aws, again["deferred_uri"])}
    assert predicted == deferred  # every deferred image is a candidate again; the answered ones are not
    assert emulator.calls["Rekognition.DetectCustomLabels"] == calls_first  # their paid answers were reused
    assert again["selected"] == 4 and again["deferred"] == 8
