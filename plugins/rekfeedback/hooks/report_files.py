"""The S3 side of the turn's report: the prediction and answer files it reads, the history across turns and
the doubted answers' thumbnails. The figures are `core.report`'s; this module only reads and writes."""

from __future__ import annotations

import json
import logging
from typing import Iterable, Iterator

from airflow.providers.amazon.aws.hooks.s3 import S3Hook

from rekfeedback.core import templated
from rekfeedback.core.paths import S3Uri, parse_s3_uri
from rekfeedback.core.predictions import iter_jsonl
from rekfeedback.core.report_history import parse_history, with_entry
from rekfeedback.hooks.s3_artifacts import S3Artifacts


class ReportFiles(S3Artifacts):
    def __init__(self, hook: S3Hook, log: logging.Logger | logging.LoggerAdapter):
        super().__init__(hook)
        self.log = log

    def prediction_files(self, uris: str | list[str]) -> list[S3Uri]:
        """Prediction files: a list of S3 URIs, or every `*.jsonl` under one prefix (checkpoints excluded)."""
        if isinstance(uris, str) and not uris.strip().startswith("["):  # one prefix
            found = self.jsonl_files(parse_s3_uri(uris, "predictions_uris"))
            if not found:
                self.log.warning("No prediction files (*.jsonl) under %s", uris)
            return sorted(found, key=str)
        return [parse_s3_uri(u, "predictions_uris item") for u in templated.as_list(uris, "predictions_uris")]

    def split_missing(self, uris: Iterable[str], param: str) -> tuple[list[str], list[str]]:
        """(present, missing): a step that had nothing to do writes no file, which the report shows."""
        present, missing = [], []
        for uri in uris:
            if self.exists(parse_s3_uri(uri, f"{param} item")):
                present.append(uri)
            else:
                missing.append(uri)
                self.log.warning("File %s (%s) does not exist; reporting it as missing", uri, param)
        return present, missing

    def json_lines(self, files: Iterable, what: str) -> Iterator[dict]:
        for f in files:
            loc = f if isinstance(f, S3Uri) else parse_s3_uri(f, f"{what} file")
            yield from iter_jsonl(self.iter_lines(loc), f"{what} file {loc} (see docs/data-formats.md)")

    def read_history(self, uri: str | None) -> list[dict]:
        if not uri:
            return []
        return parse_history(self.read_bytes(parse_s3_uri(uri, "history_uri"), missing_ok=True), uri)

    def history_figures(self, entries: list[dict], run: str) -> list[dict]:
        """Earlier turns' figures read from their own figures.json; the entry's copy if that is gone."""
        out = []
        for e in entries:
            if e["run"] == run:
                continue
            figures = None
            if e.get("figures_uri"):
                raw = self.read_bytes(parse_s3_uri(e["figures_uri"], "history figures_uri"), missing_ok=True)
                figures = None if raw is None else json.loads(raw)
            if figures is None:
                self.log.warning("Figures of turn %s not found at %s; using the history's copy",
                                 e["run"], e.get("figures_uri"))
                figures = {"turn": e.get("turn") or {"run": e["run"]}}
            out.append(figures)
        return out

    def write_history(self, uri: str, entries: list[dict], entry: dict) -> None:
        # Read-modify-write without a lock: two turns of one DAG never report at the same moment
        # (max_active_runs=1 in the loop's DAG); a parallel writer could drop an entry.
        self.write_text(parse_s3_uri(uri, "history_uri"), json.dumps(with_entry(entries, entry), indent=2),
                        "application/json")

    def label_noise(self, check: dict) -> dict:
        """The doubted answers with a thumbnail each (read from S3, at most report_noise.MAX_LISTED)."""
        from rekfeedback.core import report_noise

        loc = parse_s3_uri(check["flags_uri"], "answer_check.flags_uri")
        flags = [json.loads(x) for x in self.iter_lines(loc)] if self.exists(loc) else []
        thumbs = {}
        for flag in flags[:report_noise.MAX_LISTED]:
            try:
                body = self.read_bytes(parse_s3_uri(flag["source-ref"], "source-ref"))
            except Exception as err:  # noqa: BLE001 - a missing image loses its thumbnail, not its row
                self.log.warning("no thumbnail for %s: %s", flag["source-ref"], err)
                body = None
            thumbs[flag["source-ref"]] = report_noise.thumbnail(body, flag.get("boxes") or [])
        counts = check.get("counts") or {}
        return {"rows": report_noise.noise_rows(flags, thumbs), "total": len(flags), "flags_uri": check["flags_uri"],
                "reviewed": counts.get("to_review", 0), "held_out": counts.get("held_out", 0)}
