"""A turn with three annotators per task on Label Studio Community through the real DAG: the
disagreements go to a review project, and the reviewed answers are what the merge uses."""

from __future__ import annotations

import json


from .conftest import task_states, xcom
from .test_dag_e2e import read_lines, timed
from .test_dag_review_round import CREW


def test_label_studio_three_annotators_then_review_round(label_studio, loop_setup, run_dag, aws, emulator, ls_hook):
    from rekfeedback_local.annotator import run_in_background

    setup = loop_setup(n_images=6, bad_files=False, review_backend="label-studio", workers_per_object=3, train=False)
    # Each project gets what it asks for: three annotations per task, then one in the review project.
    stop = run_in_background(label_studio.url, label_studio.token, annotators=None, crew=CREW, seed=2,
                             endpoint_url=emulator.endpoint_url, interval=1.0)
    try:
        dag_run = timed(run_dag, setup["run_conf"])
    finally:
        stop()
    states = task_states(dag_run)
    assert str(dag_run.state) == "success", states
    first = xcom(dag_run, "human_review.label_studio_wait")
    pending = [json.loads(x) for x in read_lines(aws, first["pending_uri"])]
    assert pending and all(p["workers"] == 3 and p["agreement"] < 0.6 for p in pending)
    assert ls_hook.get_project(xcom(dag_run, "human_review.label_studio_review")["project_id"])["maximum_annotations"] == 3

    round_review = xcom(dag_run, "review_round.label_studio_review")
    assert "review" in round_review["project_title"] and round_review["project_id"]
    tasks = ls_hook.list_tasks(round_review["project_id"])
    # The reviewer sees the consolidated answer and every worker's answer as predictions.
    assert tasks and all(len(t["predictions"]) >= 3 for t in tasks)
    reviewed = [json.loads(x) for x in read_lines(aws, xcom(dag_run, "review_round.label_studio_wait")["answers_uri"])]
    assert {r["source-ref"] for r in reviewed} >= {p["source-ref"] for p in pending}
    assert all(r["consensus"]["status"] == "reviewed" and r["source"] == round_review["project_title"]
               for r in reviewed)
    merge = xcom(dag_run, "dataset.merge")
    manifest = {json.loads(x)["source-ref"] for x in read_lines(aws, merge["manifest_uri"])}
    assert {r["source-ref"] for r in reviewed} <= manifest and merge["answers"]["pending_agreement"] == 0
