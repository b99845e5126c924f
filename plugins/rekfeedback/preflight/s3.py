"""Preflight: the input images, the output prefix (writable) and the CORS rule Ground Truth needs."""

from __future__ import annotations

import json
import uuid

from botocore.exceptions import ClientError

from rekfeedback import turn_config
from rekfeedback.core import paid
from rekfeedback.core.paths import parse_s3_uri
from rekfeedback.core.throughput import classify_code
from rekfeedback.hooks.loop_store import LoopStore
from rekfeedback.core.predictions import exclusion_set, has_image_extension, iter_jsonl, source_refs_from_manifest
from rekfeedback.preflight.checker import Checker, GT_CORS_RULE, MANIFEST_SUFFIXES, MARKER_NAME, MAX_LISTED, bucket_region, error_code, error_message, is_denied, is_not_found

def check_input(checker: Checker) -> None:
    if not checker.usable("input_uri"):
        return
    report, uri = checker.report, checker.config["input_uri"]
    loc = parse_s3_uri(uri, "input_uri")
    s3 = checker.client("s3")
    is_manifest = loc.key.lower().endswith(MANIFEST_SUFFIXES)
    try:
        if is_manifest:
            text = s3.get_object(Bucket=loc.bucket, Key=loc.key)["Body"].read()
            refs = source_refs_from_manifest(text, what=f"input manifest {uri}")
            candidates = [r for r in refs if has_image_extension(r)]
            ignored = len(refs) - len(candidates)
        else:
            candidates, ignored = _list_images(s3, loc.bucket, loc.key, checker.etags)
    except ClientError as exc:
        if error_code(exc) == "NoSuchBucket":
            report.error("input", uri, f"bucket {loc.bucket} does not exist (or not in this account)",
                         "fix input_uri, or create the bucket and upload the images")
        elif error_code(exc) in ("NoSuchKey", "404"):
            report.error("input", uri, "the input manifest does not exist", "fix input_uri or upload the manifest")
        elif is_denied(exc):
            report.error("input", uri, f"access denied listing/reading the input ({error_message(exc)})",
                         "give the Airflow AWS connection s3:ListBucket and s3:GetObject on the input bucket")
        else:
            report.error("input", uri, f"cannot read the input: {error_message(exc)}", "check input_uri and the bucket")
        return
    except ValueError as exc:
        report.error("input", uri, str(exc), "fix the manifest: one JSON object per line with an s3:// source-ref")
        return
    report.facts["candidates"] = len(candidates)
    if ignored:
        report.facts["ignored_objects"] = ignored
    checker.image_uris = candidates
    region = bucket_region(checker, loc.bucket)
    if region and region != checker.region:
        report.error("input", f"s3://{loc.bucket}", f"the input bucket is in {region}, the turn runs in {checker.region}",
                     "DetectCustomLabels and Ground Truth need the images in the model's region: copy them to a "
                     f"bucket in {checker.region}")
    if not candidates:
        report.warning("input", uri, "no candidate images (.jpg, .jpeg, .png) found", "check input_uri; the run "
                                                                                       "will skip until images arrive")
        checker.new_uris = []
        report.facts["new_images"] = 0
        return
    first = parse_s3_uri(candidates[0])
    try:
        s3.get_object(Bucket=first.bucket, Key=first.key, Range="bytes=0-0")["Body"].read()
    except ClientError as exc:
        report.error("input", candidates[0], f"an input image cannot be read ({error_message(exc)})",
                     "give the Airflow AWS connection s3:GetObject on the input images")
        return
    _count_new(checker, candidates)
    report.ok("input", uri)


def _list_images(s3, bucket: str, prefix: str, etags: dict) -> tuple[list[str], int]:
    images, ignored = [], 0
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        for obj in page.get("Contents", []):
            if obj["Key"].endswith("/"):
                continue
            if has_image_extension(obj["Key"]):
                images.append(f"s3://{bucket}/{obj['Key']}")
                etags[images[-1]] = paid.normalize_etag(obj.get("ETag"))
            else:
                ignored += 1
        if len(images) >= MAX_LISTED:
            break
    return images, ignored


def _count_new(checker: Checker, candidates: list[str]) -> None:
    """New = not in the cumulative manifest, not known to be unusable (same ETag), or this run's own (a rerun).

    Also counts `to_predict`: the new images that need a DetectCustomLabels call, i.e. not already
    predicted by this run (a rerun) nor paid for by an earlier turn (core.paid): when it is 0 the
    model is not started.
    """
    report = checker.report
    done: set[str] = set()
    if checker.usable("output_uri"):
        uri = turn_config.cumulative_manifest_uri(checker.config, checker.dag_id)
        refs = _refs_of(checker, uri, "cumulative manifest")
        if refs is None or not _same_bucket(checker, uri, refs, candidates):
            return
        done |= refs
    own = _predicted_by_this_run(checker) if checker.turn_prefix else {}
    done -= set(own)
    new = [u for u in candidates if u not in done]
    to_predict = [u for u in new if u not in own or classify_code((own[u].get("error") or {}).get("code")) != "fatal"]
    report.facts["known_unusable"] = report.facts["reusable_predictions"] = 0
    if checker.usable("output_uri") and checker.usable("project_version_arn") and to_predict:
        store = LoopStore(checker.client("s3"))
        ledger = store.read_ledger(parse_s3_uri(turn_config.paid_predictions_uri(checker.config, checker.dag_id)))
        plan = paid.plan(store.etags_for(to_predict, checker.etags, ledger), ledger,
                         checker.config["project_version_arn"])
        unusable = {line["source-ref"] for line in plan.unusable}
        new = [u for u in new if u not in unusable]
        to_predict = plan.todo
        report.facts["known_unusable"], report.facts["reusable_predictions"] = len(unusable), len(plan.reuse)
    checker.new_uris = new
    report.facts["already_labelled"] = len(candidates) - len(new) - report.facts["known_unusable"]
    report.facts["new_images"] = len(new)
    report.facts["to_predict"] = len(to_predict)
    if not checker.new_uris:
        report.warning("input", checker.config["input_uri"],
                       f"nothing new to label: all {len(candidates)} images are already in the cumulative manifest "
                       f"(or known to be unusable, e.g. corrupt)",
                       "add new images under input_uri; this run skips without starting the model")


def _same_bucket(checker: Checker, manifest_uri: str, labelled: set[str], candidates: list[str]) -> bool:
    """Whether the new images are in the cumulative manifest's bucket; reports the error if not.

    A Rekognition manifest holds the images of one bucket. Merging images of another bucket into it
    would have to drop one side's verified lines, so the turn is refused here, before the model is
    started or anything is paid for.
    """
    dataset_buckets = {ref[5:].split("/", 1)[0] for ref in labelled}
    new_buckets = sorted({ref[5:].split("/", 1)[0] for ref in candidates if ref not in labelled} - dataset_buckets)
    if not dataset_buckets or not new_buckets:
        return True
    dataset_bucket = sorted(dataset_buckets)[0]
    checker.report.error(
        "input", checker.config["input_uri"],
        f"the new images are in bucket {', '.join(new_buckets)} but the cumulative dataset {manifest_uri} holds "
        f"{len(labelled)} images of bucket {dataset_bucket}; a Rekognition manifest takes one bucket, so merging "
        "would lose verified answers",
        f"copy the new images into the dataset's bucket (e.g. `aws s3 sync {checker.config['input_uri']} "
        f"s3://{dataset_bucket}/<prefix>/`) and set input_uri to that copy, or start a new cumulative dataset by "
        "setting dataset_name to a new name (the old one stays as it is)")
    return False


def _refs_of(checker: Checker, uri: str, what: str) -> set[str] | None:
    """The source-refs of a loop file (empty when it does not exist yet); None after reporting an error."""
    loc = parse_s3_uri(uri)
    try:
        text = checker.client("s3").get_object(Bucket=loc.bucket, Key=loc.key)["Body"].read()
        return exclusion_set([(uri, text)])
    except ClientError as exc:
        if is_not_found(exc):
            return set()
        checker.report.error("input", uri, f"the {what} exists but cannot be read ({error_message(exc)})",
                             "give the connection s3:GetObject on the output prefix; without it every image "
                             "would be labelled again")
    except ValueError as exc:
        checker.report.error("input", uri, f"the {what} is not valid: {exc}",
                             "repair or remove the bad lines (the merge writes rejects to manifest/rejects.jsonl)")
    return None


def _predicted_by_this_run(checker: Checker) -> dict[str, dict]:
    """Lines of this run's prediction files (and checkpoints): an earlier try of the run took these
    images, so they are still its own, and those done need no call again."""
    loc = parse_s3_uri(checker.turn_prefix).join("predictions")
    s3, lines = checker.client("s3"), {}
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=loc.bucket, Prefix=loc.key + "/"):
        for obj in page.get("Contents", []):
            if obj["Key"].endswith(".jsonl"):
                text = s3.get_object(Bucket=loc.bucket, Key=obj["Key"])["Body"].read()
                for line in iter_jsonl(text, f"s3://{loc.bucket}/{obj['Key']}"):
                    ref = line.get("source-ref")
                    if isinstance(ref, str) and (ref not in lines or not line.get("error")):
                        lines[ref] = line
    return lines


# ----------------------------------------------------------------------------------------- output

def check_output(checker: Checker) -> None:
    if not checker.usable("output_uri"):
        return
    report, uri = checker.report, checker.config["output_uri"]
    loc = parse_s3_uri(uri, "output_uri")
    s3 = checker.client("s3")
    region = bucket_region(checker, loc.bucket)
    if region and region != checker.region:
        report.error("output", f"s3://{loc.bucket}", f"the output bucket is in {region}, the turn runs in "
                                                     f"{checker.region}",
                     f"Ground Truth and Rekognition training need it in {checker.region}: use a bucket there")
    # One marker per attempt: two preflights at once must not delete each other's marker.
    marker = loc.join(checker.dag_id, f"{MARKER_NAME}-{uuid.uuid4().hex[:12]}")
    try:
        s3.put_object(Bucket=marker.bucket, Key=marker.key, Body=b"rekfeedback preflight: safe to delete\n")
    except ClientError as exc:
        if error_code(exc) == "NoSuchBucket":
            report.error("output", uri, f"bucket {loc.bucket} does not exist", "create it or fix output_uri")
        else:
            report.error("output", uri, f"cannot write under the output prefix ({error_message(exc)})",
                         "give the Airflow AWS connection s3:PutObject and s3:DeleteObject on the output prefix")
        return
    try:
        s3.delete_object(Bucket=marker.bucket, Key=marker.key)
    except ClientError as exc:
        report.warning("output", str(marker), f"the preflight marker could not be removed ({error_message(exc)})",
                       "delete it by hand, and give the connection s3:DeleteObject on the output prefix")
    report.ok("output", uri)


# ------------------------------------------------------------------------------------------- CORS

def cors_problem(rules: list[dict]) -> tuple[str, str] | None:
    """(severity, problem) when no CORS rule lets the Ground Truth worker UI GET the images, else None."""
    fits = [r for r in rules if "GET" in [m.upper() for m in r.get("AllowedMethods", [])]
            and any(o == "*" or "sagemaker.aws" in o for o in r.get("AllowedOrigins", []))]
    if not fits:
        return ("error", "no CORS rule allows GET from any origin, so Ground Truth's worker UI cannot load the "
                         "images and the tasks fail")
    if not any("access-control-allow-origin" in [h.lower() for h in r.get("ExposeHeaders", [])] for r in fits):
        return ("warning", "the CORS rule allowing GET does not expose Access-Control-Allow-Origin as Ground "
                           "Truth's documented rule does")
    return None


def check_cors(checker: Checker) -> None:
    if not checker.ground_truth:
        return
    buckets = sorted({parse_s3_uri(u).bucket for u in checker.image_uris})
    if not buckets and checker.usable("input_uri"):
        loc = parse_s3_uri(checker.config["input_uri"])
        if not loc.key.lower().endswith(MANIFEST_SUFFIXES):
            buckets = [loc.bucket]
    rule = json.dumps(GT_CORS_RULE)

    def advice(bucket: str) -> str:
        return (f"add the rule {rule} (S3 console > bucket > Permissions > CORS, or `aws s3api put-bucket-cors "
                f"--bucket {bucket} --cors-configuration '{{\"CORSRules\": [{rule}]}}'`)")
    for bucket in buckets:
        resource = f"s3://{bucket}"
        try:
            rules = checker.client("s3").get_bucket_cors(Bucket=bucket).get("CORSRules", [])
        except ClientError as exc:
            if error_code(exc) == "NoSuchCORSConfiguration":
                checker.report.error("cors", resource, "the bucket has no CORS configuration, so Ground Truth's "
                                                       "worker UI cannot show its images and the tasks fail",
                                     advice(bucket))
            elif error_code(exc) == "NoSuchBucket":
                continue  # the input check reports it
            else:
                checker.report.warning("cors", resource, f"the CORS configuration cannot be read ({error_message(exc)})",
                                       "check by hand that it has " + json.dumps(GT_CORS_RULE))
            continue
        problem = cors_problem(rules)
        if problem:
            checker.report.add("cors", resource, problem[1], advice(bucket), problem[0])
        else:
            checker.report.ok("cors", resource)
