"""The turn's report: figures + a self-contained HTML page under `<turn prefix>/report/`.

The operator only moves bytes: it reads the turn's artifacts from S3, hands them to
`core.report` / `core.report_html`, writes `report/index.html` and `report/figures.json`, and
records the turn in a history file so the next turn's report can draw F1 and dataset size over
time. Re-running a turn overwrites its two files and replaces (never duplicates) its history entry.
"""

from __future__ import annotations

import json
import pathlib
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Iterable, Iterator, Sequence

from airflow.providers.amazon.aws.hooks.s3 import S3Hook
from airflow.providers.amazon.aws.operators.base_aws import AwsBaseOperator
from airflow.providers.amazon.aws.utils.mixins import aws_template_fields

from rekfeedback.core import templated
from rekfeedback.core.paths import S3Uri, parse_s3_uri, run_key
from rekfeedback.core.predictions import iter_jsonl
from rekfeedback.core.report import (
    DEFAULT_PRICE_PER_IU_HOUR,
    DEFAULT_PRICE_PER_OBJECT,
    DEFAULT_PRICE_PER_TRAINING_HOUR,
    compute_figures,
    dataset_per_label,
    summary,
)
from rekfeedback.core.report_html import render_report

from rekfeedback.links.presigned import TurnReportPageLink
from rekfeedback.links.s3 import TurnReportLink
from rekfeedback.hooks.s3_artifacts import S3Artifacts

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

    # --- Airflow entry point ---------------------------------------------------------------------

    def execute(self, context: Context) -> dict:
        run = run_key(str(context["run_id"]))
        turn = parse_s3_uri(self.output_prefix, "output_prefix")
        report_dir = turn.join(REPORT_DIR)
        figures_uri, index_uri = report_dir.join(FIGURES_NAME), report_dir.join(INDEX_NAME)

        merge = templated.as_dict(self.merge_summary, "merge_summary")
        training = templated.as_dict(self.training_results, "training_results")
        prediction_files = self._prediction_files()
        answer_files = templated.as_list(self.answers_uris, "answers_uris")
        missing: list[str] = []
        present_answers = []
        for uri in answer_files:
            if self._exists(parse_s3_uri(uri, "answers_uris item")):
                present_answers.append(uri)
            else:
                missing.append(uri)
                self.log.warning("Answers file %s does not exist; reporting it as missing", uri)

        manifest_uri = self.manifest_uri or (merge or {}).get("manifest_uri")
        dataset = None
        if manifest_uri:
            loc = parse_s3_uri(manifest_uri, "manifest_uri")
            if self._exists(loc):
                dataset = dataset_per_label(self._lines(loc))
            else:
                self.log.warning("Manifest %s does not exist; dataset size comes from the answers", manifest_uri)

        history_entries = self._read_history()
        history = self._history_figures(history_entries, run)

        figures = compute_figures(
            self._json_lines(prediction_files, "prediction"),
            self._json_lines(present_answers, "answer"),
            run=run,
            generated_at=datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
            training=training,
            merge_summary=_small_merge(merge),
            history=history,
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
            inputs={"predictions": [str(u) for u in prediction_files], "answers": present_answers,
                    "missing": missing, "manifest": manifest_uri},
        )
        chosen = templated.as_dict(self.selection, "selection")
        if chosen:
            figures["selection"] = {k: chosen.get(k) for k in ("strategy", "limit", "selected", "deferred", "by_reason",
                                                               "by_label", "deferred_by_label")}
        check = templated.as_dict(self.answer_check, "answer_check")
        if check and check.get("flags_uri"):
            figures["label_noise"] = self._label_noise(check)
        gate = templated.as_dict(self.champion, "champion")
        if gate:
            figures["champion"] = {k: gate.get(k) for k in ("decision", "reasons", "timeline")}
        self._put(figures_uri, json.dumps(figures, indent=2, allow_nan=False), "application/json")
        self._put(index_uri, render_report(figures), "text/html; charset=utf-8")
        if self.history_uri:
            self._write_history(history_entries, run, str(figures_uri), str(index_uri), figures["turn"])

        TurnReportPageLink.persist(context, self, str(index_uri))
        TurnReportLink.persist_uri(context, self, str(index_uri), self.hook.conn_region_name,
                                   self.hook.conn_partition)
        self._log_headline(figures, index_uri)
        return {**summary(figures), "report_uri": str(index_uri), "figures_uri": str(figures_uri)}

    # --- S3 ----------------------------------------------------------------------------------------

    def _exists(self, loc: S3Uri) -> bool:
        return S3Artifacts(self.hook).exists(loc)

    def _prediction_files(self) -> list[S3Uri]:
        uris = self.predictions_uris
        if isinstance(uris, str) and not uris.strip().startswith("["):  # one prefix
            prefix = parse_s3_uri(self.predictions_uris, "predictions_uris")
            found = S3Artifacts(self.hook).jsonl_files(prefix)
            if not found:
                self.log.warning("No prediction files (*.jsonl) under %s", self.predictions_uris)
            return sorted(found, key=str)
        return [parse_s3_uri(u, "predictions_uris item") for u in templated.as_list(uris, "predictions_uris")]

    def _lines(self, loc: S3Uri) -> Iterator[str]:
        yield from S3Artifacts(self.hook).iter_lines(loc)

    def _json_lines(self, files: Iterable, what: str) -> Iterator[dict]:
        for f in files:
            loc = f if isinstance(f, S3Uri) else parse_s3_uri(f, f"{what} file")
            yield from iter_jsonl(self._lines(loc), f"{what} file {loc} (see docs/data-formats.md)")

    def _put(self, loc: S3Uri, text: str, content_type: str) -> None:
        S3Artifacts(self.hook).write_text(loc, text, content_type)

    # --- history -----------------------------------------------------------------------------------

    def _read_history(self) -> list[dict]:
        if not self.history_uri:
            return []
        loc = parse_s3_uri(self.history_uri, "history_uri")
        raw = S3Artifacts(self.hook).read_bytes(loc, missing_ok=True)
        if raw is None:
            return []
        try:
            entries = json.loads(raw)
        except json.JSONDecodeError as err:
            raise ValueError(f"history_uri {self.history_uri} is not JSON ({err}); fix or delete it") from err
        if not isinstance(entries, list) or not all(isinstance(e, dict) and e.get("run") for e in entries):
            raise ValueError(f"history_uri {self.history_uri} must hold a JSON list of objects with a 'run'; "
                             "fix or delete it")
        return entries

    def _history_figures(self, entries: list[dict], run: str) -> list[dict]:
        """Earlier turns' figures read from their own figures.json; the entry's copy if that is gone."""
        out = []
        for e in entries:
            if e["run"] == run:
                continue
            figures = None
            if e.get("figures_uri"):
                loc = parse_s3_uri(e["figures_uri"], "history figures_uri")
                raw = S3Artifacts(self.hook).read_bytes(loc, missing_ok=True)
                figures = None if raw is None else json.loads(raw)
            if figures is None:
                self.log.warning("Figures of turn %s not found at %s; using the history's copy",
                                 e["run"], e.get("figures_uri"))
                figures = {"turn": e.get("turn") or {"run": e["run"]}}
            out.append(figures)
        return out

    def _label_noise(self, check: dict) -> dict:
        """The doubted answers with a thumbnail each (read from S3, at most report_noise.MAX_LISTED)."""
        from rekfeedback.core import report_noise

        loc = parse_s3_uri(check["flags_uri"], "answer_check.flags_uri")
        flags = [json.loads(x) for x in self._lines(loc)] if self._exists(loc) else []
        thumbs = {}
        for flag in flags[:report_noise.MAX_LISTED]:
            image = parse_s3_uri(flag["source-ref"], "source-ref")
            try:
                body = S3Artifacts(self.hook).read_bytes(image)
            except Exception as err:  # noqa: BLE001 - a missing image loses its thumbnail, not its row
                self.log.warning("no thumbnail for %s: %s", flag["source-ref"], err)
                body = None
            thumbs[flag["source-ref"]] = report_noise.thumbnail(body, flag.get("boxes") or [])
        counts = check.get("counts") or {}
        return {"rows": report_noise.noise_rows(flags, thumbs), "total": len(flags), "flags_uri": check["flags_uri"],
                "reviewed": counts.get("to_review", 0), "held_out": counts.get("held_out", 0)}

    def _write_history(self, entries: list[dict], run: str, figures_uri: str, report_uri: str, turn: dict) -> None:
        entry = {"run": run, "figures_uri": figures_uri, "report_uri": report_uri, "turn": turn}
        updated = [entry if e["run"] == run else e for e in entries]
        if not any(e["run"] == run for e in entries):
            updated.append(entry)
        # Read-modify-write without a lock: two turns of one DAG never report at the same moment
        # (max_active_runs=1 in the loop's DAG); a parallel writer could drop an entry.
        self._put(parse_s3_uri(self.history_uri, "history_uri"), json.dumps(updated, indent=2), "application/json")

    # --- log ---------------------------------------------------------------------------------------

    def _log_headline(self, figures: dict, index_uri: S3Uri) -> None:
        h = figures["headline"]
        rate = "n/a" if h["confirmation_rate"] is None else f"{h['confirmation_rate']:.1%}"
        agree = "n/a" if h["mean_agreement"] is None else f"{h['mean_agreement']:.1%}"
        f1 = ("n/a" if h["f1_after"] is None else
              f"{h['f1_before'] if h['f1_before'] is not None else 'n/a'} -> {h['f1_after']}")
        self.log.info(
            "Turn %s: %d images, %d answered by humans, %d auto-accepted; %d predictions reviewed, %s confirmed "
            "(%d rejected, %d added, %d adjusted); suggested auto-accept threshold %s (%s); mean agreement %s; "
            "cost $%.2f; F1 %s",
            figures["run"], h["images_predicted"], h["images_human"], h["images_auto_accepted"],
            h["predictions_reviewed"], rate, h["rejected"], h["added"], h["adjusted"],
            h["suggested_threshold"], figures["reliability"]["reason"], agree, h["total_cost"], f1,
        )
        if figures["inputs"]["missing"]:
            self.log.warning("Missing answers files: %s", ", ".join(figures["inputs"]["missing"]))
        self.log.info("Report: %s", index_uri)


def _small_merge(merge: dict | None) -> dict | None:
    """The merge summary's counts, without anything that could grow with the data."""
    if not merge:
        return None
    keep = ("manifest_uri", "manifest_lines", "images", "answers", "rejects", "boxes_dropped", "reject_ratio", "totals",
            "warnings")
    return {k: merge[k] for k in keep if k in merge}


__all__ = ["TurnReportOperator", "write_report_locally"]
