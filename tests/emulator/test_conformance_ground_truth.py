"""Conformance with Ground Truth's output data reference (sms-data-output): file names, worker times and
label counters, through boto3 over HTTP."""

from __future__ import annotations

import datetime as dt
import uuid

from .test_ground_truth_workforce import aws, bucket, builtin, job_request, keys, knobs, read_json, read_lines, run  # noqa: F401

NAME_FORMAT = "%Y-%m-%d_%H:%M:%S.json"  # how AWS's object-detection notebook parses them


def _parse_iso(value: str) -> dt.datetime:
    return dt.datetime.strptime(value, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=dt.timezone.utc)


def test_batches_of_one_second_get_distinct_names_in_aws_format(aws, bucket, knobs):
    knobs.labeling_seconds = 0.2  # all four consolidation batches land within the same second
    name = f"names-{uuid.uuid4().hex[:8]}"
    job = run(aws, job_request(bucket, name, "boxes.manifest", "bbox", *builtin("AdjustmentBoundingBox")))
    assert job["LabelingJobStatus"] == "Completed", job.get("FailureReason")
    files = keys(aws, bucket, f"out/{name}/annotations/consolidated-annotation/")
    requests = [f.rsplit("/", 1)[1] for f in files if f.startswith("consolidation-request/iteration-1/")]
    responses = [f.rsplit("/", 1)[1] for f in files if f.startswith("consolidation-response/iteration-1/")]
    assert len(requests) >= 2 and requests == responses
    stamps = [dt.datetime.strptime(n, NAME_FORMAT) for n in requests]  # raises on a "-2" suffix
    assert len(set(stamps)) == len(stamps)


def test_worker_times_lie_within_the_job_and_counters_match_the_output(aws, bucket, knobs):
    name = f"times-{uuid.uuid4().hex[:8]}"
    job = run(aws, job_request(bucket, name, "boxes.manifest", "bbox", *builtin("AdjustmentBoundingBox"), workers=3))
    assert job["LabelingJobStatus"] == "Completed", job.get("FailureReason")
    created = job["CreationTime"]
    for key in [f for f in keys(aws, bucket, f"out/{name}/") if f.startswith("annotations/worker-response/")]:
        for answer in read_json(aws, bucket, f"out/{name}/{key}")["answers"]:
            accepted, submitted = _parse_iso(answer["acceptanceTime"]), _parse_iso(answer["submissionTime"])
            assert created <= accepted <= submitted, (created, answer)
            assert abs((submitted - accepted).total_seconds() - answer["timeSpentInSeconds"]) < 0.01
    lines = read_lines(aws, job["LabelingJobOutput"]["OutputDatasetS3Uri"])
    labelled = sum(1 for line in lines if "bbox" in line)
    counters = job["LabelCounters"]
    assert counters["HumanLabeled"] == counters["TotalLabeled"] == labelled == len(lines)
    assert counters["Unlabeled"] == counters["FailedNonRetryableError"] == 0
