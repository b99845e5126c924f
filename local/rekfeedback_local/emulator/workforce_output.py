"""The simulated workforce: consolidation (the job's Lambdas or AWS's built-in rules) and Ground Truth's
S3 output layout. Mixed into `workforce.JobRun`."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os

from rekfeedback.core.paths import parse_s3_uri
from rekfeedback_local.emulator import gt_builtin
from rekfeedback_local.emulator.workforce_models import CUSTOM_TYPE, EVENT_VERSION, JobFailure, _Object, _ObjectFailure, _creation_date, log


class JobOutput:
    """How JobRun consolidates and writes its output (its env, job and registry)."""

    def _consolidate(self, objects: list[_Object]) -> None:
        if not objects:
            return
        stamp = self._stamp("consolidation")
        request = [{
            "datasetObjectId": o.id,
            "dataObject": {"s3Uri": o.line["source-ref"]} if "source-ref" in o.line else {"content": o.line["source"]},
            "annotations": [{"workerId": w["workerId"],
                             "annotationData": {"content": json.dumps(w["answerContent"], separators=(",", ":"))}}
                            for w in o.workers],
        } for o in objects]
        request_uri = self._put_json(f"annotations/consolidated-annotation/consolidation-request/iteration-1/{stamp}.json",
                                     request)
        if self.task:
            response = self._builtin_consolidation(objects)
        elif self._consolidation_arn():
            try:
                response = self._custom_consolidation(request_uri)
            except _ObjectFailure as err:
                for o in objects:
                    o.failure = str(err)
                self.job.update(self.env.clock(), FailedNonRetryableError=len(objects), Unlabeled=-len(objects))
                return
        else:
            response = None  # documented: no post-Lambda -> {} plus worker-response-ref
        if response is not None:
            self._put_json(f"annotations/consolidated-annotation/consolidation-response/iteration-1/{stamp}.json",
                           response)
        self._apply(objects, response)

    def _builtin_consolidation(self, objects: list[_Object]) -> list[dict]:
        attribute = self.request["LabelAttributeName"]
        response = []
        for o in objects:
            value, meta = gt_builtin.consolidate(
                self.task, [w["answerContent"] for w in o.workers], self.labels, job_name=self.job.name,
                creation_date=_creation_date(self.env.clock()), size=o.size, initial=o.initial,
                verdicts=self.verdicts)
            o.result = (value, meta)
            response.append({"datasetObjectId": o.id, "consolidatedAnnotation": {"content": {attribute: value}}})
        return response

    def _custom_consolidation(self, request_uri: str) -> list:
        arn = self._consolidation_arn()
        event = {
            "version": EVENT_VERSION,
            "labelingJobArn": self.job.arn,
            "labelCategories": list(self.labels) if self.request.get("LabelCategoryConfigS3Uri") else None,
            "labelAttributeName": self.request["LabelAttributeName"],
            "roleArn": self.request["RoleArn"],
            "payload": {"s3Uri": request_uri},
            "outputConfig": f"{self.prefix}/annotations",
        }
        if self.request["OutputConfig"].get("KmsKeyId"):
            event["kmsKeyId"] = self.request["OutputConfig"]["KmsKeyId"]
        response = self._invoke(arn, event, "annotation-consolidation")
        if isinstance(response, str):
            response = json.loads(response)
        if not isinstance(response, list):
            raise _ObjectFailure(f"ClientError: The annotation-consolidation Lambda {arn} must return a list, "
                                 f"got {type(response).__name__}")
        return response

    def _apply(self, objects: list[_Object], response: list | None) -> None:
        attribute = self.request["LabelAttributeName"]
        by_id = {}
        for item in response or []:
            if isinstance(item, dict) and "datasetObjectId" in item:
                by_id[str(item["datasetObjectId"])] = item
        labeled = failed = 0
        for o in objects:
            if self.task:
                labeled += 1
                continue
            if response is None:
                ref = f"{self.prefix}/annotations/worker-response/iteration-1/{o.id}/"
                o.result = ({}, {**self._custom_metadata(), "worker-response-ref": ref})
                labeled += 1
                continue
            content = ((by_id.get(o.id) or {}).get("consolidatedAnnotation") or {}).get("content")
            if not isinstance(content, dict) or attribute not in content:
                o.failure = (f"ClientError: The annotation-consolidation Lambda returned no "
                             f"consolidatedAnnotation.content.{attribute} for datasetObjectId {o.id}.")
                failed += 1
                continue
            o.result = (content[attribute], self._custom_metadata())
            labeled += 1
        self.job.update(self.env.clock(), HumanLabeled=labeled, FailedNonRetryableError=failed,
                        Unlabeled=-(labeled + failed))

    def _custom_metadata(self) -> dict:
        return {"type": CUSTOM_TYPE, "job-name": self.job.name, "human-annotated": "yes",
                "creation-date": _creation_date(self.env.clock())}

    def _invoke(self, arn: str, event: dict, what: str):
        # Lambda code reaches AWS through this endpoint, as a deployed function reaches the real one.
        for var, value in (("AWS_ENDPOINT_URL", self.env.endpoint_url), ("AWS_DEFAULT_REGION", self.env.region),
                           ("AWS_ACCESS_KEY_ID", "testing"), ("AWS_SECRET_ACCESS_KEY", "testing")):
            os.environ.setdefault(var, value)
        try:
            return self.registry.invoke(arn, json.loads(json.dumps(event)), self.config.lambdas)
        except LookupError as err:
            raise _ObjectFailure(f"ClientError: Cannot invoke the {what} Lambda: {err}")
        except Exception as err:  # noqa: BLE001 - a failing Lambda fails its data objects, as on AWS
            log.exception("%s Lambda %s failed", what, arn)
            raise _ObjectFailure(f"ClientError: The {what} Lambda {arn} failed: {type(err).__name__}: {err}")

    def _write_manifest(self, objects: list[_Object], key: str) -> str:
        attribute = self.request["LabelAttributeName"]
        lines = []
        for o in objects:
            line = dict(o.line)
            if o.result is not None:
                line[attribute], line[f"{attribute}-metadata"] = o.result
            elif o.failure:
                line.pop(attribute, None)
                line[f"{attribute}-metadata"] = {
                    "retry-count": 1, "failure-reason": o.failure[:1024], "human-annotated": "yes",
                    "job-name": self.job.name if not self.task else f"labeling-job/{self.job.name}",
                    "creation-date": _creation_date(self.env.clock())}
            lines.append(json.dumps(line, separators=(",", ":")))
        return self._put(key, ("\n".join(lines) + "\n").encode())

    def _put_json(self, key: str, doc) -> str:
        return self._put(key, json.dumps(doc, separators=(",", ":")).encode())

    def _put(self, key: str, body: bytes) -> str:
        uri = f"{self.prefix}/{key}"
        loc = parse_s3_uri(uri, "S3OutputPath")
        try:
            self.env.s3().put_object(Bucket=loc.bucket, Key=loc.key, Body=body)
        except Exception as err:  # noqa: BLE001
            raise JobFailure(f"ClientError: Failed to write {uri} (check S3OutputPath and its bucket): {err}")
        return uri

    def _stamp(self, folder: str = "") -> str:
        """Ground Truth names these files `%Y-%m-%d_%H:%M:%S` by the second of the batch (sms-data-output):
        a second batch in the same emulated second is dated the next free second, never suffixed, so code
        that parses the names (AWS's object-detection notebook does) reads every file."""
        second = int(self.env.clock())
        while (folder, second) in self.written:
            second += 1
        self.written.add((folder, second))
        return dt.datetime.fromtimestamp(second, dt.timezone.utc).strftime("%Y-%m-%d_%H:%M:%S")

    def _worker_id(self, worker: int, name: str | None = None) -> str:
        # One id per crew member across objects (as a real worker's sub), else per worker slot.
        digest = hashlib.sha1(f"{self.task_config['WorkteamArn']}:{name if name else worker}".encode()).hexdigest()
        crowd = "public" if "/public-crowd/" in self.task_config["WorkteamArn"] else "private"
        return f"{crowd}.{self.env.region}.{digest[:16]}"
