"""Human review, wired once for both rounds of a turn.

The first round (`human_review`) sends the selected predictions to people; the review round (`review_round`)
sends the answers the check flagged to one reviewer per image. Both are the same tasks: a branch picks the
configured backend, Ground Truth or Label Studio (review operator, then its deferred wait), and a join collects
what that backend produced. Only the settings differ, so the DAG passes them in.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from airflow.sdk import TaskGroup, task

from rekfeedback.operators import GroundTruthVerificationOperator, LabelStudioReviewOperator
from rekfeedback.sensors import GroundTruthLabelingJobSensor, LabelStudioReviewSensor
from rekfeedback.turn.templates import LABELS, result_of, setting

BACKENDS = {"ground-truth": "ground_truth", "label-studio": "label_studio"}
# People take hours or days; a wait past this fails the task (its retry resumes the same jobs).
REVIEW_TIMEOUT = timedelta(hours=72).total_seconds()


@task.branch
def choose_backend(group_id: str, join_task_id: str, preflight_result: dict, check_result: dict | None = None) -> list:
    """The configured backend's review, and the join; only the join when the check left nothing to review."""
    join = f"{group_id}.{join_task_id}"
    if check_result is not None and not check_result.get("review_predictions_uri"):
        return [join]
    name = BACKENDS.get(preflight_result["config"]["review_backend"], "label_studio")
    return [f"{group_id}.{name}_review", join]


@task(trigger_rule="none_failed_min_one_success")
def collect_answers(group_id: str, check_result: dict | None = None, ti=None) -> dict:
    """What the chosen backend produced, whichever it was: the merge's inputs. After a check, its answers (the
    first round's, minus those sent to review) come first and the reviewed ones follow."""
    out: dict[str, Any] = {"answers_uris": [], "auto_accepted_uris": [], "unlabelled_uris": [],
                           "unresolved_uris": [], "pending_uris": []}
    if check_result is not None:
        out["check"] = check_result
        if check_result.get("answers_uri"):
            out["answers_uris"].append(check_result["answers_uri"])
    for name in BACKENDS.values():
        review = ti.xcom_pull(task_ids=f"{group_id}.{name}_review")
        if not review:  # the backend not chosen (skipped), or nothing was sent
            continue
        wait = ti.xcom_pull(task_ids=f"{group_id}.{name}_wait") or {}
        out["review"], out["wait"] = review, wait
        # pending: disagreeing workers, not merged but reported; unresolved: no answer after every job
        for key in ("answers", "unresolved", "pending"):
            if wait.get(f"{key}_uri"):
                out[f"{key}_uris"].append(wait[f"{key}_uri"])
        for key in ("auto_accepted", "unlabelled"):
            if review.get(f"{key}_uri"):
                out[f"{key}_uris"].append(review[f"{key}_uri"])
    return out


def review_by_humans(
    group: TaskGroup,
    preflight_result,
    *,
    predictions_uris: str,
    output_prefix: str,
    join_task_id: str,
    poll_seconds: int,
    review: dict,
    ground_truth: dict | None = None,
    wait: dict | None = None,
    label_studio_wait: dict | None = None,
    check_result=None,
):
    """Add one round of human review to `group` (called inside `with group:`); returns the join's output.

    `review`: what both review operators take beyond the predictions (routing, workers per object, round
    name); `ground_truth`: what only the labeling job takes; `wait`: what both waits take;
    `label_studio_wait`: what only the Label Studio wait takes; `check_result`: the answer check's output,
    for a round that reviews only what it flagged.
    """
    group_id = group.group_id
    common = dict(predictions_uris=predictions_uris, output_prefix=output_prefix, labels=LABELS,
                  aws_conn_id=setting("aws_conn_id"), **review)
    waits = dict(timeout=REVIEW_TIMEOUT, aws_conn_id=setting("aws_conn_id"), **(wait or {}))
    gt_review = GroundTruthVerificationOperator(
        task_id="ground_truth_review", **common,
        workteam_arn=setting("workteam_arn"), role_arn=setting("role_arn"),
        pre_annotation_lambda_arn=setting("pre_annotation_lambda_arn"),
        annotation_consolidation_lambda_arn=setting("consolidation_lambda_arn"),
        batch_size=setting("images_per_task"), **(ground_truth or {}),
    )
    gt_job = f"{group_id}.ground_truth_review"
    gt_wait = GroundTruthLabelingJobSensor(
        task_id="ground_truth_wait", job_names=result_of(gt_job, "jobs"), answers_uri=result_of(gt_job, "answers_uri"),
        items_uri=result_of(gt_job, "items_uri"), poke_interval=poll_seconds, **waits,
    )
    ls_review = LabelStudioReviewOperator(
        task_id="label_studio_review", **common, label_studio_conn_id=setting("labelstudio_conn_id"),
    )
    ls_wait = LabelStudioReviewSensor(
        task_id="label_studio_wait", review=result_of(f"{group_id}.label_studio_review"),
        label_studio_conn_id=setting("labelstudio_conn_id"), poll_interval=poll_seconds, **waits,
        **(label_studio_wait or {}),
    )
    branch = choose_backend(group_id, join_task_id, preflight_result, check_result)
    joined = collect_answers.override(task_id=join_task_id)(group_id, check_result)
    branch >> [gt_review, ls_review, joined]
    gt_review >> gt_wait >> joined
    ls_review >> ls_wait >> joined
    return joined
