"""The champion record on S3 (`<output_uri>/<dag_id>/dataset/champion.json`, `core.champion`'s format) and the
fingerprint of the TEST images a version was evaluated on (read from its testing manifests)."""

from __future__ import annotations

import logging

from airflow.providers.amazon.aws.hooks.s3 import S3Hook

from rekfeedback.core import champion as core
from rekfeedback.core.paths import S3Uri, parse_s3_uri
from rekfeedback.core.predictions import iter_jsonl
from rekfeedback.hooks.rekognition import RekognitionCustomLabelsHook
from rekfeedback.hooks.s3_artifacts import S3Artifacts


class ChampionRecord(S3Artifacts):
    def __init__(self, s3: S3Hook, uri: str) -> None:
        super().__init__(s3)
        self.uri = parse_s3_uri(uri, "champion_record_uri")

    def read(self) -> dict | None:
        return core.parse_record(self.read_bytes(self.uri, missing_ok=True), str(self.uri))

    def write(self, record: dict) -> None:
        self.write_text(self.uri, core.dumps_record(record), "application/json")

    def test_set(self, rekognition: RekognitionCustomLabelsHook, arn: str | None,
                 log: logging.Logger | logging.LoggerAdapter) -> str | None:
        """Fingerprint of the TEST images version `arn` was evaluated on (None when it cannot be read)."""
        if not arn:
            return None
        manifests = rekognition.testing_manifests(rekognition.describe_project_version(arn))
        if not manifests:
            log.warning("Version %s reports no testing manifest (TestingDataResult)", arn)
            return None
        refs = []
        for obj in manifests:
            loc = S3Uri(obj["Bucket"], obj["Name"])
            refs.extend(line.get("source-ref", "") for line in iter_jsonl(self.iter_lines(loc), str(loc)))
        return core.test_set_fingerprint(refs)
