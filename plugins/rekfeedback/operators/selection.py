"""Choose what humans review this turn, under the review budget (core.selection), for either backend."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from airflow.providers.amazon.aws.hooks.s3 import S3Hook
from airflow.providers.amazon.aws.operators.base_aws import AwsBaseOperator
from airflow.providers.amazon.aws.utils.mixins import aws_template_fields
from airflow.sdk.exceptions import AirflowFailException

from rekfeedback.core import predictions as preds
from rekfeedback.core import review, selection
from rekfeedback.core.manifest import parse_record
from rekfeedback.core.paths import S3Uri, parse_s3_uri
from rekfeedback.core.report import DEFAULT_PRICE_PER_OBJECT
from rekfeedback.links.s3 import S3OutputLink

if TYPE_CHECKING:
    from airflow.sdk import Context

SELECTION_DIR = "selection"


def _blank(value: Any) -> bool:
    return value in (None, "", "None", "none")


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
            routing = review.RoutingPolicy(
                auto_accept_threshold=None if _blank(self.auto_accept_threshold) else float(self.auto_accept_threshold),
                audit_rate=float(self.audit_rate or 0), seed=int(self.routing_seed),
                label_unpredicted=str(self.label_unpredicted).strip().lower() in ("true", "1", "yes", "on"))
            policy = selection.policy_from_settings(self.selection, self.review_budget, self.review_cost_cap,
                                                    float(self.price_per_image), seed=int(self.routing_seed))
        except ValueError as err:
            raise AirflowFailException(f"{self.task_id}: {err}") from err
        return routing, policy

    def _read(self, uri: S3Uri) -> str | None:
        if not self.hook.check_for_key(uri.key, uri.bucket):
            return None
        return self.hook.read_key(uri.key, uri.bucket)

    def _prediction_uris(self) -> list[S3Uri]:
        value = self.predictions_uris
        if isinstance(value, (list, tuple)):
            return [parse_s3_uri(u, f"predictions_uris[{i}]") for i, u in enumerate(value)]
        uri = parse_s3_uri(value, "predictions_uris")
        if uri.key.endswith(".jsonl"):
            return [uri]
        keys = self.hook.list_keys(bucket_name=uri.bucket, prefix=uri.key.rstrip("/") + "/") or []
        return [S3Uri(uri.bucket, k) for k in sorted(keys) if k.endswith(".jsonl") and not k.endswith(".checkpoint.jsonl")]

    def _labelled_counts(self) -> dict[str, int]:
        """Images per label in the loop's dataset so far (none on the first turn)."""
        if _blank(self.cumulative_manifest_uri):
            return {}
        uri = parse_s3_uri(self.cumulative_manifest_uri, "cumulative_manifest_uri")
        text = self._read(uri)
        counts: Counter = Counter()
        for record in preds.iter_jsonl(text or "", f"cumulative manifest {uri}"):
            entry, _warnings = parse_record(record)
            counts.update(entry.label_names())
        return dict(counts)

    def execute(self, context: Context) -> dict:
        routing, policy = self._policies()
        turn = parse_s3_uri(self.output_prefix, "output_prefix")
        lines: list[dict] = []
        for uri in self._prediction_uris():
            text = self._read(uri)
            if text is None:
                raise AirflowFailException(f"predictions file {uri} does not exist; check predictions_uris")
            lines.extend(review.parse_prediction_lines(text, str(uri)))
        chosen = selection.select(lines, routing, policy, self._labelled_counts())
        out = {name: turn.join(SELECTION_DIR, f"{name}.jsonl") for name in ("for-review", "deferred")}
        for name, rows in (("for-review", chosen.for_review), ("deferred", chosen.deferred)):
            self.hook.load_string(preds.dumps_jsonl(rows), key=out[name].key, bucket_name=out[name].bucket, replace=True)
        figures = chosen.summary()
        summary_uri = turn.join(SELECTION_DIR, "summary.json")
        self.hook.load_string(json.dumps(figures, indent=2, sort_keys=True) + "\n", key=summary_uri.key,
                              bucket_name=summary_uri.bucket, replace=True)
        S3OutputLink.persist_uri(context, self, str(out["for-review"]), self.hook.conn_region_name,
                                 self.hook.conn_partition)
        self.log.info("selection %s (limit %s): %d selected for humans, %d deferred to a later turn; by reason %s; "
                      "by label %s", figures["strategy"], figures["limit"], figures["selected"], figures["deferred"],
                      figures["by_reason"], figures["by_label"])
        return {"for_review_uri": str(out["for-review"]), "deferred_uri": str(out["deferred"]),
                "summary_uri": str(summary_uri), **figures}
