"""A turn with three workers per image through the real DAG: disagreements go to the review round,
and the reviewed answers are what the merge uses (issue 17's Done-when, Ground Truth backend)."""

from __future__ import annotations

import json

from .conftest import task_states, xcom
from .test_dag_e2e import read_lines, timed

# Two careful annotators and one who answers at random every time: some images end up contested.
CREW = "ann=oracle:0.0,rob=reject-all:0,dan=careless:1.0"


def test_disagreements_go_to_the_review_round_and_the_merge_uses_the_reviewed_answers(
        loop_setup, run_dag, aws, emulator, emulator_knobs):
    setup = loop_setup(n_images=10, bad_files=False, workers_per_object=3, train=False, box_task="adjustment")
    emulator_knobs(annotators=CREW)
    try:
        dag_run = timed(run_dag, setup["run_conf"])
    finally:
        emulator_knobs(annotators="")
    states = task_states(dag_run)
    assert str(dag_run.state) == "success", states
    first = xcom(dag_run, "human_review.ground_truth_wait")
    pending = [json.loads(x) for x in read_lines(aws, first["pending_uri"])]
    assert pending and first["counts"]["pending"] == len(pending)
    assert all(p["agreement"] < 0.6 and p["consensus"]["status"] == "pending" for p in pending)

    check = xcom(dag_run, "review_round.check")
    assert check["counts"]["pending"] == len(pending) and check["counts"]["to_review"] >= len(pending)
    assert states["review_round.ground_truth_wait"] == "success"
    assert states["review_round.label_studio_review"] == "skipped"
    flags = [json.loads(x) for x in read_lines(aws, check["flags_uri"])]
    assert {p["source-ref"] for p in pending} <= {f["source-ref"] for f in flags if f["action"] == "review"}

    round_wait = xcom(dag_run, "review_round.ground_truth_wait")
    reviewed = [json.loads(x) for x in read_lines(aws, round_wait["answers_uri"])]
    assert {r["source-ref"] for r in reviewed} >= {p["source-ref"] for p in pending}
    assert all(r["consensus"]["status"] == "reviewed" and r["workers"] == 1 for r in reviewed)
    final = xcom(dag_run, "review_round.reviewed")
    assert round_wait["answers_uri"] in final["answers_uris"] and first["answers_uri"] not in final["answers_uris"]

    # The merge applied the reviewed answers: every contested image is in the manifest, labelled by the
    # review job; no pending answer was merged as verified.
    merge = xcom(dag_run, "dataset.merge")
    assert merge["answers"]["pending_agreement"] == 0
    lines = {json.loads(x)["source-ref"]: json.loads(x) for x in read_lines(aws, merge["manifest_uri"])}
    jobs = {r["source-ref"]: r["source"] for r in reviewed}
    for ref, job in jobs.items():
        meta = [v for k, v in lines[ref].items() if k.endswith("-metadata") and isinstance(v, dict)]
        assert any(m.get("job-name", "").endswith(job) for m in meta), (ref, lines[ref])
    summary = xcom(dag_run, "summary")
    assert summary["pending_agreement"] == len(pending) and summary["sent_to_review_round"] == len(reviewed)
