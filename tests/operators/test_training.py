"""A merged manifest trains the next model version in the emulator; F1 is reported and compared."""

from __future__ import annotations


import json

import pytest
from airflow.sdk import DAG
from airflow.sdk.exceptions import AirflowFailException, TaskDeferred

from rekfeedback.operators import ManifestMergeOperator, RekognitionTrainProjectVersionOperator
from rekfeedback.core.training import attempt_version_name, goes_to_test, manifest_chunks, version_name_for_run

from tests.fixtures.triggers import first_event

from tests.fixtures.merge import clients, jsonl, make_dataset, put_text, read_text, train_base_version, truth_answers



class _Ti:
    """What the operator's extra links need from the task instance: somewhere to push their XCom."""

    def __init__(self):
        self.pushed = {}

    def xcom_push(self, key, value):
        self.pushed[key] = value

def merged_manifest(emulator, data, turn: str) -> str:
    s3, _ = clients(emulator)
    uri = put_text(s3, f"{turn}answers/ground-truth.jsonl", jsonl(truth_answers(s3, data)))
    result = ManifestMergeOperator(task_id="merge_manifest", answers_uris=[uri], output_prefix=turn,
                                   previous_manifest_uri=data["seed_manifest_uri"]).execute({"run_id": "r", "ti": _Ti()})
    return result["manifest_uri"]


def train_op(dag_id="rek_loop", **kw):
    kw.setdefault("waiter_delay", 1)
    kw.setdefault("waiter_max_attempts", 60)
    kw.setdefault("dataset_waiter_delay", 0.05)
    with DAG(dag_id, schedule=None):
        return RekognitionTrainProjectVersionOperator(task_id="train_model", **kw)


DATASET_WAITS: list[str] = []  # the datasets each deferred dataset wait was for, in order


def deferred_to_training(op, context):
    """execute, each dataset change waited for in the real DatasetReadyTrigger, until the task defers on training."""
    with pytest.raises(TaskDeferred) as deferred:
        op.execute(context)
    while deferred.value.method_name == "execute_after_dataset":
        classpath, kwargs = deferred.value.trigger.serialize()
        assert classpath == "rekfeedback.triggers.dataset.DatasetReadyTrigger"
        DATASET_WAITS.append(kwargs["dataset_arn"])
        event = first_event(type(deferred.value.trigger)(**kwargs)).payload
        with pytest.raises(TaskDeferred) as deferred:
            op.execute_after_dataset(context, event=event)
    return deferred


def run_deferred(op, context):
    """execute -> TaskDeferred -> the real trigger against the emulator (aiobotocore) -> execute_complete."""
    deferred = deferred_to_training(op, context)
    trigger = deferred.value.trigger
    classpath, kwargs = trigger.serialize()
    assert classpath.endswith("ProjectVersionTrainedTrigger")
    event = first_event(type(trigger)(**kwargs)).payload
    return getattr(op, deferred.value.method_name)(context, event=event, **(deferred.value.kwargs or {}))


@pytest.fixture(scope="module")
def data(emulator):
    return make_dataset(emulator, kind="detection", n=48, seed=9)


@pytest.fixture(scope="module")
def base(emulator, data):
    return train_base_version(emulator, data)


def test_merged_manifest_trains_a_new_version_whose_f1_is_compared(emulator, data, base):
    s3, rek = clients(emulator)
    turn = f"s3://{data['bucket']}/loop/dag/run-a/"
    manifest_uri = merged_manifest(emulator, data, turn)
    context = {"run_id": "manual__2026-11-26T07:00:00+00:00", "ti": _Ti()}
    op = train_op(manifest_uri=manifest_uri, output_prefix=turn, base_version_arn={"project_version_arn": base["arn"]},
                  dag_id="rek_loop", improvement_margin=0.0, max_chunk_bytes=4000)
    DATASET_WAITS.clear()
    result = run_deferred(op, context)
    # Each dataset change (here: creating both, the base version was trained from files) was waited for in
    # the triggerer, one after the other; the turn's progress record says every chunk is in.
    datasets = {d["DatasetType"]: d["DatasetArn"] for d in rek.describe_projects(
        ProjectNames=[base["project_arn"].split("/")[1]])["ProjectDescriptions"][0]["Datasets"]}
    assert DATASET_WAITS == [datasets["TRAIN"], datasets["TEST"]]
    progress = json.loads(read_text(s3, f"{turn}training/datasets.json"))
    assert progress["sent"]["TRAIN"] > 1 and progress["sent"]["TEST"] >= 1

    name = version_name_for_run("rek_loop", context["run_id"])
    assert result["version_name"] == name and f"/version/{name}/" in result["new_version_arn"]
    desc = rek.describe_project_versions(ProjectArn=base["project_arn"], VersionNames=[name])["ProjectVersionDescriptions"][0]
    assert desc["Status"] == "TRAINING_COMPLETED"
    assert result["f1_after"] == pytest.approx(desc["EvaluationResult"]["F1Score"])
    assert result["f1_before"] == pytest.approx(base["f1"])
    assert result["improved"] == (round(result["f1_after"] - result["f1_before"], 9) > 0.0)
    assert result["per_label"] and set(result["per_label"]) <= set(data["labels"])
    assert all(0 <= v["f1_after"] <= 1 for v in result["per_label"].values() if v["f1_after"] is not None)
    assert result["evaluation_summary_uri"].startswith("s3://")

    # The project got TRAIN and TEST datasets holding the manifest, split by a hash of the image.
    datasets = {d["DatasetType"]: d["DatasetArn"] for d in
                rek.describe_projects(ProjectNames=[base["project_arn"].split("/")[1]])["ProjectDescriptions"][0]["Datasets"]}
    assert set(datasets) == {"TRAIN", "TEST"}
    lines = read_text(s3, manifest_uri).splitlines()
    stats = {k: rek.describe_dataset(DatasetArn=a)["DatasetDescription"]["DatasetStats"]["TotalEntries"] for k, a in datasets.items()}
    expected_test = sum(goes_to_test(json.loads(line)["source-ref"], 0.2) for line in lines)
    assert stats == {"TRAIN": len(lines) - expected_test, "TEST": expected_test}

    # A retry of the same run trains nothing new; a second turn updates the datasets in chunks.
    versions_before = len(rek.describe_project_versions(ProjectArn=base["project_arn"])["ProjectVersionDescriptions"])
    again = run_deferred(train_op(manifest_uri=manifest_uri, output_prefix=turn, base_version_arn=base["arn"],
                                  dag_id="rek_loop"), context)
    assert again["new_version_arn"] == result["new_version_arn"]
    emulator.reset_stats()
    turn2 = f"s3://{data['bucket']}/loop/dag/run-b/"
    second = run_deferred(train_op(manifest_uri=manifest_uri, output_prefix=turn2, base_version_arn=result["new_version_arn"],
                                   dag_id="rek_loop", improvement_margin=0.5, max_chunk_bytes=4000),
                          {"run_id": "manual__run-b", "ti": _Ti()})
    assert second["f1_before"] == pytest.approx(result["f1_after"]) and second["improved"] is False
    assert emulator.calls["Rekognition.UpdateDatasetEntries"] >= 2  # 4000-byte chunks of a bigger manifest
    assert len(rek.describe_project_versions(ProjectArn=base["project_arn"])["ProjectVersionDescriptions"]) == versions_before + 1


def test_failing_training_fails_the_task_and_a_rerun_trains_the_next_version(emulator, emulator_knobs, data, base):
    _, rek = clients(emulator)
    turn = f"s3://{data['bucket']}/loop/dag/run-fail/"
    manifest_uri = merged_manifest(emulator, data, turn)
    context = {"run_id": "manual__fail", "ti": _Ti()}
    name = version_name_for_run("rek_loop", context["run_id"])

    def op():
        return train_op(manifest_uri=manifest_uri, output_prefix=turn, base_version_arn=base["arn"], dag_id="rek_loop")

    def versions() -> dict:
        found = rek.describe_project_versions(ProjectArn=base["project_arn"])["ProjectVersionDescriptions"]
        return {d["ProjectVersionArn"].split("/version/")[1].split("/")[0]: d["Status"] for d in found}

    emulator_knobs(fail_training=True)
    # AirflowFailException: Airflow does not retry it by itself (the same data would fail again).
    with pytest.raises(AirflowFailException, match=rf"{name}/.*failed training: .*fail_training"):
        run_deferred(op(), context)
    assert versions()[name] == "TRAINING_FAILED"

    # A rerun (clear) of the task: the failed version keeps its name, the next one is <name>-r2.
    with pytest.raises(AirflowFailException, match=rf"{name}-r2/.*failed training"):
        run_deferred(op(), context)
    assert versions()[f"{name}-r2"] == "TRAINING_FAILED"

    emulator_knobs(fail_training=False)
    emulator.reset_stats()
    result = run_deferred(op(), context)
    assert result["version_name"] == f"{name}-r3" and f"/version/{name}-r3/" in result["new_version_arn"]
    assert emulator.calls["Rekognition.CreateProjectVersion"] == 1
    assert versions()[f"{name}-r3"] == "TRAINING_COMPLETED"
    assert result["f1_before"] == pytest.approx(base["f1"]) and result["f1_after"] is not None

    # Once a version of the run trained, every later attempt reuses it: one version per successful attempt.
    emulator.reset_stats()
    again = run_deferred(op(), context)
    assert again["new_version_arn"] == result["new_version_arn"]
    assert emulator.calls["Rekognition.CreateProjectVersion"] == 0
    assert emulator.calls["Rekognition.UpdateDatasetEntries"] == 0
    assert sorted(v for v in versions() if v.startswith(name)) == [name, f"{name}-r2", f"{name}-r3"]


def test_a_version_still_training_is_waited_for_not_trained_again(emulator, emulator_knobs, data, base):
    """A retry while this run's version trains (worker lost during the wait) must not train a second one."""
    turn = f"s3://{data['bucket']}/loop/dag/run-slow/"
    manifest_uri = merged_manifest(emulator, data, turn)
    context = {"run_id": "manual__slow", "ti": _Ti()}
    emulator_knobs(training_seconds=3.0)
    first = train_op(manifest_uri=manifest_uri, output_prefix=turn, base_version_arn=base["arn"], dag_id="rek_loop")
    DATASET_WAITS.clear()
    emulator.reset_stats()
    deferred_to_training(first, context)  # the version is now TRAINING_IN_PROGRESS; this try is lost
    # Every dataset change (created, when this test runs first on its worker, or updated chunk by chunk) was
    # waited for in the triggerer.
    changes = emulator.calls["Rekognition.CreateDataset"] + emulator.calls["Rekognition.UpdateDatasetEntries"]
    assert len(DATASET_WAITS) == changes >= 2
    emulator.reset_stats()
    result = run_deferred(train_op(manifest_uri=manifest_uri, output_prefix=turn, base_version_arn=base["arn"],
                                   dag_id="rek_loop"), context)
    assert result["version_name"] == version_name_for_run("rek_loop", context["run_id"])
    assert emulator.calls["Rekognition.CreateProjectVersion"] == 0


def test_attempt_names_stay_valid():
    assert attempt_version_name("v", 1) == "v" and attempt_version_name("v", 2) == "v-r2"
    long = "n" * 255
    assert len(attempt_version_name(long, 12)) == 255 and attempt_version_name(long, 12).endswith("-r12")
    assert attempt_version_name(long, 2) != attempt_version_name(long, 3)


def test_non_deferrable_wait_and_bad_parameters(emulator, data, base):
    turn = f"s3://{data['bucket']}/loop/dag/run-sync/"
    manifest_uri = merged_manifest(emulator, data, turn)
    result = train_op(manifest_uri=manifest_uri, output_prefix=turn, project_arn=base["project_arn"], deferrable=False,
                      version_name="sync-v", dag_id="rek_loop").execute({"run_id": "manual__sync"})
    assert result["version_name"] == "sync-v" and result["f1_before"] is None and result["improved"] is True
    with pytest.raises(ValueError, match="test_share must be from 0 to 1"):
        train_op(manifest_uri=manifest_uri, output_prefix=turn, project_arn=base["project_arn"], test_share=2).execute({"run_id": "x"})
    with pytest.raises(ValueError, match="give project_arn or base_version_arn"):
        train_op(manifest_uri=manifest_uri, output_prefix=turn).execute({"run_id": "x"})


def test_chunks_stay_under_the_limit_and_keep_every_line():
    lines = [f'{{"source-ref":"s3://b/{i:04d}.jpg","pad":"{"x" * (i % 50)}"}}' for i in range(500)]
    chunks = list(manifest_chunks([line + "\n" for line in lines], 2000))
    assert all(len(c) <= 2000 for c in chunks) and len(chunks) > 10
    assert b"".join(chunks).decode().splitlines() == lines
    assert version_name_for_run("d" * 300, "manual__x") == version_name_for_run("d" * 300, "manual__x")
    assert len(version_name_for_run("d" * 300, "manual__x")) <= 255


def test_dataset_waits_are_the_dataset_ready_waiter_and_a_failed_update_says_why(emulator, data):
    """Dataset waits are the JSON waiter `dataset_ready` (no sleep loop); a dataset the service marks
    UPDATE_FAILED fails the wait with the service's own message."""
    from airflow.sdk.exceptions import AirflowException

    from rekfeedback.hooks.rekognition import RekognitionCustomLabelsHook

    _, rek = clients(emulator)
    hook = RekognitionCustomLabelsHook()
    assert "dataset_ready" in hook.list_waiters()
    project_arn = rek.create_project(ProjectName="dataset-update-fails")["ProjectArn"]
    bucket, key = data["seed_manifest_uri"][5:].split("/", 1)
    dataset_arn = hook.create_dataset(project_arn, "TRAIN", bucket, key)
    hook.wait_for_dataset(dataset_arn, 0.05, 200)
    assert hook.project_datasets(project_arn) == {"TRAIN": dataset_arn}
    good = read_text(clients(emulator)[0], data["seed_manifest_uri"]).splitlines(keepends=True)[:2]
    for chunk in manifest_chunks(good, 4000):
        hook.update_dataset_entries(dataset_arn, chunk)
        hook.wait_for_dataset(dataset_arn, 0.05, 200)
    bad = [b'{"source-ref": %d}\n' % i for i in range(5)]  # not an S3 URI: the service drops the line
    with pytest.raises(AirflowException, match=r"is UPDATE_FAILED: 5 of 5 lines are invalid"):
        hook.update_dataset_entries(dataset_arn, b"".join(bad))
        hook.wait_for_dataset(dataset_arn, 0.05, 200)
