"""One turn of the Rekognition Custom Labels feedback loop.

preflight -> model.start -> inference.detect_custom_labels (mapped over shards) -> model.stop (a
teardown: runs even when inference fails, stops only what this run started) -> human_review (Ground
Truth or Label Studio; the wait is deferred, no worker slot is held) -> dataset.merge ->
training.train_and_compare (optional; skipped while fewer than `min_new_labels` new verified images
arrived) -> champion.gate (is the new version better, on the same TEST set?) -> report ->
champion.approval (with `require_approval`) -> champion.record (the champion record next to the
cumulative manifest; an asset event) -> champion.start_new / stop_old (with `serve_champion`) ->
champion.prune (`keep_versions`) -> summary. A run without an explicit `project_version_arn` runs
the champion.

Trigger it from the UI form with a project-version ARN, or set the environment variable
`REKFEEDBACK_SCHEDULE` (a cron, e.g. `0 2 * * *`) to run it nightly with defaults taken from the
Airflow Variables `rekfeedback_<param>` or the environment variables `REKFEEDBACK_<PARAM>`.
Parsing this file does no I/O: settings are resolved at run time by the preflight task, whose
result every later task reads (rekfeedback.turn.templates). Both rounds of human review are one
builder (rekfeedback.turn.review); the branches and the summary are rekfeedback.turn.steps.
"""

from __future__ import annotations

import os
from datetime import timedelta

import pendulum
from airflow.sdk import DAG, Asset, Param, TaskGroup

from rekfeedback.core.selection import needs_signals
from rekfeedback.operators import (
    AnswerCheckOperator,
    ChampionApprovalOperator,
    ChampionGateOperator,
    ChampionPruneOperator,
    ChampionRecordOperator,
    FeedbackLoopPreflightOperator,
    ManifestMergeOperator,
    RekognitionCustomLabelsInferenceOperator,
    RekognitionStartProjectVersionOperator,
    RekognitionStopProjectVersionOperator,
    RekognitionTrainProjectVersionOperator,
    ReviewSelectionOperator,
    TurnReportOperator,
)
from rekfeedback.turn.review import review_by_humans
from rekfeedback.turn.steps import approve_or_not, serve_or_not, shards, summary, train_or_not
from rekfeedback.turn.templates import (
    CHAMPION_ARN,
    CHAMPION_RECORD,
    CONFIG,
    CUMULATIVE,
    OWNED_MODELS,
    PAID,
    THROUGHPUT,
    TURN_PREFIX,
    UNUSABLE,
    from_preflight,
    result_of,
    setting,
)
from rekfeedback.turn_config import SETTINGS, form_field

DAG_ID = "rekognition_feedback_loop"
# Deployment settings, read from the environment (no I/O): how often waits poll AWS / Label Studio.
POLL_SECONDS = int(os.environ.get("REKFEEDBACK_POLL_SECONDS", "60"))
RETRY_DELAY = timedelta(seconds=int(os.environ.get("REKFEEDBACK_RETRY_DELAY_SECONDS", "30")))
SCHEDULE = os.environ.get("REKFEEDBACK_SCHEDULE") or None
# Every change of the champion record is an event of this asset; its extra is the champion.
CHAMPION_ASSET = Asset(name="rekfeedback_champion", uri="x-rekfeedback://champion")
GATE = "ti.xcom_pull(task_ids='champion.gate')"
RECORD = "ti.xcom_pull(task_ids='champion.record')"

with DAG(
    dag_id=DAG_ID,
    description="One turn of the Rekognition Custom Labels model-improvement loop",
    schedule=SCHEDULE,
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    max_active_runs=1,
    render_template_as_native_obj=True,
    user_defined_macros={"needs_review_signals": needs_signals},
    params={s.name: Param(**form_field(s)) for s in SETTINGS},
    default_args={
        "retries": 2,
        "retry_delay": RETRY_DELAY,
        "retry_exponential_backoff": 2.0,
        "max_retry_delay": timedelta(minutes=10),
        # A turn waits hours or days for people: every wait defers, whatever `[operators] default_deferrable`
        # says (Airflow ships it false; the operators used on their own follow it).
        "deferrable": True,
    },
    tags=["rekognition", "ground-truth", "label-studio", "human-in-the-loop"],
    doc_md=__doc__,
) as dag:
    preflight = FeedbackLoopPreflightOperator(
        task_id="preflight", params_to_check="{{ params }}", aws_conn_id="{{ params.aws_conn_id or 'aws_default' }}",
    )

    with TaskGroup("model", tooltip="Start the model if asked; stop it after inference") as model:
        start_model = RekognitionStartProjectVersionOperator(
            task_id="start",
            project_version_arn=setting("project_version_arn"),
            min_inference_units=setting("min_inference_units"),
            max_inference_units=setting("max_inference_units"),
            start_if_stopped=setting("start_model"),
            status_before_run=from_preflight("['facts'].get('model_status')"),
            # Ownership is read from the turn's S3 record (written once by preflight), not from XCom.
            records_prefix=TURN_PREFIX + "/model/",
            owned_models_uri=OWNED_MODELS,
            images_to_predict=from_preflight("['facts'].get('to_predict')"),
            aws_conn_id=setting("aws_conn_id"),
            waiter_delay=POLL_SECONDS,
            waiter_max_attempts=max(1, 3600 // POLL_SECONDS),
        )
        stop_model = RekognitionStopProjectVersionOperator(
            task_id="stop",
            project_version_arn=setting("project_version_arn"),
            start_task_id="model.start",
            records_prefix=TURN_PREFIX + "/model/",
            owned_models_uri=OWNED_MODELS,
            aws_conn_id=setting("aws_conn_id"),
            waiter_delay=max(1, POLL_SECONDS // 6),
        )

    with TaskGroup("inference", tooltip="DetectCustomLabels over the new images, in shards") as inference_group:
        shard_indexes = shards(preflight.output)
        detect = RekognitionCustomLabelsInferenceOperator.partial(
            task_id="detect_custom_labels",
            project_version_arn=setting("project_version_arn"),
            input_prefix="{{ none if " + CONFIG + "['input_uri'].endswith('.manifest') else " + CONFIG + "['input_uri'] }}",
            input_manifest="{{ " + CONFIG + "['input_uri'] if " + CONFIG + "['input_uri'].endswith('.manifest') else none }}",
            output_prefix=TURN_PREFIX,
            # Unusable images are skipped through the paid-work ledger, by ETag (a fixed file is tried again).
            exclude_manifests=[CUMULATIVE],
            paid_predictions_uri=PAID,
            throughput_memory_uri=THROUGHPUT,  # a later turn starts at the rate this model reached
            # Only a budgeted selection needs them: otherwise inference reads image headers only.
            keep_signals="{{ needs_review_signals(" + CONFIG + ") }}",
            checkpoint_every=setting("checkpoint_images"),
            checkpoint_interval=setting("checkpoint_seconds"),
            shard_count=setting("shard_count"),
            min_confidence=setting("min_confidence"),
            max_results=setting("max_results"),
            max_failed_share=setting("max_failed_share"),
            aws_conn_id=setting("aws_conn_id"),
            map_index_template="shard {{ task.shard_index }}",
        ).expand(shard_index=shard_indexes)

    preflight >> start_model >> shard_indexes
    detect >> stop_model.as_teardown(setups=start_model)

    with TaskGroup("selection", tooltip="Choose the images humans review under the budget; defer the rest"):
        choose_images = ReviewSelectionOperator(
            task_id="choose_images",
            predictions_uris=TURN_PREFIX + "/predictions/",
            output_prefix=TURN_PREFIX,
            selection=setting("selection"),
            review_budget=setting("review_budget"),
            review_cost_cap=setting("review_cost_cap"),
            cumulative_manifest_uri=CUMULATIVE,
            auto_accept_threshold=setting("auto_accept_confidence"),
            audit_rate=setting("audit_rate"),
            label_unpredicted=setting("label_unpredicted"),
            aws_conn_id=setting("aws_conn_id"),
        )

    with TaskGroup("human_review", tooltip="Humans verify and fix the predictions") as human_review:
        collected = review_by_humans(
            human_review, preflight.output, join_task_id="answers", poll_seconds=POLL_SECONDS,
            predictions_uris=result_of("selection.choose_images", "for_review_uri"),
            output_prefix=TURN_PREFIX,
            review=dict(auto_accept_threshold=setting("auto_accept_confidence"), audit_rate=setting("audit_rate"),
                        label_unpredicted=setting("label_unpredicted"), workers_per_object=setting("workers_per_object")),
            ground_truth=dict(box_task=setting("box_task")),
            wait=dict(agreement_threshold=setting("agreement_threshold")),
            label_studio_wait=dict(
                min_annotated_share=setting("labelstudio_min_share"),
                deadline="{{ (dag_run.start_date + macros.timedelta(hours=" + CONFIG + "['labelstudio_deadline_hours']))"
                         ".isoformat() if " + CONFIG + "['labelstudio_deadline_hours'] else none }}",
            ),
        )

    detect >> choose_images >> human_review

    with TaskGroup("review_round", tooltip="Check the answers; one reviewer settles disagreements and flagged ones") \
            as review_round:
        check = AnswerCheckOperator(
            task_id="check",
            answers_uris=collected["answers_uris"],
            predictions_uris=TURN_PREFIX + "/predictions/",
            output_prefix=TURN_PREFIX,
            noise_check=setting("noise_check"),
            noise_confidence=setting("noise_confidence"),
            agreement_threshold=setting("agreement_threshold"),
            review_round=setting("review_round"),
            aws_conn_id=setting("aws_conn_id"),
        )
        # The first round's tasks again, on the candidate answers the check flagged, one reviewer per image.
        final_answers = review_by_humans(
            review_round, preflight.output, join_task_id="reviewed", poll_seconds=POLL_SECONDS,
            check_result=check.output,
            predictions_uris=result_of("review_round.check", "review_predictions_uri"),
            output_prefix=TURN_PREFIX + "/review-round",
            review=dict(auto_accept_threshold=None, audit_rate=0.0, label_unpredicted=True, workers_per_object=1,
                        round_name="review"),
            ground_truth=dict(box_task="adjustment"),
            wait=dict(reviewed=True),
        )

    with TaskGroup("dataset", tooltip="Merge the answers into the cumulative Rekognition manifest") as dataset:
        merge = ManifestMergeOperator(
            task_id="merge",
            answers_uris=final_answers["answers_uris"],
            auto_accepted_uris=collected["auto_accepted_uris"],
            unlabelled_uris=collected["unlabelled_uris"],
            unresolved_uris=collected["unresolved_uris"],
            output_prefix=TURN_PREFIX,
            cumulative_manifest_uri=CUMULATIVE,
            unusable_images_uri=UNUSABLE,
            aws_conn_id=setting("aws_conn_id"),
        )

    with TaskGroup("training", tooltip="Train the next version and compare F1") as training:
        decide = train_or_not(preflight.output, merge.output)
        train = RekognitionTrainProjectVersionOperator(
            task_id="train_and_compare",
            manifest_uri="{{ ti.xcom_pull(task_ids='dataset.merge')['cumulative_manifest_uri'] or "
                         "ti.xcom_pull(task_ids='dataset.merge')['manifest_uri'] }}",
            output_prefix=TURN_PREFIX,
            # The challenger is compared with the champion, even on a run pinned to another version.
            base_version_arn=CHAMPION_ARN,
            test_share=setting("test_share"),
            improvement_margin=setting("improvement_margin"),
            aws_conn_id=setting("aws_conn_id"),
            waiter_delay=POLL_SECONDS,
        )
        merge >> decide >> train

    with TaskGroup("champion", tooltip="Promote the better version: gate, approval, record, serving") as champion:
        gate = ChampionGateOperator(
            task_id="gate",
            training_result=result_of("training.train_and_compare"),
            merge_summary=result_of("dataset.merge"),
            champion_record_uri=CHAMPION_RECORD,
            champion_arn=CHAMPION_ARN,
            served_by=setting("project_version_arn"),
            train=setting("train"),
            improvement_margin=setting("improvement_margin"),
            max_label_regression=setting("max_label_regression"),
            min_f1=setting("min_f1"),
            min_new_labels=setting("min_new_labels"),
            require_approval=setting("require_approval"),
            report_uri=TURN_PREFIX + "/report/index.html",
            aws_conn_id=setting("aws_conn_id"),
            trigger_rule="none_failed_min_one_success",
        )
        ask = approve_or_not(gate.output)
        approval = ChampionApprovalOperator(
            task_id="approval",
            subject="Promote {{ " + GATE + "['comparison']['new_version_arn'].split('/version/')[1].split('/')[0] }} "
                    "to the loop's model?",
            body="{{ " + GATE + "['approval_body'] }}",
            timeout_hours=setting("approval_timeout_hours"),
        )
        record = ChampionRecordOperator(
            task_id="record",
            gate="{{ " + GATE + " }}",
            approval=result_of("champion.approval"),
            champion_record_uri=CHAMPION_RECORD,
            approval_timeout_action=setting("approval_timeout_action"),
            aws_conn_id=setting("aws_conn_id"),
            outlets=[CHAMPION_ASSET],
            trigger_rule="none_failed_min_one_success",
        )
        serve = serve_or_not(record.output, preflight.output)
        start_new = RekognitionStartProjectVersionOperator(
            task_id="start_new",
            project_version_arn="{{ " + RECORD + "['champion']['project_version_arn'] }}",
            min_inference_units=setting("min_inference_units"),
            max_inference_units=setting("max_inference_units"),
            aws_conn_id=setting("aws_conn_id"),
            waiter_delay=POLL_SECONDS,
            waiter_max_attempts=max(1, 3600 // POLL_SECONDS),
        )
        stop_old = RekognitionStopProjectVersionOperator(
            task_id="stop_old",
            project_version_arn="{{ " + RECORD + "['previous_champion'] }}",
            force=True,  # the old champion was running before the turn: the new one replaces it
            aws_conn_id=setting("aws_conn_id"),
            waiter_delay=max(1, POLL_SECONDS // 6),
        )
        prune = ChampionPruneOperator(
            task_id="prune",
            champion_record_uri=CHAMPION_RECORD,
            project_version_arn=setting("project_version_arn"),
            keep_versions=setting("keep_versions"),
            aws_conn_id=setting("aws_conn_id"),
            trigger_rule="none_failed_min_one_success",
        )
        ask >> [approval, record]
        approval >> record >> serve >> [start_new, prune]
        start_new >> stop_old >> prune

    report = TurnReportOperator(
        task_id="report",
        output_prefix=TURN_PREFIX,
        predictions_uris=TURN_PREFIX + "/predictions/",
        # The first round's answers, pending ones too: the agreement chart shows the disagreements.
        answers_uris="{{ ((ti.xcom_pull(task_ids='human_review.answers') or {}).get('answers_uris') or []) + "
                     "((ti.xcom_pull(task_ids='human_review.answers') or {}).get('pending_uris') or []) }}",
        selection=result_of("selection.choose_images"),
        merge_summary=result_of("dataset.merge"),
        training_results=result_of("training.train_and_compare"),
        champion=result_of("champion.gate"),
        answer_check=result_of("review_round.check"),
        history_uri="{{ " + CONFIG + "['output_uri'].rstrip('/') ~ '/' ~ dag.dag_id ~ '/reports/history.json' }}",
        inference_unit_hours="{{ ((ti.xcom_pull(task_ids='model.stop') or {}).get('running_seconds') or 0) "
                             "/ 3600.0 * " + CONFIG + "['min_inference_units'] }}",
        aws_conn_id=setting("aws_conn_id"),
        trigger_rule="none_failed_min_one_success",
    )
    [decide, train] >> gate >> report >> ask
    prune >> summary()
