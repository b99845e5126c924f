"""Choose what humans review this turn, under the review budget (core.selection), for either backend."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Sequence
from typing import TYPE_CHECKING

from airflow.providers.amazon.aws.hooks.s3 import S3Hook
from airflow.providers.amazon.aws.operators.base_aws import AwsBaseOperator
from airflow.providers.amazon.aws.utils.mixins import aws_template_fields
from airflow.sdk.exceptions import AirflowFailException

from rekfeedback.core import predictions as preds
from rekfeedback.core import review, selection, templated
from rekfeedback.core.manifest import parse_record
from rekfeedback.core.paths import parse_s3_uri
from rekfeedback.core.report import DEFAULT_PRICE_PER_OBJECT
from rekfeedback.hooks.s3_artifacts import S3Artifacts
from rekfeedback.links.s3 import S3OutputLink

if TYPE_CHECKING:
    from airflow.sdk import Context

SELECTION_DIR = "selection"


class ReviewSelectionOperator(AwsBaseOperator[S3Hook]):
    """Read the turn's predictions, pick the images humans review (the rest are deferred) and write
    ``<output_prefix>/selection/for-review.jsonl`` (what the review step routes: the selected lines with
    their ``selection`` record, plus auto-accepted and unlabelled lines), ``deferred.jsonl`` and
    ``summary.json``. Deferred images are not merged, so the next turn lists them again.

    Returns ``{"for_review_uri", "deferred_uri", "summary_uri", "strategy", "limit", "selected",
    "deferred", "by_reason", "by_label", "deferred_by_label"}``. Rerunning writes the same files.

    :param predictions_uris: the turn's prediction files or the S3 prefix holding them. (templated)
    :param output_prefix: the turn prefix. (templated)
    :param selection: all | random | uncertainty | balanced, or auto (balanced under a cap, else all). (templated)
    :param review_budget: images humans review this turn; None = no cap. (templated)
    :param review_cost_cap: USD of human review this turn, at ``price_per_image``; None = no cap. (templated)
    :param price_per_image: what one reviewed image costs (the report's price per object). (templated)
    :param cumulative_manifest_uri: the loop's dataset, whose label counts steer class balance. (templated)
    :param auto_accept_threshold, audit_rate, label_unpredicted, routing_seed: the review step's routing,
        so the same images are auto-accepted, audited or left unlabelled. (templated)
    """

    aws_hook_class = S3Hook
    template_fields: Sequence[str] = aws_template_fields(
        "predictions_uris", "output_prefix", "selection", "review_budget", "review_cost_cap", "price_per_image",
        "cumulative_manifest_uri", "auto_accept_threshold", "audit_rate", "label_unpredicted", "routing_seed",
    )
    operator_extra_links = (S3OutputLink(),)
    ui_color = "#e8f4ea"

    def __init__(self, *, predictions_uris: str | list[str], output_prefix: str, selection: str | None = "auto",
                 review_budget: int | str | None = None, review_cost_cap: float | str | None = None,
                 price_per_image: float | str = DEFAULT_PRICE_PER_OBJECT, cumulative_manifest_uri: str | None = None,
                 auto_accept_threshold: float | str | None = None, audit_rate: float | str = 0.0,
                 label_unpredicted: bool | str = False, routing_seed: int | str = 0, **kwargs) -> None:
        super().__init__(**kwargs)
        self.predictions_uris = predictions_uris
        self.output_prefix = output_prefix
        self.selection = selection
        self.review_budget = review_budget
        self.review_cost_cap = review_cost_cap
        self.price_per_image = price_per_image
        self.cumulative_manifest_uri = cumulative_manifest_uri
        self.auto_accept_threshold = auto_accept_threshold
        self.audit_rate = audit_rate
        self.label_unpredicted = label_unpredicted
        self.routing_seed = routing_seed

    def _policies(self) -> tuple[review.RoutingPolicy, selection.SelectionPolicy]:
        """Every parameter checked before anything is read; bad ones fail at once (a retry cannot fix them)."""
        try:
            seed = templated.as_int(self.routing_seed, "routing_seed", 0)
            routing = review.RoutingPolicy(
                auto_accept_threshold=templated.as_float(self.auto_accept_threshold, "auto_accept_threshold"),
                audit_rate=templated.as_float(self.audit_rate, "audit_rate", 0.0), seed=seed,
                label_unpredicted=templated.as_bool(self.label_unpredicted, "label_unpredicted", False))
            policy = selection.policy_from_settings(self.selection, self.review_budget, self.review_cost_cap,
                                                    templated.as_float(self.price_per_image, "price_per_image", DEFAULT_PRICE_PER_OBJECT),
                                                    seed=seed)
        except ValueError as err:
            raise AirflowFailException(f"{self.task_id}: {err}") from err
        return routing, policy

    def _labelled_counts(self) -> dict[str, int]:
        """Images per label in the loop's dataset so far (none on the first turn)."""
        if templated.is_blank(self.cumulative_manifest_uri):
            return {}
        uri = parse_s3_uri(self.cumulative_manifest_uri, "cumulative_manifest_uri")
        text = S3Artifacts(self.hook).read_text(uri, missing_ok=True)
        counts: Counter = Counter()
        for record in preds.iter_jsonl(text or "", f"cumulative manifest {uri}"):
            entry, _warnings = parse_record(record)
            counts.update(entry.label_names())
        return dict(counts)

    def execute(self, context: Context) -> dict:
        routing, policy = self._policies()
        turn = parse_s3_uri(self.output_prefix, "output_prefix")
        files = S3Artifacts(self.hook)
        lines: list[dict] = []
        sources = self.predictions_uris
        uris = (files.jsonl_files(sources) if isinstance(sources, str)
                else [parse_s3_uri(u, f"predictions_uris[{i}]") for i, u in enumerate(sources)])
        for uri in uris:
            text = files.read_text(uri, missing_ok=True)
            if text is None:
                raise AirflowFailException(f"predictions file {uri} does not exist; check predictions_uris")
            lines.extend(preds.read_prediction_lines(text, str(uri)))
        chosen = selection.select(lines, routing, policy, self._labelled_counts())
        out = {name: turn.join(SELECTION_DIR, f"{name}.jsonl") for name in ("for-review", "deferred")}
        for name, rows in (("for-review", chosen.for_review), ("deferred", chosen.deferred)):
            files.write_text(out[name], preds.dumps_jsonl(rows))
        figures = chosen.summary()
        summary_uri = turn.join(SELECTION_DIR, "summary.json")
        files.write_text(summary_uri, json.dumps(figures, indent=2, sort_keys=True) + "\n", "application/json")
        S3OutputLink.persist_uri(context, self, str(out["for-review"]), self.hook.conn_region_name,
                                 self.hook.conn_partition)
        self.log.info("selection %s (limit %s): %d selected for humans, %d deferred to a later turn; by reason %s; "
                      "by label %s", figures["strategy"], figures["limit"], figures["selected"], figures["deferred"],
                      figures["by_reason"], figures["by_label"])
        return {"for_review_uri": str(out["for-review"]), "deferred_uri": str(out["deferred"]),
                "summary_uri": str(summary_uri), **figures}
