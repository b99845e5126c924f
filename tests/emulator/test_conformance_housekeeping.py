"""Conformance, written from the Rekognition API reference: DeleteProject, DeleteDataset,
DistributeDatasetEntries, TagResource / UntagResource / ListTagsForResource and CopyProjectVersion,
through boto3 over HTTP. Before these were emulated, each call fell through to moto as an HTML 500."""

from __future__ import annotations

import pytest
from botocore.exceptions import ClientError

from rekfeedback_local import synthetic

from .helpers import client, manifest_source, project_with_datasets, train, unique, version_description, wait_dataset


@pytest.fixture(scope="module")
def data(emulator):
    s3 = client(emulator, "s3", retries=3)
    bucket = unique("housekeeping")
    made = synthetic.generate(s3, bucket, "d", n=1, seed=31, n_seed=10, n_test=10, bad_files=False)
    return {"bucket": bucket, "seed": made["seed_manifest_uri"], "test": made["test_manifest_uri"],
            "image": made["image_keys"][0]}


@pytest.fixture
def rek(emulator):
    return client(emulator, "rekognition")


def _code(exc: pytest.ExceptionInfo) -> str:
    return exc.value.response["Error"]["Code"]


def test_delete_project_refuses_while_models_exist_then_deletes_it_with_its_datasets(rek, data):
    project = project_with_datasets(rek, data["seed"], data["test"])
    train(rek, project, "v1", data["bucket"])
    with pytest.raises(ClientError) as refused:
        rek.delete_project(ProjectArn=project)
    assert _code(refused) == "ResourceInUseException" and "v1" in str(refused.value)

    other = project_with_datasets(rek, data["seed"], None)
    (desc,) = rek.describe_projects(ProjectNames=[other.split("/")[1]])["ProjectDescriptions"]
    (dataset_arn,) = [d["DatasetArn"] for d in desc["Datasets"]]
    assert rek.delete_project(ProjectArn=other)["Status"] == "DELETING"
    assert rek.describe_projects(ProjectNames=[other.split("/")[1]])["ProjectDescriptions"] == []
    with pytest.raises(ClientError) as gone:
        rek.describe_dataset(DatasetArn=dataset_arn)
    assert _code(gone) == "ResourceNotFoundException"
    with pytest.raises(ClientError) as unknown:
        rek.delete_project(ProjectArn=other)
    assert _code(unknown) == "ResourceNotFoundException"


def later(emulator, monkeypatch, seconds: float) -> None:
    """Move the emulator's clock forward: asynchronous work settles without a sleep."""
    now = emulator.env.clock()
    monkeypatch.setattr(emulator.env, "clock", lambda: now + seconds)


def test_delete_dataset_refuses_while_updating_and_is_gone_after(emulator, emulator_knobs, monkeypatch, rek, data):
    project = project_with_datasets(rek, data["seed"], data["test"])
    (desc,) = rek.describe_projects(ProjectNames=[project.split("/")[1]])["ProjectDescriptions"]
    test_arn = next(d["DatasetArn"] for d in desc["Datasets"] if d["DatasetType"] == "TEST")
    emulator_knobs(dataset_seconds=30)
    rek.update_dataset_entries(DatasetArn=test_arn, Changes={"GroundTruth": b'{"source-ref": "s3://b/x.jpg"}\n'})
    with pytest.raises(ClientError) as busy:
        rek.delete_dataset(DatasetArn=test_arn)
    assert _code(busy) == "ResourceInUseException"
    later(emulator, monkeypatch, 31)
    rek.delete_dataset(DatasetArn=test_arn)
    with pytest.raises(ClientError) as gone:
        rek.describe_dataset(DatasetArn=test_arn)
    assert _code(gone) == "ResourceNotFoundException"
    (desc,) = rek.describe_projects(ProjectNames=[project.split("/")[1]])["ProjectDescriptions"]
    assert [d["DatasetType"] for d in desc["Datasets"]] == ["TRAIN"]


def test_distribute_moves_a_fifth_of_the_training_images_into_the_empty_test_dataset(rek, data, emulator_knobs):
    emulator_knobs(dataset_seconds=0.05)
    project = rek.create_project(ProjectName=unique("dist"))["ProjectArn"]
    train_arn = rek.create_dataset(ProjectArn=project, DatasetType="TRAIN",
                                   DatasetSource=manifest_source(data["seed"]))["DatasetArn"]
    test_arn = rek.create_dataset(ProjectArn=project, DatasetType="TEST")["DatasetArn"]
    for arn in (train_arn, test_arn):
        wait_dataset(rek, arn)
    rek.distribute_dataset_entries(Datasets=[{"Arn": train_arn}, {"Arn": test_arn}])
    assert rek.describe_dataset(DatasetArn=train_arn)["DatasetDescription"]["Status"] == "UPDATE_IN_PROGRESS"
    stats = {arn: wait_dataset(rek, arn) for arn in (train_arn, test_arn)}
    assert {d["Status"] for d in stats.values()} == {"UPDATE_COMPLETE"}
    assert stats[train_arn]["DatasetStats"]["TotalEntries"] == 8
    assert stats[test_arn]["DatasetStats"]["TotalEntries"] == 2
    with pytest.raises(ClientError) as not_empty:  # "The test dataset must be empty."
        rek.distribute_dataset_entries(Datasets=[{"Arn": train_arn}, {"Arn": test_arn}])
    assert _code(not_empty) == "InvalidParameterException" and "empty" in str(not_empty.value)


def test_tags_given_at_creation_and_later_are_listed_and_removed(rek, data):
    project = rek.create_project(ProjectName=unique("tags"), Tags={"team": "vision"})["ProjectArn"]
    assert rek.list_tags_for_resource(ResourceArn=project)["Tags"] == {"team": "vision"}
    rek.tag_resource(ResourceArn=project, Tags={"loop": "rekfeedback", "team": "ml"})
    assert rek.list_tags_for_resource(ResourceArn=project)["Tags"] == {"team": "ml", "loop": "rekfeedback"}
    rek.untag_resource(ResourceArn=project, TagKeys=["team"])
    assert rek.list_tags_for_resource(ResourceArn=project)["Tags"] == {"loop": "rekfeedback"}

    trained_project = project_with_datasets(rek, data["seed"], data["test"])
    version = train(rek, trained_project, "v1", data["bucket"], Tags={"created-by": "rekfeedback"})
    assert rek.list_tags_for_resource(ResourceArn=version)["Tags"] == {"created-by": "rekfeedback"}
    with pytest.raises(ClientError) as unknown:
        rek.list_tags_for_resource(ResourceArn=version.replace("/v1/", "/nope/"))
    assert _code(unknown) == "ResourceNotFoundException"


def test_copy_project_version_copies_a_trained_model_that_then_answers(emulator, monkeypatch, rek, data):
    source_project = project_with_datasets(rek, data["seed"], data["test"])
    source = train(rek, source_project, "v1", data["bucket"])
    target = rek.create_project(ProjectName=unique("copy"))["ProjectArn"]
    copy = rek.copy_project_version(SourceProjectArn=source_project, SourceProjectVersionArn=source,
                                    DestinationProjectArn=target, VersionName="v1-copy",
                                    OutputConfig={"S3Bucket": data["bucket"], "S3KeyPrefix": "copy"},
                                    Tags={"copied": "yes"})["ProjectVersionArn"]
    assert copy.startswith(target.rsplit("/", 1)[0] + "/version/v1-copy/")
    assert version_description(rek, target, "v1-copy")["Status"] == "COPYING_IN_PROGRESS"
    later(emulator, monkeypatch, 5)
    desc = version_description(rek, target, "v1-copy")
    assert desc["Status"] == "COPYING_COMPLETED"
    assert desc["EvaluationResult"]["F1Score"] == version_description(rek, source_project, "v1")["EvaluationResult"]["F1Score"]
    assert rek.list_tags_for_resource(ResourceArn=copy)["Tags"] == {"copied": "yes"}
    with pytest.raises(ClientError) as taken:
        rek.copy_project_version(SourceProjectArn=source_project, SourceProjectVersionArn=source,
                                 DestinationProjectArn=target, VersionName="v1-copy",
                                 OutputConfig={"S3Bucket": data["bucket"]})
    assert _code(taken) == "ResourceInUseException"
    rek.start_project_version(ProjectVersionArn=copy, MinInferenceUnits=1)
    later(emulator, monkeypatch, 10)
    assert version_description(rek, target, "v1-copy")["Status"] == "RUNNING"
    answer = rek.detect_custom_labels(ProjectVersionArn=copy, MinConfidence=0,
                                      Image={"S3Object": {"Bucket": data["bucket"], "Name": data["image"]}})
    assert answer["CustomLabels"], "the copied model answers like its source"
    rek.stop_project_version(ProjectVersionArn=copy)
    later(emulator, monkeypatch, 20)
    assert version_description(rek, target, "v1-copy")["Status"] == "STOPPED"
