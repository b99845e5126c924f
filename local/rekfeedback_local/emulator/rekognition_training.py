"""Emulated Rekognition Custom Labels: training a model version on a background thread (read the
manifests and images, fit `model.NeighbourModel`, write the evaluation summary and manifests).
Mixed into `rekognition.RekognitionService`."""

from __future__ import annotations

import json
from datetime import datetime, timezone
from typing import Any

from botocore.exceptions import ClientError

from . import manifests, model
from .errors import ApiError
from .rekognition_models import MAX_SIDE, MIN_SIDE, TrainingFailure, Version, _INVALID_SHARE, _aggregated, _auto_split, _check_training_data


class TrainingOperations:
    """Training of RekognitionService (its lock, env and state)."""

    def _train(self, v: Version, plan: dict, fail: bool) -> None:
        stats: dict[str, Any] = {"training": {}, "testing": {}}
        errors: list[dict] = []
        try:
            train_entries, test_entries = plan["train"], plan["test"]
            if plan["assets"] is not None:
                training, testing = plan["assets"]
                train_entries = self._read_assets(training["Assets"], "TrainingData")
                test_entries = self._read_assets(testing["Assets"], "TestingData") if testing.get("Assets") else None
            # Unlabeled lines are valid but not trained on: the manifest summary counts them as ignored
            # (tm-debugging-scope-json-line: "WARNING_... errors are ... counted as ignored JSON lines").
            unlabeled = {"training": sum(1 for e in train_entries if not e.labeled),
                         "testing": sum(1 for e in test_entries or [] if not e.labeled)}
            train_entries = [e for e in train_entries if e.labeled]
            if test_entries is not None:
                test_entries = [e for e in test_entries if e.labeled]
            if not test_entries:
                train_entries, test_entries = _auto_split(train_entries)
            use_case = (manifests.OBJECT_LOCALIZATION
                        if any(manifests.OBJECT_LOCALIZATION in e.use_cases for e in train_entries)
                        else manifests.IMAGE_LEVEL_LABELS)
            train_items, train_rejected = self._load_items(train_entries, use_case, stats["training"], unlabeled["training"])
            test_items, test_rejected = self._load_items(test_entries, use_case, stats["testing"], unlabeled["testing"])
            if fail:
                raise TrainingFailure("ERROR_INJECTED_FAILURE", "Training failed (fail_training is set on the emulator).")
            _check_training_data(train_items, test_items, use_case)
            wrong, instead = plan.get("mislabel") or (None, None)
            examples = [(f, instead if label == wrong else label)
                        for f, label in model.training_examples(use_case, train_items)]
            fitted = model.fit(use_case, examples)
            evaluation = model.evaluate(fitted, test_items)
            v.data_results = self._write_manifests(v, (train_items, train_rejected), (test_items, test_rejected), plan)
            v.summary_key = self._write_summary(v, evaluation, len(train_items))
            v.model, v.evaluation = fitted, evaluation
        except TrainingFailure as exc:
            errors.append({"code": exc.code, "message": str(exc)})
            v.failure = f"The manifest validation failed: {exc}" if exc.code.startswith("ERROR_") else str(exc)
        except Exception as exc:  # noqa: BLE001 - a bug here must surface as a failed version, not a hung one
            v.failure = f"Internal emulator error while training: {exc!r}"
        finally:
            for part in stats.values():
                part.setdefault("errors", [])
            try:
                v.manifest_summary_key = self._put_json(v, "manifest_summary.json", {"statistics": stats, "errors": errors})
            except TrainingFailure as exc:
                v.failure = v.failure or str(exc)
            v.training_end = self.env.clock()
            v.trained.set()

    def _read_assets(self, assets: list[dict], what: str) -> list[manifests.Entry]:
        entries: list[manifests.Entry] = []
        for asset in assets:
            s3obj = (asset.get("GroundTruthManifest") or {}).get("S3Object") or {}
            try:
                text = self._read_text(s3obj.get("Bucket"), s3obj.get("Name"), s3obj.get("Version"))
            except LookupError:
                raise TrainingFailure("ERROR_MANIFEST_INACCESSIBLE_OR_UNSUPPORTED_FORMAT",
                                      f"{what} manifest s3://{s3obj.get('Bucket')}/{s3obj.get('Name')} can't be read.")
            parsed = manifests.parse_manifest(text)
            if parsed.total_lines and parsed.dropped > _INVALID_SHARE * parsed.total_lines:
                raise TrainingFailure("ERROR_TOO_MANY_INVALID_ROWS_IN_MANIFEST",
                                      f"{parsed.dropped} of {parsed.total_lines} lines of the {what} manifest are invalid.")
            entries.extend(parsed.entries)
        return entries

    def _load_items(self, entries: list[manifests.Entry], use_case: str, stats: dict, unlabeled: int = 0):
        """Decode each entry's image; bad images count as invalid lines, as the validation manifests report.

        The summary's per-dataset `errors` list names each bad line (tm-debugging-summary: "statistics and
        errors found in the training dataset"); `unlabeled` lines were set aside before and count as ignored."""
        items, bad, line_errors, rejected, buckets = [], [], [], [], set()
        for index, entry in enumerate(entries):
            if use_case not in entry.use_cases:
                continue
            bucket, key = entry.bucket_key
            buckets.add(bucket)
            try:
                info = self.image_info(bucket, key)
            except ApiError as exc:
                bad.append(index)
                line_errors.append({"code": "ERROR_INVALID_IMAGE", "message": f"line {index}: {exc.message}"})
                rejected.append((entry, line_errors[-1]))
                continue
            if not (MIN_SIDE <= info.width <= MAX_SIDE and MIN_SIDE <= info.height <= MAX_SIDE):
                bad.append(index)
                line_errors.append({"code": "ERROR_INVALID_IMAGE_DIMENSION",
                                    "message": f"line {index}: {info.width}x{info.height} is outside "
                                               f"{MIN_SIDE}..{MAX_SIDE} pixels per side"})
                rejected.append((entry, line_errors[-1]))
                continue
            items.append((entry, info))
        stats.update({"use_case": use_case, "total_json_lines": len(entries) + unlabeled,
                      "valid_json_lines": len(items), "invalid_json_lines": len(bad),
                      "ignored_json_lines": len(entries) - len(items) - len(bad) + unlabeled,
                      "error_json_line_indices": bad, "errors": line_errors})
        if len(buckets) > 1:
            raise TrainingFailure("ERROR_IMAGES_IN_MULTIPLE_S3_BUCKETS", f"Images come from several buckets: {sorted(buckets)}.")
        if entries and len(bad) > _INVALID_SHARE * len(entries):
            raise TrainingFailure("ERROR_TOO_MANY_INVALID_ROWS_IN_MANIFEST",
                                  f"{len(bad)} of {len(entries)} images could not be read or are not valid PNG/JPEG images.")
        return items, rejected

    def _write_summary(self, v: Version, ev: model.Evaluation, n_train: int) -> str:
        summary = {
            "Version": 1,
            "AggregatedEvaluationResults": _aggregated(ev),
            "EvaluationDetails": {
                "EvaluationEndTimestamp": datetime.fromtimestamp(self.env.clock(), timezone.utc).isoformat(timespec="milliseconds"),
                "Labels": sorted(ev.per_label), "NumberOfTestingImages": ev.testing_images,
                "NumberOfTrainingImages": n_train, "ProjectVersionArn": v.arn,
            },
            "LabelEvaluationResults": [
                {"Label": label, "Metrics": {k: m[k] for k in ("F1Score", "Precision", "Recall", "Threshold")},
                 "NumberOfTestingImages": m["NumberOfTestingImages"]}
                # im-summary-file: "The labels are sorted by the F1 score of each label."
                for label, m in sorted(ev.per_label.items(), key=lambda kv: (-kv[1]["F1Score"], kv[0]))
            ],
        }
        return self._put_json(v, f"EvaluationResultSummary-{v.project.name}-{v.name}.json", summary, top=True)

    def _write_manifests(self, v: Version, train_items, test_items, plan: dict) -> dict:
        """TrainingDataResult / TestingDataResult as DescribeProjectVersions gives them: `Input` echoes what
        CreateProjectVersion was given (an AutoCreate test set stays AutoCreate), `Output` the manifests
        trained and tested on, `Validation` the validation result manifests (tm-debugging-getting-validation-data)."""
        supplied = plan["assets"] or (None, None)
        result = {}
        for field_name, (items, rejected), fname, given in (
                ("TrainingDataResult", train_items, "training", supplied[0]),
                ("TestingDataResult", test_items, "testing", supplied[1])):
            body = "\n".join(json.dumps(e.line, separators=(",", ":")) for e, _ in items) + "\n"
            output = self._asset(v, self._put(v, f"{fname}.manifest", body.encode()))
            # The validation manifest is the dataset again with each bad line's errors added to it.
            checked = body + "".join(json.dumps({**e.line, "errors": [error]}, separators=(",", ":")) + "\n"
                                     for e, error in rejected)
            validation = self._asset(v, self._put(v, f"{fname}_manifest_with_validation.json", checked.encode()))
            result[field_name] = {"Input": given if given is not None else {"Assets": [output]},
                                  "Output": {"Assets": [output]}, "Validation": {"Assets": [validation]}}
        return result

    def _asset(self, v: Version, key: str) -> dict:
        return {"GroundTruthManifest": {"S3Object": {"Bucket": v.output_config["S3Bucket"], "Name": key}}}

    def _put_json(self, v: Version, name: str, doc: dict, top: bool = False) -> str:
        return self._put(v, name, json.dumps(doc, indent=1).encode(), top=top)

    def _put(self, v: Version, name: str, body: bytes, top: bool = False) -> str:
        prefix = (v.output_config.get("S3KeyPrefix") or "").strip("/")
        parts = [prefix] if prefix else []
        if not top:
            parts.append(f"{v.project.name}-{v.name}")
        key = "/".join([*parts, name])
        try:
            self.env.s3().put_object(Bucket=v.output_config["S3Bucket"], Key=key, Body=body)
        except ClientError as exc:
            raise TrainingFailure("ERROR_OUTPUT_WRITE", f"Unable to write to the output S3 bucket {v.output_config['S3Bucket']}: "
                                  f"{exc.response['Error'].get('Code')}")
        return key
