"""The small Python tasks between a turn's operators: how many inference shards, whether to train, ask for
approval or serve the new champion, and the turn's summary. Each decides from the XComs of earlier tasks;
the task ids they return or read are the DAG's (dags/rekognition_feedback_loop.py)."""

from __future__ import annotations

import logging

from airflow.sdk import task

log = logging.getLogger("airflow.task")


@task
def shards(preflight_result: dict) -> list[int]:
    return list(range(int(preflight_result["config"]["shard_count"])))


@task.branch
def train_or_not(preflight_result: dict, merge_result: dict) -> str:
    from rekfeedback.core.champion import should_train

    config = preflight_result["config"]
    if not config["train"]:
        return "champion.gate"
    trains, why = should_train(config.get("min_new_labels"), int(preflight_result.get("verified_since_champion") or 0),
                               int(((merge_result or {}).get("answers") or {}).get("applied_human") or 0))
    log.info("%s", why)
    return "training.train_and_compare" if trains else "champion.gate"


@task.branch
def approve_or_not(gate_result: dict) -> str:
    return "champion.approval" if gate_result.get("needs_approval") else "champion.record"


@task.branch
def serve_or_not(record_result: dict, preflight_result: dict) -> str:
    # Blue/green only for a champion something relies on: it was RUNNING before the turn.
    config = preflight_result["config"]
    was_running = preflight_result.get("champion_status_before") == "RUNNING"
    if config.get("serve_champion") and record_result.get("promoted") and was_running:
        return "champion.start_new"
    return "champion.prune"


@task(trigger_rule="none_failed_min_one_success")
def summary(ti=None) -> dict:
    """The turn at a glance: logged, and returned for the UI and the demo."""
    from rekfeedback.core.turn_summary import summarize

    preflight_result = ti.xcom_pull(task_ids="preflight") or {}
    shard_count = int((preflight_result.get("config") or {}).get("shard_count") or 0)
    inference = ti.xcom_pull(task_ids="inference.detect_custom_labels", map_indexes=list(range(shard_count)))
    collected_review = ti.xcom_pull(task_ids="human_review.answers") or {}
    figures = summarize(
        preflight=preflight_result,
        start=ti.xcom_pull(task_ids="model.start"),
        inference=[i for i in (inference or []) if i],
        stop=ti.xcom_pull(task_ids="model.stop"),
        review=collected_review.get("review"),
        wait=collected_review.get("wait"),
        merge=ti.xcom_pull(task_ids="dataset.merge"),
        training=ti.xcom_pull(task_ids="training.train_and_compare"),
        report=ti.xcom_pull(task_ids="report"),
        champion=ti.xcom_pull(task_ids="champion.record"),
        pruned=ti.xcom_pull(task_ids="champion.prune"),
        selection=ti.xcom_pull(task_ids="selection.choose_images"),
        review_round=ti.xcom_pull(task_ids="review_round.reviewed"),
    )
    for key, value in figures.items():
        log.info("%s: %s", key, value)
    return figures
