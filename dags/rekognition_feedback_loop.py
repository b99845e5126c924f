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
result every later task reads.
"""

from __future__ import annotations

import os
from datetime import timedelta

import pendulum
from airflow.sdk import DAG, Asset, Param, TaskGroup, task

from rekfeedback.operators import (
    AnswerCheckOperator,
    ChampionApprovalOperator,
    ChampionGateOperator,
    ChampionPruneOperator,
    ChampionRecordOperator,
    FeedbackLoopPreflightOperator,
    GroundTruthVerificationOperator,
    LabelStudioReviewOperator,
    ManifestMergeOperator,
    RekognitionCustomLabelsInferenceOperator,
    ReviewSelectionOperator,
    RekognitionStartProjectVersionOperator,
    RekognitionStopProjectVersionOperator,
    RekognitionTrainProjectVersionOperator,
    TurnReportOperator,
)
from rekfeedback.core.selection import needs_signals
from rekfeedback.sensors import GroundTruthLabelingJobSensor, LabelStudioReviewSensor
from rekfeedback.turn_config import SETTINGS, form_field

DAG_ID = "rekognition_feedback_loop"
# Deployment settings, read from the environment (no I/O): how often waits poll AWS / Label Studio.
POLL_SECONDS = int(os.environ.get("REKFEEDBACK_POLL_SECONDS", "60"))
RETRY_DELAY = timedelta(seconds=int(os.environ.get("REKFEEDBACK_RETRY_DELAY_SECONDS", "30")))
SCHEDULE = os.environ.get("REKFEEDBACK_SCHEDULE") or None

PREFLIGHT = "ti.xcom_pull(task_ids='preflight')"
CONFIG = PREFLIGHT + "['config']"
TURN_PREFIX = "{{ " + PREFLIGHT + "['turn_prefix'] }}"
CUMULATIVE = "{{ " + PREFLIGHT + "['cumulative_manifest_uri'] }}"
UNUSABLE = "{{ " + PREFLIGHT + "['unusable_images_uri'] }}"
PAID = "{{ " + PREFLIGHT + "['paid_predictions_uri'] }}"
CHAMPION_RECORD = "{{ " + PREFLIGHT + "['champion_record_uri'] }}"
# Every change of the champion record is an event of this asset; its extra is the champion.
CHAMPION_ASSET = Asset(name="rekfeedback_champion", uri="x-rekfeedback://champion")
THROUGHPUT = "{{ " + PREFLIGHT + "['throughput_memory_uri'] }}"


def setting(name: str) -> str:
    """A template that renders to the resolved setting, with its native type."""
    return "{{ " + CONFIG + "['" + name + "'] }}"


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
            status_before_run="{{ " + PREFLIGHT + "['facts'].get('model_status') }}",
            # Ownership is read from the turn's S3 record (written once by preflight), not from XCom.
            records_prefix=TURN_PREFIX + "/model/",
            owned_models_uri="{{ " + PREFLIGHT + "['owned_models_uri'] }}",
            images_to_predict="{{ " + PREFLIGHT + "['facts'].get('to_predict') }}",
            aws_conn_id=setting("aws_conn_id"),
            waiter_delay=POLL_SECONDS,
            waiter_max_attempts=max(1, 3600 // POLL_SECONDS),
        )
        stop_model = RekognitionStopProjectVersionOperator(
            task_id="stop",
            project_version_arn=setting("project_version_arn"),
            start_task_id="model.start",
            records_prefix=TURN_PREFIX + "/model/",
            owned_models_uri="{{ " + PREFLIGHT + "['owned_models_uri'] }}",
            aws_conn_id=setting("aws_conn_id"),
            waiter_delay=max(1, POLL_SECONDS // 6),
        )

    with TaskGroup("inference", tooltip="DetectCustomLabels over the new images, in shards") as inference_group:

        @task
        def shards(preflight_result: dict) -> list[int]:
            return list(range(int(preflight_result["config"]["shard_count"])))

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

    with TaskGroup("human_review", tooltip="Humans verify and fix the predictions") as human_review:

        @task.branch
        def choose_backend(preflight_result: dict) -> str:
            backend = preflight_result["config"]["review_backend"]
            return f"human_review.{'ground_truth' if backend == 'ground-truth' else 'label_studio'}_review"

        backend = choose_backend(preflight.output)
        # What both backends take: the predictions, where to write, and how to route them.
        review_inputs = dict(
            predictions_uris="{{ ti.xcom_pull(task_ids='selection.choose_images')['for_review_uri'] }}",
            output_prefix=TURN_PREFIX,
            labels="{{ " + PREFLIGHT + "['facts'].get('labels') or none }}",
            auto_accept_threshold=setting("auto_accept_confidence"),
            audit_rate=setting("audit_rate"),
            label_unpredicted=setting("label_unpredicted"),
            aws_conn_id=setting("aws_conn_id"),
        )
        gt_review = GroundTruthVerificationOperator(
            task_id="ground_truth_review",
            **review_inputs,
            workteam_arn=setting("workteam_arn"),
            role_arn=setting("role_arn"),
            pre_annotation_lambda_arn=setting("pre_annotation_lambda_arn"),
            annotation_consolidation_lambda_arn=setting("consolidation_lambda_arn"),
            box_task=setting("box_task"),
            batch_size=setting("images_per_task"),
            workers_per_object=setting("workers_per_object"),
        )
        gt_wait = GroundTruthLabelingJobSensor(
            task_id="ground_truth_wait",
            job_names="{{ ti.xcom_pull(task_ids='human_review.ground_truth_review')['jobs'] }}",
            answers_uri="{{ ti.xcom_pull(task_ids='human_review.ground_truth_review')['answers_uri'] }}",
            items_uri="{{ ti.xcom_pull(task_ids='human_review.ground_truth_review')['items_uri'] }}",
            agreement_threshold=setting("agreement_threshold"),
            poke_interval=POLL_SECONDS,
            timeout=timedelta(hours=72).total_seconds(),
            aws_conn_id=setting("aws_conn_id"),
        )
        ls_review = LabelStudioReviewOperator(
            task_id="label_studio_review",
            **review_inputs,
            label_studio_conn_id=setting("labelstudio_conn_id"),
            workers_per_object=setting("workers_per_object"),
        )
        ls_wait = LabelStudioReviewSensor(
            task_id="label_studio_wait",
            review="{{ ti.xcom_pull(task_ids='human_review.label_studio_review') }}",
            label_studio_conn_id=setting("labelstudio_conn_id"),
            agreement_threshold=setting("agreement_threshold"),
            min_annotated_share=setting("labelstudio_min_share"),
            deadline="{{ (dag_run.start_date + macros.timedelta(hours=" + CONFIG + "['labelstudio_deadline_hours'])).isoformat() "
                     "if " + CONFIG + "['labelstudio_deadline_hours'] else none }}",
            poll_interval=POLL_SECONDS,
            timeout=timedelta(hours=72).total_seconds(),
            aws_conn_id=setting("aws_conn_id"),
        )

        @task(trigger_rule="none_failed_min_one_success")
        def answers(ti=None) -> dict:
            """What the chosen backend produced, whichever it was: the merge's inputs."""
            out: dict[str, list[str]] = {"answers_uris": [], "auto_accepted_uris": [], "unlabelled_uris": [],
                                         "unresolved_uris": [], "pending_uris": []}
            for review_id, wait_id in (("ground_truth_review", "ground_truth_wait"),
                                       ("label_studio_review", "label_studio_wait")):
                review = ti.xcom_pull(task_ids=f"human_review.{review_id}")
                wait = ti.xcom_pull(task_ids=f"human_review.{wait_id}")
                if not review:
                    continue
                out["review"] = review
                out["wait"] = wait
                if wait and wait.get("answers_uri"):
                    out["answers_uris"].append(wait["answers_uri"])
                if wait and wait.get("unresolved_uri"):
                    out["unresolved_uris"].append(wait["unresolved_uri"])
                if wait and wait.get("pending_uri"):  # disagreeing workers: not merged, but reported
                    out["pending_uris"].append(wait["pending_uri"])
                for key in ("auto_accepted", "unlabelled"):
                    if review.get(f"{key}_uri"):
                        out[f"{key}_uris"].append(review[f"{key}_uri"])
            return out

        collected = answers()
        backend >> [gt_review, ls_review]
        gt_review >> gt_wait >> collected
        ls_review >> ls_wait >> collected

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

    detect >> choose_images >> backend

    with TaskGroup("review_round", tooltip="Check the answers; one reviewer settles disagreements and flagged ones"):
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

        @task.branch
        def needs_review(check_result: dict, preflight_result: dict) -> list[str]:
            """Nothing to review: straight to the join (the round's tasks are skipped)."""
            if not check_result.get("review_predictions_uri"):
                return ["review_round.reviewed"]
            backend = preflight_result["config"]["review_backend"]
            name = "ground_truth" if backend == "ground-truth" else "label_studio"
            return [f"review_round.{name}_review", "review_round.reviewed"]

        # The first round's operators again, on the candidate answers, one reviewer per image.
        round_inputs = dict(
            predictions_uris="{{ ti.xcom_pull(task_ids='review_round.check')['review_predictions_uri'] }}",
            output_prefix=TURN_PREFIX + "/review-round",
            labels="{{ " + PREFLIGHT + "['facts'].get('labels') or none }}",
            auto_accept_threshold=None, audit_rate=0.0, label_unpredicted=True, workers_per_object=1,
            round_name="review", aws_conn_id=setting("aws_conn_id"),
        )
        gt_round = GroundTruthVerificationOperator(
            task_id="ground_truth_review", **round_inputs,
            workteam_arn=setting("workteam_arn"), role_arn=setting("role_arn"),
            pre_annotation_lambda_arn=setting("pre_annotation_lambda_arn"),
            annotation_consolidation_lambda_arn=setting("consolidation_lambda_arn"),
            box_task="adjustment", batch_size=setting("images_per_task"),
        )
        gt_round_wait = GroundTruthLabelingJobSensor(
            task_id="ground_truth_wait", reviewed=True,
            job_names="{{ ti.xcom_pull(task_ids='review_round.ground_truth_review')['jobs'] }}",
            answers_uri="{{ ti.xcom_pull(task_ids='review_round.ground_truth_review')['answers_uri'] }}",
            items_uri="{{ ti.xcom_pull(task_ids='review_round.ground_truth_review')['items_uri'] }}",
            poke_interval=POLL_SECONDS, timeout=timedelta(hours=72).total_seconds(), aws_conn_id=setting("aws_conn_id"),
        )
        ls_round = LabelStudioReviewOperator(
            task_id="label_studio_review", **round_inputs, label_studio_conn_id=setting("labelstudio_conn_id"),
        )
        ls_round_wait = LabelStudioReviewSensor(
            task_id="label_studio_wait", reviewed=True,
            review="{{ ti.xcom_pull(task_ids='review_round.label_studio_review') }}",
            label_studio_conn_id=setting("labelstudio_conn_id"),
            poll_interval=POLL_SECONDS, timeout=timedelta(hours=72).total_seconds(), aws_conn_id=setting("aws_conn_id"),
        )

        @task(trigger_rule="none_failed_min_one_success")
        def reviewed(ti=None) -> dict:
            """The answers the merge uses: the checked first-round answers plus the reviewed ones (final)."""
            check_result = ti.xcom_pull(task_ids="review_round.check") or {}
            out = {"answers_uris": [check_result["answers_uri"]] if check_result.get("answers_uri") else [],
                   "check": check_result}
            for wait_id in ("ground_truth_wait", "label_studio_wait"):
                wait = ti.xcom_pull(task_ids=f"review_round.{wait_id}")
                if wait and wait.get("answers_uri"):
                    out["answers_uris"].append(wait["answers_uri"])
                    out["wait"] = wait
            return out

        final_answers = reviewed()
        decide_review = needs_review(check.output, preflight.output)
        check >> decide_review >> [gt_round, ls_round, final_answers]
        gt_round >> gt_round_wait >> final_answers
        ls_round >> ls_round_wait >> final_answers

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

        @task.branch
        def train_or_not(preflight_result: dict, merge_result: dict) -> str:
            import logging

            from rekfeedback.core.champion import should_train

            config = preflight_result["config"]
            if not config["train"]:
                return "champion.gate"
            trains, why = should_train(config.get("min_new_labels"), int(preflight_result.get("verified_since_champion") or 0),
                                       int(((merge_result or {}).get("answers") or {}).get("applied_human") or 0))
            logging.getLogger("airflow.task").info("%s", why)
            return "training.train_and_compare" if trains else "champion.gate"

        decide = train_or_not(preflight.output, merge.output)
        train = RekognitionTrainProjectVersionOperator(
            task_id="train_and_compare",
            manifest_uri="{{ ti.xcom_pull(task_ids='dataset.merge')['cumulative_manifest_uri'] or "
                         "ti.xcom_pull(task_ids='dataset.merge')['manifest_uri'] }}",
            output_prefix=TURN_PREFIX,
            # The challenger is compared with the champion, even on a run pinned to another version.
            base_version_arn="{{ " + PREFLIGHT + "['champion_arn'] }}",
            test_share=setting("test_share"),
            improvement_margin=setting("improvement_margin"),
            aws_conn_id=setting("aws_conn_id"),
            waiter_delay=POLL_SECONDS,
        )
        merge >> decide >> train

    with TaskGroup("champion", tooltip="Promote the better version: gate, approval, record, serving") as champion:
        gate = ChampionGateOperator(
            task_id="gate",
            training_result="{{ ti.xcom_pull(task_ids='training.train_and_compare') }}",
            merge_summary="{{ ti.xcom_pull(task_ids='dataset.merge') }}",
            champion_record_uri=CHAMPION_RECORD,
            champion_arn="{{ " + PREFLIGHT + "['champion_arn'] }}",
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
        GATE = "ti.xcom_pull(task_ids='champion.gate')"

        @task.branch
        def approve_or_not(gate_result: dict) -> str:
            return "champion.approval" if gate_result.get("needs_approval") else "champion.record"

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
            approval="{{ ti.xcom_pull(task_ids='champion.approval') }}",
            champion_record_uri=CHAMPION_RECORD,
            approval_timeout_action=setting("approval_timeout_action"),
            aws_conn_id=setting("aws_conn_id"),
            outlets=[CHAMPION_ASSET],
            trigger_rule="none_failed_min_one_success",
        )
        RECORD = "ti.xcom_pull(task_ids='champion.record')"

        @task.branch
        def serve_or_not(record_result: dict, preflight_result: dict) -> str:
            # Blue/green only for a champion something relies on: it was RUNNING before the turn.
            config = preflight_result["config"]
            was_running = preflight_result.get("champion_status_before") == "RUNNING"
            if config.get("serve_champion") and record_result.get("promoted") and was_running:
                return "champion.start_new"
            return "champion.prune"

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
        selection="{{ ti.xcom_pull(task_ids='selection.choose_images') }}",
        merge_summary="{{ ti.xcom_pull(task_ids='dataset.merge') }}",
        training_results="{{ ti.xcom_pull(task_ids='training.train_and_compare') }}",
        champion="{{ ti.xcom_pull(task_ids='champion.gate') }}",
        answer_check="{{ ti.xcom_pull(task_ids='review_round.check') }}",
        history_uri="{{ " + CONFIG + "['output_uri'].rstrip('/') ~ '/' ~ dag.dag_id ~ '/reports/history.json' }}",
        inference_unit_hours="{{ ((ti.xcom_pull(task_ids='model.stop') or {}).get('running_seconds') or 0) "
                             "/ 3600.0 * " + CONFIG + "['min_inference_units'] }}",
        aws_conn_id=setting("aws_conn_id"),
        trigger_rule="none_failed_min_one_success",
    )
    [decide, train] >> gate >> report >> ask

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
        import logging

        log = logging.getLogger("airflow.task")
        for key, value in figures.items():
            log.info("%s: %s", key, value)
        return figures

    prune >> summary()
