"""End-to-end: the real DAG, run with `dag.test()` against the emulator (issue 7's Done-when).

Each test provisions its own bucket, project and output prefix (`loop_setup`), passes every setting
in run_conf, and checks what the run left in the metadata database (task states, XComs) and in the
emulator (S3 objects, model status, API calls).
"""

from __future__ import annotations

import json
import time

from rekfeedback.core.paths import parse_s3_uri
from rekfeedback.core.validation import validate_line

from .conftest import task_states, xcom

STOPPED = {"STOPPED", "STOPPING"}


def model_status(aws, setup: dict, arn: str | None = None) -> str:
    """Status of a version of the setup's project (default: version 1, the one the runs use)."""
    arn = arn or setup["project_version_arn"]
    project_arn, name = setup["project_arn"], arn.split("/version/")[1].split("/")[0]
    found = aws["rekognition"].describe_project_versions(ProjectArn=project_arn, VersionNames=[name])
    return found["ProjectVersionDescriptions"][0]["Status"]


def read_lines(aws, uri: str) -> list[str]:
    loc = parse_s3_uri(uri)
    body = aws["s3"].get_object(Bucket=loc.bucket, Key=loc.key)["Body"].read().decode("utf-8")
    return [line for line in body.splitlines() if line.strip()]


def source_refs(lines: list[str]) -> list[str]:
    return [json.loads(line)["source-ref"] for line in lines]


def timed(run, *args, **kwargs):
    started = time.monotonic()
    dag_run = run(*args, **kwargs)
    print(f"dag.test took {time.monotonic() - started:.1f} s: {dag_run.run_id} {dag_run.state}")
    return dag_run


def test_happy_path_on_ground_truth(loop_setup, run_dag, aws, emulator):
    setup = loop_setup(n_images=20)
    assert model_status(aws, setup) not in ("RUNNING", "STARTING")
    emulator.reset_stats()

    dag_run = timed(run_dag, setup["run_conf"])

    states = task_states(dag_run)
    assert str(dag_run.state) == "success", states
    assert states["human_review.ground_truth_wait"] == "success"
    assert states["human_review.label_studio_review"] == "skipped"
    summary = xcom(dag_run, "summary")
    assert summary["predicted"] > 0 and summary["sent_to_humans"] > 0
    assert summary["backend"] == "ground-truth"
    assert isinstance(summary["f1_before"], float) and isinstance(summary["f1_after"], float)
    assert 0 <= summary["f1_before"] <= 1 and 0 <= summary["f1_after"] <= 1
    assert summary["model_hours"] > 0 and summary["model_started_by_this_run"] is True
    assert emulator.calls["SageMaker.CreateLabelingJob"] >= 1
    assert emulator.calls["Rekognition.DetectCustomLabels"] >= summary["predicted"]

    # The cumulative manifest: where the run says, every line valid for Rekognition, each image once,
    # holding what humans answered this turn.
    cumulative = summary["outputs"]["cumulative_manifest"]
    assert cumulative == f"{setup['output_uri']}rekognition_feedback_loop/dataset/cumulative.manifest"
    lines = read_lines(aws, cumulative)
    assert len(lines) == summary["manifest_images"] > 0
    for n, line in enumerate(lines, 1):
        check = validate_line(line, expected_bucket=setup["bucket"])
        assert check.ok, f"cumulative manifest line {n}: {[i.as_dict() for i in check.errors]}"
    refs = source_refs(lines)
    assert len(set(refs)) == len(refs)
    answered = {json.loads(a)["source-ref"] for a in read_lines(aws, summary["outputs"]["answers"])}
    assert answered and answered <= set(refs)

    # The run started the model, so it stopped it; the new version it trained is the one reported.
    assert model_status(aws, setup) == "STOPPED"
    assert model_status(aws, setup, summary["new_version_arn"]) == "TRAINING_COMPLETED"


def test_a_failed_labeling_job_fails_the_run_with_its_reason_and_the_model_is_stopped(
        loop_setup, run_dag, aws, emulator, emulator_knobs, capfd):
    setup = loop_setup(n_images=20, train=False)
    emulator_knobs(fail_labeling_jobs=True)
    # Without the label-noise check no review-round job joins in: every job created is a first-round one.
    conf = {**setup["run_conf"], "noise_check": "off"}

    dag_run = timed(run_dag, conf)

    states = task_states(dag_run)
    assert str(dag_run.state) == "failed", states
    assert states["human_review.ground_truth_wait"] == "failed"
    assert states["dataset.merge"] == "upstream_failed"
    jobs = xcom(dag_run, "human_review.ground_truth_review")["jobs"]
    assert jobs
    reasons = {}
    for job in jobs:
        name = job["name"] if isinstance(job, dict) else job
        desc = aws["sagemaker"].describe_labeling_job(LabelingJobName=name)
        assert desc["LabelingJobStatus"] == "Failed"
        reasons[name] = desc["FailureReason"]
    output = capfd.readouterr()
    text = output.out + output.err
    # The wait task's failure names a failed job and that job's own FailureReason.
    assert any(f"labeling job {name} failed: {reason}" in text or f"labeling job {name} ended Failed: {reason}" in text
               for name, reason in reasons.items()), f"no failure naming a job and its reason in:\n{text[-3000:]}"
    assert model_status(aws, setup) in STOPPED
    assert states["model.stop"] == "success"

    # Clearing the review task redoes the job under a new name for the same items. dag.test reruns the
    # whole run (by its dates), which also shows that nothing before the review is paid again.
    emulator_knobs(fail_labeling_jobs=False)
    emulator.reset_stats()
    rerun = timed(run_dag, conf, logical_date=dag_run.logical_date, run_after=dag_run.run_after)
    assert str(rerun.state) == "success", task_states(rerun)
    redone = [j["name"] for j in xcom(rerun, "human_review.ground_truth_review")["jobs"]]
    assert len(redone) == len(reasons) and all(name.endswith("-a2") for name in redone)
    assert not set(redone) & set(reasons)
    assert emulator.calls["SageMaker.CreateLabelingJob"] == len(reasons)  # one new job per failed one
    assert emulator.calls["Rekognition.DetectCustomLabels"] == 0
    assert emulator.calls["Rekognition.StartProjectVersion"] == 0  # predictions complete: the model stays off
    assert model_status(aws, setup) == "STOPPED"


def test_a_rerun_of_a_failed_run_repeats_no_inference_and_no_labeling(loop_setup, run_dag, aws, emulator,
                                                                       emulator_knobs):
    setup = loop_setup(n_images=20)
    conf = setup["run_conf"]
    emulator_knobs(fail_training=True)
    first = timed(run_dag, conf)
    states = task_states(first)
    assert str(first.state) == "failed", states
    assert states["training.train_and_compare"] == "failed"
    assert states["dataset.merge"] == "success"
    first_inference = emulator.calls["Rekognition.DetectCustomLabels"]
    assert first_inference > 0 and emulator.calls["SageMaker.CreateLabelingJob"] > 0

    emulator_knobs(fail_training=False)
    emulator.reset_stats()
    # dag.test names the run after run_after: the same dates give the same run, deleted and created again.
    rerun = timed(run_dag, conf, logical_date=first.logical_date, run_after=first.run_after)

    assert rerun.run_id == first.run_id  # the same run again: the same deterministic names
    states = task_states(rerun)
    assert str(rerun.state) == "success", states
    assert emulator.calls["Rekognition.DetectCustomLabels"] == 0
    assert emulator.calls["SageMaker.CreateLabelingJob"] == 0
    summary = xcom(rerun, "summary")
    assert summary["predicted"] > 0 and summary["sent_to_humans"] > 0  # the same turn, not an empty one

    merge = xcom(rerun, "dataset.merge")
    for uri in (merge["manifest_uri"], merge["cumulative_manifest_uri"]):
        refs = source_refs(read_lines(aws, uri))
        assert len(refs) == len(set(refs)) == summary["manifest_images"], uri

    # The first attempt's version failed training and keeps its name; the rerun trained the next one.
    training = xcom(rerun, "training.train_and_compare")
    failed_name = training["version_name"].removesuffix("-r2")
    assert training["version_name"] == f"{failed_name}-r2"
    assert emulator.calls["Rekognition.CreateProjectVersion"] == 1
    versions = {d["ProjectVersionArn"].split("/version/")[1].split("/")[0]: d["Status"] for d in
                aws["rekognition"].describe_project_versions(ProjectArn=setup["project_arn"])["ProjectVersionDescriptions"]}
    assert versions[failed_name] == "TRAINING_FAILED" and versions[training["version_name"]] == "TRAINING_COMPLETED"
    assert model_status(aws, setup) == "STOPPED"


def test_a_run_with_no_new_images_ends_cleanly_without_starting_the_model(loop_setup, run_dag, aws, emulator):
    setup = loop_setup(n_images=20, train=False)
    first = timed(run_dag, setup["run_conf"])
    assert str(first.state) == "success", task_states(first)
    assert model_status(aws, setup) == "STOPPED"

    emulator.reset_stats()
    second = timed(run_dag, setup["run_conf"])

    states = task_states(second)
    assert str(second.state) == "success", states
    assert states["preflight"] == "skipped"
    assert set(states.values()) == {"skipped"}, states  # everything downstream of preflight too
    assert emulator.calls["Rekognition.StartProjectVersion"] == 0
    assert emulator.calls["Rekognition.DetectCustomLabels"] == 0
    assert emulator.calls["SageMaker.CreateLabelingJob"] == 0
    assert model_status(aws, setup) == "STOPPED"


def test_happy_path_on_label_studio(label_studio, loop_setup, run_dag, aws, emulator):
    from rekfeedback_local.annotator import run_in_background

    setup = loop_setup(n_images=12, review_backend="label-studio", train=False)
    stop_annotator = run_in_background(label_studio.url, label_studio.token, policy="oracle", error_rate=0.0,
                                       endpoint_url=emulator.endpoint_url, interval=1.0)
    try:
        dag_run = timed(run_dag, setup["run_conf"])
    finally:
        annotated = stop_annotator()

    states = task_states(dag_run)
    assert str(dag_run.state) == "success", states
    assert states["human_review.label_studio_wait"] == "success"
    assert states["human_review.ground_truth_review"] == "skipped"
    review = xcom(dag_run, "human_review.label_studio_review")
    assert review["backend"] == "label-studio" and review["project_id"]
    sent = review["counts"]["human"] + review["counts"]["audit"] + review["counts"]["to_label"]
    assert sent > 0 and annotated["created"] >= sent
    summary = xcom(dag_run, "summary")
    assert summary["backend"] == "label-studio" and summary["sent_to_humans"] == sent

    # Every answer the annotator gave is in the cumulative manifest, each image once, every line valid.
    answers = read_lines(aws, xcom(dag_run, "human_review.label_studio_wait")["answers_uri"])
    assert len(answers) == sent
    lines = read_lines(aws, summary["outputs"]["cumulative_manifest"])
    refs = source_refs(lines)
    assert len(refs) == len(set(refs)) and {json.loads(a)["source-ref"] for a in answers} <= set(refs)
    assert all(validate_line(line, expected_bucket=setup["bucket"]).ok for line in lines)
    assert model_status(aws, setup) == "STOPPED"
