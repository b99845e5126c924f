"""Several annotators per task on Label Studio Community (maximum_annotations), consolidated like Ground Truth's."""

from __future__ import annotations

import uuid

import pytest

from rekfeedback.core import answers as answerlib
from rekfeedback_local.annotator import annotate_project, s3_truth_reader
from rekfeedback.sensors.label_studio import LabelStudioReviewSensor
from tests.fixtures.label_studio import CONN_ID, context_for
from tests.fixtures.label_studio import read_s3, run_operator

pytestmark = pytest.mark.labelstudio

# One careful annotator, one who rejects everything, one who answers at random every time.
DISAGREEING = "ann=oracle:0.0,rob=reject-all:0,dan=careless:1.0"


def test_three_annotators_per_task_disagreements_pending(make_turn, ls_hook, s3):
    turn = make_turn(n=5)
    run_id = f"manual__{uuid.uuid4().hex[:8]}"
    out, _ = run_operator(turn, run_id, workers_per_object=3)
    project = ls_hook.get_project(out["project_id"])
    assert project["maximum_annotations"] == 3
    tasks = ls_hook.list_tasks(out["project_id"])
    assert tasks and all(t["overlap"] == 3 for t in tasks)  # Community hands each task to three annotators

    sensor = LabelStudioReviewSensor(task_id="wait", review=out, label_studio_conn_id=CONN_ID, poll_interval=1,
                                     agreement_threshold=0.6)
    truth = s3_truth_reader(s3)
    # Two of three annotators answered every task: not done yet (Label Studio counts distinct annotators).
    annotate_project(ls_hook, out["project_id"], annotators=2, crew=DISAGREEING, truth=truth, seed=1)
    assert ls_hook.progress(out["project_id"])["annotated"] == 0 and not sensor._done(out["project_id"])
    annotate_project(ls_hook, out["project_id"], annotators=3, crew=DISAGREEING, truth=truth, seed=1)
    assert ls_hook.progress(out["project_id"])["annotated"] == len(tasks) and sensor._done(out["project_id"])

    result = sensor.execute(context_for(run_id))
    verified = answerlib.loads_jsonl(read_s3(s3, result["answers_uri"]))
    pending = answerlib.loads_jsonl(read_s3(s3, result["pending_uri"]))
    assert result["counts"]["pending"] == len(pending) and len(verified) + len(pending) == len(tasks)
    assert pending, "an annotator who rejects everything and one who answers at random leave disagreements"
    for a in verified + pending:
        assert a["workers"] == 3 and a["agreement"] in (0.0, 0.3333, 0.6667, 1.0)
        assert len(a["consensus"]["box_agreement"]) == len(a["boxes"])
    assert all(a["consensus"]["status"] == "pending" and len(a["consensus"]["candidates"]) == 3 for a in pending)
    assert all(a["consensus"]["status"] == "verified" and a["agreement"] >= 0.6 for a in verified)
    # The annotations came from three distinct users, as Label Studio's overlap requires.
    exported = ls_hook.export_tasks(out["project_id"])
    assert all(len({a["completed_by"] for a in t["annotations"]}) == 3 for t in exported)
