"""Model versions: CreateProjectVersion, DescribeProjectVersions, Start/StopProjectVersion, statuses and waiters."""

from __future__ import annotations

import json

import pytest
from botocore.exceptions import ClientError, WaiterError

from rekfeedback_local import synthetic
from tests.fixtures.waits import version_gone, version_reaches

from .helpers import FAST, client, manifest_source, project_with_datasets, train, unique, version_description


@pytest.fixture(scope="module")
def data(emulator):
    s3 = client(emulator, "s3", retries=3)
    bucket = unique("versions")
    small = synthetic.generate(s3, bucket, "small", n=0, seed=21, n_seed=8, n_test=40, bad_files=False)
    large = synthetic.generate(s3, bucket, "large", n=0, seed=22, n_seed=60, n_test=0, bad_files=False)
    return {"bucket": bucket, "seed": small["seed_manifest_uri"], "test": small["test_manifest_uri"], "large": large["seed_manifest_uri"]}


@pytest.fixture(scope="module")
def trained(emulator, data):
    """A project whose v1 trained on the 8 seed images (shared by the read-only tests below)."""
    rek = client(emulator, "rekognition")
    project = project_with_datasets(rek, data["seed"], data["test"])
    arn = train(rek, project, "v1", data["bucket"])
    return {"project": project, "version": arn}


@pytest.fixture
def rek(emulator):
    return client(emulator, "rekognition")


def test_training_completes_with_honest_evaluation(emulator, rek, data, trained):
    desc = version_description(rek, trained["project"], "v1")
    assert desc["ProjectVersionArn"] == trained["version"]
    assert desc["Status"] == "TRAINING_COMPLETED"
    assert desc["StatusMessage"]
    assert desc["OutputConfig"] == {"S3Bucket": data["bucket"], "S3KeyPrefix": "out"}
    assert desc["BillableTrainingTimeInSeconds"] >= 1
    assert desc["TrainingEndTimestamp"] >= desc["CreationTimestamp"]
    assert "MinInferenceUnits" not in desc  # never started
    f1 = desc["EvaluationResult"]["F1Score"]
    assert 0.0 < f1 < 1.0
    summary_obj = desc["EvaluationResult"]["Summary"]["S3Object"]
    assert summary_obj["Bucket"] == data["bucket"] and summary_obj["Name"].startswith("out/EvaluationResultSummary-")
    summary = json.loads(client(emulator, "s3").get_object(Bucket=summary_obj["Bucket"], Key=summary_obj["Name"])["Body"].read())
    assert summary["Version"] == 1
    assert summary["AggregatedEvaluationResults"]["F1Score"] == f1
    assert summary["EvaluationDetails"]["ProjectVersionArn"] == trained["version"]
    assert summary["EvaluationDetails"]["NumberOfTrainingImages"] == 8
    assert summary["EvaluationDetails"]["NumberOfTestingImages"] == 40
    labels = {r["Label"] for r in summary["LabelEvaluationResults"]}
    assert labels == set(synthetic.LABELS)
    for result in summary["LabelEvaluationResults"]:
        assert set(result["Metrics"]) == {"F1Score", "Precision", "Recall", "Threshold"}
        assert 0 <= result["Metrics"]["Threshold"] <= 1
    # The overall F1 is the mean of the per-label F1 scores, recomputable from the file.
    per_label = [r["Metrics"]["F1Score"] for r in summary["LabelEvaluationResults"]]
    assert abs(sum(per_label) / len(per_label) - f1) < 1e-3
    manifest_summary = desc["ManifestSummary"]["S3Object"]
    stats = json.loads(client(emulator, "s3").get_object(Bucket=manifest_summary["Bucket"], Key=manifest_summary["Name"])["Body"].read())
    assert stats["statistics"]["training"]["use_case"] == "OBJECT_LOCALIZATION"
    assert stats["statistics"]["training"]["valid_json_lines"] == 8


def test_more_labels_train_a_measurably_better_model(emulator, rek, data, trained):
    project = project_with_datasets(rek, data["large"], data["test"])  # same 40 test images, 60 training images
    train(rek, project, "v1", data["bucket"])
    small_f1 = version_description(rek, trained["project"], "v1")["EvaluationResult"]["F1Score"]
    large_f1 = version_description(rek, project, "v1")["EvaluationResult"]["F1Score"]
    assert large_f1 > small_f1 + 0.1, (small_f1, large_f1)


def test_training_status_moves_and_lists_newest_first(emulator, rek, data, trained, emulator_knobs):
    emulator_knobs(training_seconds=0.6)
    arn = rek.create_project_version(ProjectArn=trained["project"], VersionName="v2", VersionDescription="second",
                                     OutputConfig={"S3Bucket": data["bucket"], "S3KeyPrefix": "out/"})["ProjectVersionArn"]
    desc = version_description(rek, trained["project"], "v2")
    assert desc["Status"] == "TRAINING_IN_PROGRESS"
    assert "EvaluationResult" not in desc and "TrainingEndTimestamp" not in desc
    rek.get_waiter("project_version_training_completed").wait(ProjectArn=trained["project"], VersionNames=["v2"], WaiterConfig=FAST)
    listed = rek.describe_project_versions(ProjectArn=trained["project"])["ProjectVersionDescriptions"]
    assert [d["ProjectVersionArn"] for d in listed][:2] == [arn, trained["version"]]
    assert listed[0]["VersionDescription"] == "second"
    page = rek.describe_project_versions(ProjectArn=trained["project"], MaxResults=1)
    assert len(page["ProjectVersionDescriptions"]) == 1 and page["NextToken"]


def test_duplicate_version_and_unknown_project(emulator, rek, data, trained):
    with pytest.raises(ClientError) as err:
        rek.create_project_version(ProjectArn=trained["project"], VersionName="v1", OutputConfig={"S3Bucket": data["bucket"]})
    assert err.value.response["Error"]["Code"] == "ResourceInUseException"
    missing = trained["project"].replace(trained["project"].split("/")[1], "missing-project")
    with pytest.raises(ClientError) as err:
        rek.describe_project_versions(ProjectArn=missing)
    assert err.value.response["Error"]["Code"] == "ResourceNotFoundException"
    with pytest.raises(ClientError) as err:
        rek.create_project_version(ProjectArn=missing, VersionName="v1", OutputConfig={"S3Bucket": data["bucket"]})
    assert err.value.response["Error"]["Code"] == "ResourceNotFoundException"
    with pytest.raises(ClientError) as err:  # projects with datasets train from them, not from manifests
        rek.create_project_version(ProjectArn=trained["project"], VersionName="v9", OutputConfig={"S3Bucket": data["bucket"]},
                                   TrainingData={"Assets": [manifest_source(data["seed"])]}, TestingData={"AutoCreate": True})
    assert err.value.response["Error"]["Code"] == "InvalidParameterException"
    with pytest.raises(ClientError) as err:
        rek.create_project_version(ProjectArn=trained["project"], VersionName="bad/name", OutputConfig={"S3Bucket": data["bucket"]})
    assert err.value.response["Error"]["Code"] == "ValidationException"


def test_manifest_training_without_datasets_and_autocreate(emulator, rek, data):
    project = rek.create_project(ProjectName=unique("manifests"))["ProjectArn"]
    with pytest.raises(ClientError) as err:
        rek.create_project_version(ProjectArn=project, VersionName="v1", OutputConfig={"S3Bucket": data["bucket"]})
    assert err.value.response["Error"]["Code"] == "InvalidParameterException"
    train(rek, project, "explicit", data["bucket"], TrainingData={"Assets": [manifest_source(data["large"])]},
          TestingData={"Assets": [manifest_source(data["test"])]})
    train(rek, project, "auto", data["bucket"], TrainingData={"Assets": [manifest_source(data["large"])]},
          TestingData={"AutoCreate": True})
    explicit = version_description(rek, project, "explicit")
    auto = version_description(rek, project, "auto")
    assert explicit["Status"] == auto["Status"] == "TRAINING_COMPLETED"
    s3 = client(emulator, "s3")
    summary = auto["EvaluationResult"]["Summary"]["S3Object"]
    details = json.loads(s3.get_object(Bucket=summary["Bucket"], Key=summary["Name"])["Body"].read())["EvaluationDetails"]
    assert details["NumberOfTrainingImages"] + details["NumberOfTestingImages"] == 60
    assert 0 < details["NumberOfTestingImages"] < 30


def test_only_train_dataset_autosplits(emulator, rek, data):
    project = project_with_datasets(rek, data["large"], None)
    train(rek, project, "v1", data["bucket"])
    assert version_description(rek, project, "v1")["Status"] == "TRAINING_COMPLETED"


def test_training_failure_and_waiter(emulator, rek, data, emulator_knobs):
    project = project_with_datasets(rek, data["seed"], data["test"])
    emulator_knobs(fail_training=True)
    rek.create_project_version(ProjectArn=project, VersionName="v1", OutputConfig={"S3Bucket": data["bucket"]})
    with pytest.raises(WaiterError) as err:
        rek.get_waiter("project_version_training_completed").wait(ProjectArn=project, VersionNames=["v1"], WaiterConfig=FAST)
    assert "TRAINING_FAILED" in str(err.value)
    desc = version_description(rek, project, "v1")
    assert desc["Status"] == "TRAINING_FAILED"
    assert "fail_training" in desc["StatusMessage"]
    assert "EvaluationResult" not in desc and "BillableTrainingTimeInSeconds" not in desc
    with pytest.raises(ClientError) as err:
        rek.start_project_version(ProjectVersionArn=desc["ProjectVersionArn"], MinInferenceUnits=1)
    assert err.value.response["Error"]["Code"] == "InvalidParameterException"


def test_training_on_a_missing_manifest_fails(emulator, rek, data):
    project = rek.create_project(ProjectName=unique("nomanifest"))["ProjectArn"]
    missing = {"GroundTruthManifest": {"S3Object": {"Bucket": data["bucket"], "Name": "nope.manifest"}}}
    rek.create_project_version(ProjectArn=project, VersionName="v1", OutputConfig={"S3Bucket": data["bucket"]},
                               TrainingData={"Assets": [missing]}, TestingData={"AutoCreate": True})
    with pytest.raises(WaiterError):
        rek.get_waiter("project_version_training_completed").wait(ProjectArn=project, VersionNames=["v1"], WaiterConfig=FAST)
    assert "nope.manifest" in version_description(rek, project, "v1")["StatusMessage"]


def test_start_and_stop_move_through_statuses(emulator, rek, data, trained, emulator_knobs):
    emulator_knobs(start_seconds=0.4, stop_seconds=0.4)
    arn, project = trained["version"], trained["project"]
    with pytest.raises(ClientError) as err:
        rek.stop_project_version(ProjectVersionArn=arn)  # never started
    assert err.value.response["Error"]["Code"] == "ResourceInUseException"
    with pytest.raises(ClientError) as err:
        rek.start_project_version(ProjectVersionArn=arn, MinInferenceUnits=2, MaxInferenceUnits=1)
    assert err.value.response["Error"]["Code"] == "InvalidParameterException"
    assert rek.start_project_version(ProjectVersionArn=arn, MinInferenceUnits=1, MaxInferenceUnits=2)["Status"] == "STARTING"
    assert version_description(rek, project, "v1")["Status"] == "STARTING"
    with pytest.raises(ClientError) as err:
        rek.start_project_version(ProjectVersionArn=arn, MinInferenceUnits=1)
    assert err.value.response["Error"]["Code"] == "ResourceInUseException"
    rek.get_waiter("project_version_running").wait(ProjectArn=project, VersionNames=["v1"], WaiterConfig=FAST)
    desc = version_description(rek, project, "v1")
    assert (desc["Status"], desc["MinInferenceUnits"], desc["MaxInferenceUnits"]) == ("RUNNING", 1, 2)
    assert rek.stop_project_version(ProjectVersionArn=arn)["Status"] == "STOPPING"
    assert version_description(rek, project, "v1")["Status"] == "STOPPING"
    with pytest.raises(ClientError) as err:
        rek.stop_project_version(ProjectVersionArn=arn)
    assert err.value.response["Error"]["Code"] == "ResourceInUseException"
    _poll_status(rek, project, "v1", "STOPPED")
    # A stopped model can be started again.
    assert rek.start_project_version(ProjectVersionArn=arn, MinInferenceUnits=1)["Status"] == "STARTING"
    rek.get_waiter("project_version_running").wait(ProjectArn=project, VersionNames=["v1"], WaiterConfig=FAST)
    rek.stop_project_version(ProjectVersionArn=arn)
    _poll_status(rek, project, "v1", "STOPPED")


def test_unknown_version_and_validation(emulator, rek):
    unknown = "arn:aws:rekognition:us-east-1:123456789012:project/none/version/v1/1"
    for call in (lambda: rek.start_project_version(ProjectVersionArn=unknown, MinInferenceUnits=1),
                 lambda: rek.stop_project_version(ProjectVersionArn=unknown)):
        with pytest.raises(ClientError) as err:
            call()
        assert err.value.response["Error"]["Code"] == "ResourceNotFoundException"
    with pytest.raises(ClientError) as err:
        client(emulator, "rekognition", validate=False).start_project_version(ProjectVersionArn=unknown, MinInferenceUnits=0)
    assert err.value.response["Error"]["Code"] == "ValidationException"
    with pytest.raises(ClientError) as err:
        rek.start_project_version(ProjectVersionArn="arn:aws:rekognition:us-east-1:123456789012:project/none/1", MinInferenceUnits=1)
    assert err.value.response["Error"]["Code"] == "ValidationException"


def _poll_status(rek, project: str, version: str, wanted: str) -> None:
    version_reaches(rek, project, version, wanted)


def test_delete_refuses_a_running_or_training_version_then_the_version_goes(emulator, rek, data, trained, emulator_knobs):
    emulator_knobs(training_seconds=0.5, start_seconds=0.2, stop_seconds=0.2)
    project = trained["project"]
    arn = rek.create_project_version(ProjectArn=project, VersionName="to-delete",
                                     OutputConfig={"S3Bucket": data["bucket"], "S3KeyPrefix": "out"})["ProjectVersionArn"]
    with pytest.raises(ClientError) as err:
        rek.delete_project_version(ProjectVersionArn=arn)  # still training
    assert err.value.response["Error"]["Code"] == "ResourceInUseException"
    assert "TRAINING_IN_PROGRESS" in err.value.response["Error"]["Message"]
    rek.get_waiter("project_version_training_completed").wait(ProjectArn=project, VersionNames=["to-delete"],
                                                              WaiterConfig=FAST)
    rek.start_project_version(ProjectVersionArn=arn, MinInferenceUnits=1)
    rek.get_waiter("project_version_running").wait(ProjectArn=project, VersionNames=["to-delete"], WaiterConfig=FAST)
    with pytest.raises(ClientError) as err:
        rek.delete_project_version(ProjectVersionArn=arn)  # running: stop it first
    assert err.value.response["Error"]["Code"] == "ResourceInUseException"
    assert "RUNNING" in err.value.response["Error"]["Message"]
    rek.stop_project_version(ProjectVersionArn=arn)
    _poll_status(rek, project, "to-delete", "STOPPED")

    assert rek.delete_project_version(ProjectVersionArn=arn)["Status"] == "DELETING"
    assert version_description(rek, project, "to-delete")["Status"] == "DELETING"
    _poll_gone(rek, project, "to-delete")
    names = [d["ProjectVersionArn"] for d in rek.describe_project_versions(ProjectArn=project)["ProjectVersionDescriptions"]]
    assert arn not in names and trained["version"] in names  # only that version went
    with pytest.raises(ClientError) as err:
        rek.delete_project_version(ProjectVersionArn=arn)
    assert err.value.response["Error"]["Code"] == "ResourceNotFoundException"


def _poll_gone(rek, project: str, version: str) -> None:
    version_gone(rek, project, version)
