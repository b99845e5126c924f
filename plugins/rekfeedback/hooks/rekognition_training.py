"""What training a version takes beyond single Rekognition calls: bringing the project's TRAIN and TEST datasets
up to the merged manifest, one dataset change at a time, and reading and comparing versions' evaluations. The rules (the
split, chunking) are in `core/training.py`; the calls are `RekognitionCustomLabelsHook`'s and `S3Artifacts`'."""

from __future__ import annotations

import json
import logging
import os
import tempfile

from airflow.sdk.exceptions import AirflowException

from rekfeedback.core.evaluation import compare, parse_summary
from rekfeedback.core.paths import S3Uri, parse_s3_uri
from rekfeedback.core.training import manifest_chunks, split_manifest
from rekfeedback.hooks.rekognition import RekognitionCustomLabelsHook, parse_project_version_arn
from rekfeedback.hooks.s3_artifacts import S3Artifacts

KINDS = ("TRAIN", "TEST")


def next_dataset_change(hook: RekognitionCustomLabelsHook, files: S3Artifacts, *, project_arn: str, manifest_uri: str,
                        turn: S3Uri, test_share: float, max_chunk_bytes: int,
                        log: logging.Logger | logging.LoggerAdapter) -> str | None:
    """Make the next dataset change and return the dataset to wait for, or None when both are up to date.

    Safe to repeat: `training/datasets.json` under the turn records, per manifest (its ETag), how many
    UpdateDatasetEntries chunks each dataset took; an entry replaces the one with the same source-ref, so a
    chunk sent twice after a crash changes nothing.
    """
    datasets = hook.project_datasets(project_arn)
    src = parse_s3_uri(manifest_uri, "manifest_uri")
    progress_uri = turn.join("training", "datasets.json")
    etag = files.etag(src)
    if etag is None:
        raise FileNotFoundError(f"manifest_uri {manifest_uri} does not exist; pass ManifestMergeOperator's manifest_uri")
    progress = json.loads(files.read_text(progress_uri, missing_ok=True) or "{}")
    if progress.get("manifest_etag") != etag:
        progress = {"manifest_etag": etag, "sent": {}}
    with tempfile.TemporaryDirectory(prefix="rekfeedback-train-") as tmp:
        local, paths = os.path.join(tmp, "merged.manifest"), {k: os.path.join(tmp, k) for k in KINDS}
        files.download(src, local)
        with open(local, encoding="utf-8") as f, open(paths["TRAIN"], "w", encoding="utf-8") as tr, \
                open(paths["TEST"], "w", encoding="utf-8") as te:
            counts = dict(zip(KINDS, split_manifest(f, tr, te, test_share, manifest_uri)))
        if counts["TRAIN"] == 0:
            raise ValueError(f"{manifest_uri} gives no TRAIN image (it is empty, or test_share is 1)")
        if "TEST" not in datasets and counts["TEST"] == 0:
            raise AirflowException(
                f"Project {project_arn} has no TEST dataset and test_share={test_share} routed no image to TEST; "
                "Rekognition needs both datasets to train. Set test_share > 0 (e.g. 0.2).")
        for kind in KINDS:
            if counts[kind] == 0:
                continue
            with open(paths[kind], encoding="utf-8") as f:
                chunks = list(manifest_chunks(f, int(max_chunk_bytes)))
            sent = int(progress["sent"].get(kind, 0))
            if sent >= len(chunks):
                continue
            target = turn.join("training", f"{kind.lower()}.manifest")
            if sent == 0:  # what this turn adds to the dataset, kept beside the turn
                files.upload(paths[kind], target)
            if kind in datasets:
                desc = hook.describe_dataset(datasets[kind])
                if desc["Status"].endswith("IN_PROGRESS"):  # an update is refused while another one runs
                    return datasets[kind]
                if desc["Status"].endswith("FAILED") and sent:
                    raise AirflowException(f"{kind} dataset {datasets[kind]} is {desc['Status']}: "
                                           f"{desc.get('StatusMessage')} ({desc.get('StatusMessageCode')})")
                hook.update_dataset_entries(datasets[kind], chunks[sent])
                progress["sent"][kind] = sent + 1
                log.info("%s dataset %s: UpdateDatasetEntries %d of %d (%d image(s) for %s)", kind,
                         datasets[kind], sent + 1, len(chunks), counts[kind], kind)
            else:
                log.info("The project has no %s dataset: creating it from %s", kind, target)
                datasets[kind] = hook.create_dataset(project_arn, kind, target.bucket, target.key)
                progress["sent"][kind] = len(chunks)
            files.write_text(progress_uri, json.dumps(progress, sort_keys=True), "application/json")
            return datasets[kind]
    # Every change sent: wait until the last one is applied before training.
    for arn in datasets.values():
        if hook.describe_dataset(arn)["Status"].endswith("IN_PROGRESS"):
            return arn
    return None


def read_evaluation(hook: RekognitionCustomLabelsHook, files: S3Artifacts, description: dict):
    """The version's evaluation (core.evaluation) and the S3 URI of its summary file: (None, None) before there is
    one; the summary's per-label figures when the file is there, the overall F1 alone otherwise."""
    result = description.get("EvaluationResult")
    if not result:
        return None, None
    s3obj = hook.evaluation_summary_object(description)
    if s3obj is None:
        return parse_summary({}, result.get("F1Score")), None
    body = files.read_bytes(S3Uri(s3obj["Bucket"], s3obj["Name"]))
    return parse_summary(body, result.get("F1Score")), f"s3://{s3obj['Bucket']}/{s3obj['Name']}"


def compare_versions(hook: RekognitionCustomLabelsHook, files: S3Artifacts, *, project_arn: str, new_version_arn: str,
                     base_version_arn: str | None, margin: float, log: logging.Logger | logging.LoggerAdapter) -> dict:
    """The trained version's evaluation against the base version's (core.evaluation.compare), with where it
    came from; a clear error when the new version has none."""
    arn = new_version_arn
    desc = hook.describe_project_version(arn, project_arn)
    if desc["Status"] != "TRAINING_COMPLETED":
        raise AirflowException(f"Model version {arn} is {desc['Status']}: {desc.get('StatusMessage')}")
    after, summary_uri = read_evaluation(hook, files, desc)
    if after is None:
        raise AirflowException(f"Model version {arn} completed training without an EvaluationResult")
    before = None
    if base_version_arn:
        before, _ = read_evaluation(hook, files, hook.describe_project_version(base_version_arn))
        if before is None:
            log.warning("Base version %s has no evaluation; nothing to compare with", base_version_arn)
    result = compare(before, after, margin)
    result.update(new_version_arn=arn, version_name=parse_project_version_arn(arn).version_name,
                  base_version_arn=base_version_arn, evaluation_summary_uri=summary_uri,
                  testing_images=after.testing_images, training_images=after.training_images)
    log.info("F1 %s -> %s (margin %s): %s", result["f1_before"], result["f1_after"], result["margin"],
             "improved" if result["improved"] else "not improved")
    return result
