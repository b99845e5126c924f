"""The loop that loops (issue 14): turns with no ARN in the conf run the champion the DAG promoted.

Real DAG, `dag.test()`, emulator. The approval is answered the way Airflow answers it: the Core
API's Human-in-the-loop handler (what the Required Actions page and `PATCH .../hitlDetails` call),
or, for a timeout, the scheduler's AWAITING_INPUT sweep; both on the metadata database the run uses.
"""

from __future__ import annotations

import json
import logging
import threading
from types import SimpleNamespace

from rekfeedback.core.paths import parse_s3_uri
from rekfeedback.core.arns import parse_project_version_arn
from tests.fixtures.waits import version_gone, version_reaches

from .conftest import task_states, xcom

APPROVAL = "champion.approval"


def add_images(aws, setup: dict, n: int, turn: int) -> None:
    from rekfeedback_local.demo import add_images as land

    land(aws["s3"], setup["bucket"], setup["input_uri"], n, turn)


def read_record(aws, setup: dict) -> dict:
    loc = parse_s3_uri(f"{setup['output_uri']}rekognition_feedback_loop/dataset/champion.json")
    return json.loads(aws["s3"].get_object(Bucket=loc.bucket, Key=loc.key)["Body"].read())


def statuses(aws, setup: dict) -> dict[str, str]:
    found = aws["rekognition"].describe_project_versions(ProjectArn=setup["project_arn"])
    return {d["ProjectVersionArn"]: d["Status"] for d in found["ProjectVersionDescriptions"]}


def wait_status(aws, setup: dict, arn: str, wanted: str) -> None:
    version_reaches(aws["rekognition"], setup["project_arn"], parse_project_version_arn(arn).version_name, wanted)


def wait_gone(aws, setup: dict, arn: str) -> None:
    version_gone(aws["rekognition"], setup["project_arn"], parse_project_version_arn(arn).version_name)


class Answer:
    """Answers the approval of the next run from a thread: "Approve", "Reject", or None for a timeout."""

    def __init__(self, choice: str | None):
        self.choice, self.error, self.asked = choice, None, threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join(timeout=30)
        if self.error:
            raise self.error

    def _run(self) -> None:
        from airflow.models.taskinstance import TaskInstance
        from airflow.utils.session import create_session
        from airflow.utils.state import TaskInstanceState

        try:
            while not self._stop.is_set():
                with create_session() as session:
                    ti = session.query(TaskInstance).filter(TaskInstance.task_id == APPROVAL,
                                                            TaskInstance.state == TaskInstanceState.AWAITING_INPUT).first()
                    if ti is not None:
                        self.asked.set()
                        self._respond(ti, session)
                        if self.choice is not None:
                            return
                    elif self.asked.is_set():
                        return  # the sweep resolved it
                self._stop.wait(0.2)
        except Exception as exc:  # noqa: BLE001 - re-raised in the test's thread
            self.error = exc

    def _respond(self, ti, session) -> None:
        if self.choice is None:
            from airflow.jobs.scheduler_job_runner import SchedulerJobRunner

            # What the scheduler does every loop: resolve AWAITING_INPUT tasks past their deadline.
            SchedulerJobRunner.check_awaiting_input_timeouts(SimpleNamespace(log=logging.getLogger("sweep")),
                                                             session=session)
            return
        from airflow.api_fastapi.core_api.datamodels.hitl import UpdateHITLDetailPayload
        from airflow.api_fastapi.core_api.routes.public.hitl import update_hitl_detail

        user = SimpleNamespace(get_id=lambda: "reviewer-1", get_name=lambda: "Ada Reviewer")
        update_hitl_detail(dag_id=ti.dag_id, dag_run_id=ti.run_id, task_id=ti.task_id,
                           update_hitl_detail_payload=UpdateHITLDetailPayload(chosen_options=[self.choice]),
                           user=user, session=session, map_index=ti.map_index)


def test_three_turns_without_an_arn_advance_refuse_and_skip(loop_setup, run_dag, aws, emulator, emulator_knobs,
                                                            monkeypatch):
    setup = loop_setup(n_images=20, keep_versions=0, require_approval=True, serve_champion=True)
    v1 = setup["project_version_arn"]
    conf = dict(setup["run_conf"], project_version_arn="")  # no ARN in the conf, as a nightly run
    monkeypatch.setenv("REKFEEDBACK_PROJECT_VERSION_ARN", v1)  # the first run seeds the champion from it
    rek = aws["rekognition"]
    rek.start_project_version(ProjectVersionArn=v1, MinInferenceUnits=1)  # something relies on v1
    wait_status(aws, setup, v1, "RUNNING")

    # Turn 1: the seed serves; the challenger passes the gate, a person approves, it becomes champion
    # and, as v1 was running, takes over from it (serve_champion).
    with Answer("Approve") as answer:
        first = run_dag(conf)
    assert answer.asked.is_set()
    assert str(first.state) == "success", task_states(first)
    s1 = xcom(first, "summary")
    assert s1["served_by"] == v1
    assert s1["champion_decision"] == "promoted", s1["champion_reasons"]
    assert any("approved by Ada Reviewer" in r for r in s1["champion_reasons"])
    champion = s1["new_version_arn"]
    assert s1["champion"] == champion != v1
    gate = xcom(first, "champion.gate")
    assert "| **F1 overall** |" in gate["approval_body"] and "report/index.html" in gate["approval_body"]
    now = statuses(aws, setup)
    assert now[v1] == "STOPPED" and now[champion] == "RUNNING"
    record = read_record(aws, setup)
    assert record["champion"]["project_version_arn"] == champion
    assert record["champion"]["promoted_by_run"] == first.run_id
    assert record["champion"]["per_label"] and record["champion"]["f1"] == s1["f1_after"]
    assert [h["project_version_arn"] for h in record["history"]] == [v1]

    # Turn 2: a systematic labelling mistake makes one label regress; the champion stays (no approval
    # is asked), and the losing challenger goes (keep_versions=0), while the seed and the champion stay.
    add_images(aws, setup, 8, turn=2)
    emulator_knobs(mislabel_training="circle>square")
    second = run_dag(conf)
    assert str(second.state) == "success", task_states(second)
    assert task_states(second)[APPROVAL] == "skipped"
    s2 = xcom(second, "summary")
    assert s2["served_by"] == champion  # the champion the DAG promoted, not the Variable
    assert s2["champion_decision"] == "kept" and s2["champion"] == champion
    assert any("label(s) dropped by more than 0.05: circle F1" in r for r in s2["champion_reasons"]), s2["champion_reasons"]
    loser = s2["new_version_arn"]
    assert xcom(second, "champion.prune")["deleted"] == [loser]
    wait_gone(aws, setup, loser)
    assert {v1, champion} <= set(statuses(aws, setup))
    assert statuses(aws, setup)[champion] == "RUNNING"  # the loop did not start it this turn: left alone

    # Turn 3: too few new verified images since the champion was trained: no training is paid for.
    emulator_knobs(mislabel_training="")
    add_images(aws, setup, 4, turn=3)
    emulator.reset_stats()
    third = run_dag(dict(conf, min_new_labels=500))
    assert str(third.state) == "success", task_states(third)
    assert task_states(third)["training.train_and_compare"] == "skipped"
    assert emulator.calls["Rekognition.CreateProjectVersion"] == 0
    s3 = xcom(third, "summary")
    assert s3["champion_decision"] == "training skipped" and s3["champion"] == champion
    (reason,) = s3["champion_reasons"]
    since = sum(xcom(run, "dataset.merge")["answers"]["applied_human"] for run in (second, third))
    assert f"{since} new human-verified image(s)" in reason and "min_new_labels 500" in reason

    timeline = read_record(aws, setup)["turns"]
    assert [(t["served_by"], t["decision"]) for t in timeline] == [
        (v1, "promoted"), (champion, "kept"), (champion, "training skipped")]
    assert [t["decision"] for t in s3["champion_timeline"]] == ["promoted", "kept", "training skipped"]
    figures = json.loads(aws["s3"].get_object(
        Bucket=setup["bucket"], Key=parse_s3_uri(s3["outputs"]["report"]).key.replace("index.html", "figures.json"))["Body"].read())
    assert [t["decision"] for t in figures["champion"]["timeline"]] == ["promoted", "kept", "training skipped"]
    rek.stop_project_version(ProjectVersionArn=champion)
    wait_status(aws, setup, champion, "STOPPED")


def test_an_unanswered_approval_keeps_the_champion(loop_setup, run_dag, aws):
    # Per-label noise of a small turn must not refuse the promotion before a person sees it.
    setup = loop_setup(n_images=20, require_approval=True, max_label_regression=1.0,
                       approval_timeout_hours=0.0003)  # about a second
    v1 = setup["project_version_arn"]
    with Answer(None) as answer:  # nobody answers; the scheduler's sweep applies the default (Reject)
        timed_out = run_dag(setup["run_conf"])
    assert answer.asked.is_set()
    assert str(timed_out.state) == "success", task_states(timed_out)
    assert task_states(timed_out)[APPROVAL] == "success"
    s1 = xcom(timed_out, "summary")
    assert s1["served_by"] == v1 and s1["champion_decision"] == "rejected" and s1["champion"] == v1
    assert any("approval timed out" in r for r in s1["champion_reasons"])
    assert xcom(timed_out, "champion.approval")["chosen_options"] == ["Reject"]
    record = read_record(aws, setup)
    assert record["champion"]["project_version_arn"] == v1 and record["history"] == []
    assert [t["decision"] for t in record["turns"]] == ["rejected"]
