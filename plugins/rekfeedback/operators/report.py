"""The turn's report: figures + a self-contained HTML page under `<turn prefix>/report/`.

The operator only orders the steps: `hooks/report_files.py` reads the turn's artifacts from S3, it hands them to
`core.report` / `core.report_html`, writes `report/index.html` and `report/figures.json`, and
records the turn in a history file so the next turn's report can draw F1 and dataset size over
time. Re-running a turn overwrites its two files and replaces (never duplicates) its history entry.
"""

from __future__ import annotations

import json
import pathlib
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Sequence

from airflow.providers.amazon.aws.hooks.s3 import S3Hook
from airflow.providers.amazon.aws.operators.base_aws import AwsBaseOperator
from airflow.providers.amazon.aws.utils.mixins import aws_template_fields

from rekfeedback.core import templated
from rekfeedback.core.paths import parse_s3_uri, run_key
from rekfeedback.core.report import (
    DEFAULT_PRICE_PER_IU_HOUR,
    DEFAULT_PRICE_PER_OBJECT,
    DEFAULT_PRICE_PER_TRAINING_HOUR,
    compute_figures,
    dataset_per_label,
    summary,
)
from rekfeedback.core.report_history import headline, small_merge
from rekfeedback.core.report_html import render_report

from rekfeedback.links.presigned import TurnReportPageLink
from rekfeedback.links.s3 import TurnReportLink
from rekfeedback.hooks.report_files import ReportFiles

if TYPE_CHECKING:
    from airflow.sdk import Context

REPORT_DIR = "report"
INDEX_NAME = "index.html"
FIGURES_NAME = "figures.json"


def write_report_locally(figures: dict, directory: str | pathlib.Path) -> pathlib.Path:
    """Write index.html and figures.json into `directory`; return the page's path (the demo prints it)."""
    out = pathlib.Path(directory)
    out.mkdir(parents=True, exist_ok=True)
    (out / FIGURES_NAME).write_text(json.dumps(figures, indent=2, allow_nan=False) + "\n", encoding="utf-8")
    page = out / INDEX_NAME
    page.write_text(render_report(figures), encoding="utf-8")
    return page


class TurnReportOperator(AwsBaseOperator[S3Hook]):
    """Build the turn's report and write it next to the turn's manifest.

    :param output_prefix: the turn prefix (s3://bucket/prefix/<dag_id>/<run-key>/); the report goes
        to `<output_prefix>/report/`.
    :param predictions_uris: prediction files (list of S3 URIs) or an S3 prefix holding them
        (`*.jsonl`, checkpoints excluded).
    :param answers_uris: normalized answer files (answers/*.jsonl, review/auto-accepted.jsonl).
        A file that does not exist is reported in the figures and the log, not an error: a review
        step that had nothing to do writes nothing.
    :param merge_summary: the merge task's summary (dict or JSON string); its `manifest_uri` gives
        the dataset size per label unless `manifest_uri` is set.
    :param training_results: the training task's result (dict or JSON string), or None.
    :param selection: the review selection's result (ReviewSelectionOperator), or None: chosen and
        deferred images per reason and per label go into the figures and the page.
    :param champion: the champion gate's result (dict or JSON string), or None: its decision, reasons
        and the champion timeline (ChampionGateOperator) go into the figures and the page.
    :param manifest_uri: the cumulative manifest to count images per label from (optional).
    :param history_uri: a JSON file listing earlier turns `[{"run", "figures_uri", "turn"}]`; read,
        then updated with this turn (keyed by run). None: no history across turns.
    :param inference_unit_hours: the model's running time in inference-unit hours for this turn.
    :param price_per_iu_hour, price_per_object, workforce_price_per_object, training_hours,
        price_per_training_hour, human_objects: cost parameters (see `core.report.compute_figures`).
    :param buckets, target_error, min_support, match_iou: calibration and matching parameters.
    """

    aws_hook_class = S3Hook
    template_fields: Sequence[str] = aws_template_fields(
        "output_prefix", "predictions_uris", "answers_uris", "merge_summary", "training_results", "champion", "selection",
        "manifest_uri", "history_uri", "inference_unit_hours", "human_objects", "training_hours", "answer_check",
    )
    template_fields_renderers = {"merge_summary": "json", "training_results": "json"}
    operator_extra_links = (TurnReportLink(), TurnReportPageLink())

    def __init__(
        self,
        *,
        output_prefix: str,
        predictions_uris: str | list[str],
        answers_uris: list[str] | str = (),
        merge_summary: dict | str | None = None,
        training_results: dict | str | None = None,
        champion: dict | str | None = None,
        selection: dict | str | None = None,
        answer_check: dict | str | None = None,
        manifest_uri: str | None = None,
        history_uri: str | None = None,
        inference_unit_hours: float | str = 0.0,
        price_per_iu_hour: float = DEFAULT_PRICE_PER_IU_HOUR,
        human_objects: int | str | None = None,
        price_per_object: float = DEFAULT_PRICE_PER_OBJECT,
        workforce_price_per_object: float = 0.0,
        training_hours: float | str = 0.0,
        price_per_training_hour: float = DEFAULT_PRICE_PER_TRAINING_HOUR,
        buckets: int | list[float] = 10,
        target_error: float = 0.05,
        min_support: int = 20,
        match_iou: float = 0.1,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.output_prefix = output_prefix
        self.predictions_uris = predictions_uris
        self.answers_uris = answers_uris
        self.merge_summary = merge_summary
        self.training_results = training_results
        self.answer_check = answer_check  # review_round.check's XCom: the doubted answers to list
        self.champion = champion
        self.selection = selection
        self.manifest_uri = manifest_uri
        self.history_uri = history_uri
        self.inference_unit_hours = inference_unit_hours
        self.price_per_iu_hour = price_per_iu_hour
        self.human_objects = human_objects
        self.price_per_object = price_per_object
        self.workforce_price_per_object = workforce_price_per_object
        self.training_hours = training_hours
        self.price_per_training_hour = price_per_training_hour
        self.buckets = buckets
        self.target_error = target_error
        self.min_support = min_support
        self.match_iou = match_iou

    def execute(self, context: Context) -> dict:
        run = run_key(str(context["run_id"]))
        report_dir = parse_s3_uri(self.output_prefix, "output_prefix").join(REPORT_DIR)
        figures_uri, index_uri = report_dir.join(FIGURES_NAME), report_dir.join(INDEX_NAME)
        files = ReportFiles(self.hook, self.log)
        merge = templated.as_dict(self.merge_summary, "merge_summary")
        prediction_files = files.prediction_files(self.predictions_uris)
        answers, missing = files.split_missing(templated.as_list(self.answers_uris, "answers_uris"), "answers_uris")
        manifest_uri = self.manifest_uri or (merge or {}).get("manifest_uri")
        dataset = None
        if manifest_uri:
            loc = parse_s3_uri(manifest_uri, "manifest_uri")
            if files.exists(loc):
                dataset = dataset_per_label(files.iter_lines(loc))
            else:
                self.log.warning("Manifest %s does not exist; dataset size comes from the answers", manifest_uri)
        history_entries = files.read_history(self.history_uri)

        figures = compute_figures(
            files.json_lines(prediction_files, "prediction"),
            files.json_lines(answers, "answer"),
            run=run,
            generated_at=datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
            training=templated.as_dict(self.training_results, "training_results"),
            merge_summary=small_merge(merge),
            history=files.history_figures(history_entries, run),
            dataset_per_label=dataset,
            inference_unit_hours=float(self.inference_unit_hours or 0.0),
            price_per_iu_hour=float(self.price_per_iu_hour),
            human_objects=None if self.human_objects in (None, "", "None") else int(self.human_objects),
            price_per_object=float(self.price_per_object),
            workforce_price_per_object=float(self.workforce_price_per_object),
            training_hours=float(self.training_hours or 0.0),
            price_per_training_hour=float(self.price_per_training_hour),
            buckets=self.buckets,
            target_error=float(self.target_error),
            min_support=int(self.min_support),
            match_iou=float(self.match_iou),
            inputs={"predictions": [str(u) for u in prediction_files], "answers": answers,
                    "missing": missing, "manifest": manifest_uri},
        )
        chosen = templated.as_dict(self.selection, "selection")
        if chosen:
            figures["selection"] = {k: chosen.get(k) for k in ("strategy", "limit", "selected", "deferred", "by_reason",
                                                               "by_label", "deferred_by_label")}
        check = templated.as_dict(self.answer_check, "answer_check")
        if check and check.get("flags_uri"):
            figures["label_noise"] = files.label_noise(check)
        gate = templated.as_dict(self.champion, "champion")
        if gate:
            figures["champion"] = {k: gate.get(k) for k in ("decision", "reasons", "timeline")}
        files.write_text(figures_uri, json.dumps(figures, indent=2, allow_nan=False), "application/json")
        files.write_text(index_uri, render_report(figures), "text/html; charset=utf-8")
        if self.history_uri:
            files.write_history(self.history_uri, history_entries, {"run": run, "figures_uri": str(figures_uri),
                                                                    "report_uri": str(index_uri), "turn": figures["turn"]})

        TurnReportPageLink.persist(context, self, str(index_uri))
        TurnReportLink.persist_uri(context, self, str(index_uri), self.hook.conn_region_name,
                                   self.hook.conn_partition)
        self.log.info("%s", headline(figures))
        if figures["inputs"]["missing"]:
            self.log.warning("Missing answers files: %s", ", ".join(figures["inputs"]["missing"]))
        self.log.info("Report: %s", index_uri)
        return {**summary(figures), "report_uri": str(index_uri), "figures_uri": str(figures_uri)}


__all__ = ["TurnReportOperator", "write_report_locally"]
