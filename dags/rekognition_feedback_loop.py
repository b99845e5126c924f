"""One turn of the Rekognition Custom Labels feedback loop.

preflight -> model.start -> inference (mapped over shards) -> model.stop (teardown: always, when this
run started it) -> human_review (Ground Truth or Label Studio, deferrable wait) -> dataset.merge ->
training.train_and_compare -> report -> summary.

Trigger it from the UI form with a project-version ARN, or set `REKFEEDBACK_SCHEDULE` (a cron) to run
nightly with the defaults from Variables `rekfeedback_<param>` / env `REKFEEDBACK_<PARAM>`. Parsing this
file does no I/O: every AWS resource is resolved at run time by the preflight task.
"""

from __future__ import annotations

import os
from datetime import timedelta

import pendulum
from airflow.sdk import DAG, Param, TaskGroup, task
from airflow.sdk.definitions.template import literal  # noqa: F401  (kept for users copying the file)

from rekfeedback.operators import (
    FeedbackLoopPreflightOperator,
    GroundTruthVerificationOperator,
    LabelStudioReviewOperator,
    ManifestMergeOperator,
    RekognitionCustomLabelsInferenceOperator,
    RekognitionStartProjectVersionOperator,
    RekognitionStopProjectVersionOperator,
    RekognitionTrainProjectVersionOperator,
    TurnReportOperator,
)
from rekfeedback.sensors import GroundTruthLabelingJobSensor, LabelStudioReviewSensor
from rekfeedback.turn_config import PROJECT_VERSION_ARN_RE, SETTINGS

DAG_ID = "rekognition_feedback_loop"

# Everything downstream reads the resolved settings that preflight returns, not raw params:
# blanks in the form are filled from Variables or environment at run time, once.
CFG = "ti.xcom_pull(task_ids='preflight')['config']"
TURN = (
    "{{ (" + CFG + "['output_uri'].rstrip('/')) ~ '/' ~ dag.dag_id ~ '/' ~ "
    "(run_id | replace(':', '-') | replace('+', '-') | replace('.', '-') | replace('_', '-')) }}"
)


def _param(setting) -> Param:
    schema = {"type": setting.type, "title": setting.name.replace("_", " ").capitalize(),
              "description": setting.description, "section": setting.section}
    if setting.enum:
        schema["enum"] = setting.enum
    if setting.minimum is not None:
        schema["minimum"] = setting.minimum
    if setting.maximum is not None:
        schema["maximum"] = setting.maximum
    if setting.name == "project_version_arn":
        # Blank is allowed so a nightly schedule needs no form (the Variable fills it); anything
        # else must look like an ARN, and the form says so before a run exists.
        schema["pattern"] = f"^$|{PROJECT_VERSION_ARN_RE.pattern}"
    return Param(setting.default, **schema)


def cfg(name: str) -> str:
    return "{{ " + CFG + "['" + name + "'] }}"


with DAG(
    dag_id=DAG_ID,
    description="One turn of the Rekognition Custom Labels model-improvement loop",
    schedule=os.environ.get("REKFEEDBACK_SCHEDULE") or None,
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    max_active_runs=1,
    render_template_as_native_obj=True,
    params={s.name: _param(s) for s in SETTINGS},
    default_args={
        "retries": 2,
        "retry_delay": timedelta(seconds=30),
        "retry_exponential_backoff": 2.0,
        "max_retry_delay": timedelta(minutes=10),
    },
    tags=["rekognition", "ground-truth", "label-studio", "human-in-the-loop"],
    doc_md=__doc__,
) as dag:
    preflight = FeedbackLoopPreflightOperator(
        task_id="preflight",
        params_to_check="{{ params }}",
        aws_conn_id="{{ params.aws_conn_id }}",
        retries=0,
    )

    with TaskGroup("model") as model:
        start_model = RekognitionStartProjectVersionOperator(
            task_id="start",
            project_version_arn=cfg("project_version_arn"),
            min_inference_units=cfg("min_inference_units"),
            max_inference_units=cfg("max_inference_units"),
            start_if_stopped=cfg("start_model"),
            aws_conn_id=cfg("aws_conn_id"),
        )

    @task
    def shards(config: dict) -> list[int]:
        return list(range(int(config["shard_count"])))

    with TaskGroup("inference") as inference_group:
        shard_list = shards(preflight.output["config"])
        inference = RekognitionCustomLabelsInferenceOperator.partial(
            task_id="detect_custom_labels",
            project_version_arn=cfg("project_version_arn"),
            input_uri=cfg("input_uri"),
            output_uri=TURN,
            exclude_manifests=["{{ " + CFG + "['output_uri'].rstrip('/') ~ '/' ~ dag.dag_id ~ '/dataset/cumulative.manifest' }}"],
            min_confidence=cfg("min_confidence"),
            max_results=cfg("max_results"),
            max_failed_share=cfg("max_failed_share"),
            shard_count=cfg("shard_count"),
            aws_conn_id=cfg("aws_conn_id"),
            map_index_template="shard {{ task.shard_index }}",
        ).expand(shard_index=shard_list)

    with model:
        stop_model = RekognitionStopProjectVersionOperator(
            task_id="stop",
            project_version_arn=cfg("project_version_arn"),
            start_task_id="model.start",
            aws_conn_id=cfg("aws_conn_id"),
        )

    preflight >> start_model >> shard_list
    inference >> stop_model.as_teardown(setups=start_model)

    with TaskGroup("human_review") as human_review:

        @task.branch
        def choose_backend(config: dict) -> str:
            return "human_review.ground_truth_verify" if config["review_backend"] == "ground-truth" \
                else "human_review.label_studio_review"

        backend = choose_backend(preflight.output["config"])
        predictions = TURN + "/predictions/"
        gt_verify = GroundTruthVerificationOperator(
            task_id="ground_truth_verify",
            predictions_uris=predictions,
            output_prefix=TURN,
            workteam_arn=cfg("workteam_arn"),
            role_arn=cfg("role_arn"),
            pre_annotation_lambda_arn=cfg("pre_annotation_lambda_arn"),
            consolidation_lambda_arn=cfg("consolidation_lambda_arn"),
            box_task=cfg("box_task"),
            images_per_task=cfg("images_per_task"),
            workers_per_object=cfg("workers_per_object"),
            auto_accept_confidence=cfg("auto_accept_confidence"),
            audit_rate=cfg("audit_rate"),
            label_unpredicted=cfg("label_unpredicted"),
            aws_conn_id=cfg("aws_conn_id"),
        )
        gt_wait = GroundTruthLabelingJobSensor(
            task_id="ground_truth_wait",
            review="{{ ti.xcom_pull(task_ids='human_review.ground_truth_verify') }}",
            timeout=timedelta(hours=72).total_seconds(),
            aws_conn_id=cfg("aws_conn_id"),
        )
        ls_review = LabelStudioReviewOperator(
            task_id="label_studio_review",
            predictions_uris=predictions,
            output_prefix=TURN,
            labelstudio_conn_id=cfg("labelstudio_conn_id"),
            auto_accept_confidence=cfg("auto_accept_confidence"),
            audit_rate=cfg("audit_rate"),
            label_unpredicted=cfg("label_unpredicted"),
            aws_conn_id=cfg("aws_conn_id"),
        )
        ls_wait = LabelStudioReviewSensor(
            task_id="label_studio_wait",
            review="{{ ti.xcom_pull(task_ids='human_review.label_studio_review') }}",
            labelstudio_conn_id=cfg("labelstudio_conn_id"),
            min_share=cfg("labelstudio_min_share"),
            deadline_hours=cfg("labelstudio_deadline_hours"),
            timeout=timedelta(hours=72).total_seconds(),
            aws_conn_id=cfg("aws_conn_id"),
        )
        backend >> [gt_verify, ls_review]
        gt_verify >> gt_wait
        ls_review >> ls_wait

    inference >> backend

    with TaskGroup("dataset") as dataset:
        merge = ManifestMergeOperator(
            task_id="merge",
            review_results=[
                "{{ ti.xcom_pull(task_ids='human_review.ground_truth_verify') }}",
                "{{ ti.xcom_pull(task_ids='human_review.label_studio_review') }}",
            ],
            answers_uris=[TURN + "/answers/"],
            output_prefix=TURN,
            cumulative_manifest_uri="{{ " + CFG + "['output_uri'].rstrip('/') ~ '/' ~ dag.dag_id ~ '/dataset/cumulative.manifest' }}",
            aws_conn_id=cfg("aws_conn_id"),
            trigger_rule="none_failed_min_one_success",
        )
    [gt_wait, ls_wait] >> merge
