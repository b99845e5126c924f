"""What the two review operators share: their inputs, reading and routing the predictions, and the files both write.

`GroundTruthVerificationOperator` and `LabelStudioReviewOperator` take the same review inputs (the DAG
passes both one dict), route images by one policy (`core.review`) and write `review/items.jsonl`,
`review/auto-accepted.jsonl` and `review/unlabelled.jsonl` the same way; each adds only its backend: jobs, or a project and tasks.
"""

from __future__ import annotations

from collections.abc import Sequence

from airflow.providers.amazon.aws.hooks.s3 import S3Hook
from airflow.providers.amazon.aws.operators.base_aws import AwsBaseOperator
from airflow.providers.amazon.aws.utils.mixins import AwsHookType, aws_template_fields
from airflow.sdk.exceptions import AirflowFailException

from rekfeedback.core import answers as ans
from rekfeedback.core import review, templated
from rekfeedback.core.paths import S3Uri, parse_s3_uri
from rekfeedback.core.predictions import read_prediction_lines
from rekfeedback.hooks.s3_artifacts import S3Artifacts

REVIEW_TEMPLATE_FIELDS: Sequence[str] = aws_template_fields(
    "predictions_uris", "output_prefix", "labels", "kind", "label_unpredicted", "auto_accept_threshold",
    "audit_rate", "routing_seed", "workers_per_object")


class ReviewOperator(AwsBaseOperator[AwsHookType]):
    """Base of the review operators (not used alone).

    :param predictions_uris: S3 URIs of prediction files, or one S3 prefix holding them (`*.jsonl`,
        checkpoints excluded). (templated)
    :param output_prefix: the turn prefix (`s3://bucket/prefix/<dag_id>/<run-key>`). (templated)
    :param labels: the label set reviewers may use; default: the labels the model predicted. (templated)
    :param kind: `classification`, `boxes` or None to detect from the predictions. (templated)
    :param label_unpredicted: send images with no prediction to be labelled. (templated)
    :param auto_accept_threshold: confidence (0..100) above which predictions skip humans; None = off. (templated)
    :param audit_rate: share (0..1) of auto-acceptable images still sent to humans. (templated)
    :param routing_seed: seed of the deterministic audit sampling. (templated)
    :param workers_per_object: reviewers per image (1..9); several are consolidated by `core.consensus`. (templated)
    :param round_name: a second round of the same turn (e.g. `review`): its jobs or project are named after it.
    """

    def __init__(self, *, predictions_uris: str | list[str], output_prefix: str, labels: list[str] | None = None,
                 kind: str | None = None, label_unpredicted: bool = False, auto_accept_threshold: float | None = None,
                 audit_rate: float = 0.0, routing_seed: int = 0, workers_per_object: int = 1,
                 round_name: str | None = None, **kwargs) -> None:
        super().__init__(**kwargs)
        self.predictions_uris = predictions_uris
        self.output_prefix = output_prefix
        self.labels = labels
        self.kind = kind
        self.label_unpredicted = label_unpredicted
        self.auto_accept_threshold = auto_accept_threshold
        self.audit_rate = audit_rate
        self.routing_seed = routing_seed
        self.workers_per_object = workers_per_object
        self.round_name = round_name

    def s3_hook(self) -> S3Hook:
        return S3Hook(aws_conn_id=self.aws_conn_id, region_name=self.region_name, verify=self.verify,
                      config=self.botocore_config)

    # -- inputs, checked before anything is read, written or created --------------------------
    def review_inputs(self) -> tuple[S3Uri, list[S3Uri] | S3Uri, review.RoutingPolicy]:
        """(turn prefix, prediction files or their prefix, routing policy); bad input fails without retry."""
        try:
            turn = parse_s3_uri(self.output_prefix, "output_prefix")
            if not turn.key:
                raise ValueError(f"output_prefix must include a key prefix (the turn prefix), got {self.output_prefix!r}")
            if isinstance(self.predictions_uris, str):
                sources = parse_s3_uri(self.predictions_uris, "predictions_uris")
            elif isinstance(self.predictions_uris, (list, tuple)):
                sources = [parse_s3_uri(u, f"predictions_uris[{i}]") for i, u in enumerate(self.predictions_uris)]
            else:
                raise ValueError(f"predictions_uris must be a list of S3 URIs or one S3 prefix, got "
                                 f"{self.predictions_uris!r}")
            policy = review.RoutingPolicy(
                auto_accept_threshold=templated.as_float(self.auto_accept_threshold, "auto_accept_threshold"),
                audit_rate=templated.as_float(self.audit_rate, "audit_rate", 0.0),
                seed=templated.as_int(self.routing_seed, "routing_seed", 0),
                label_unpredicted=bool(templated.as_bool(self.label_unpredicted, "label_unpredicted", False)))
            workers = templated.as_int(self.workers_per_object, "workers_per_object", 1, minimum=1, maximum=9)
        except ValueError as err:
            raise AirflowFailException(f"{self.task_id}: {err}") from err
        self.workers_per_object = workers
        return turn, sources, policy

    # -- predictions -> review set --------------------------------------------------------------
    def review_set(self, s3: S3Hook, sources: list[S3Uri] | S3Uri, policy: review.RoutingPolicy) -> review.ReviewSet:
        """Every prediction line of the turn, routed; an image listed twice is reviewed once."""
        uris = sources if isinstance(sources, list) else S3Artifacts(s3).jsonl_files(sources)
        lines = []
        for uri in uris:
            text = S3Artifacts(s3).read_text(uri, missing_ok=True)
            if text is None:
                raise AirflowFailException(f"predictions file {uri} does not exist; check predictions_uris")
            try:
                lines.extend(read_prediction_lines(text, str(uri)))
            except ValueError as err:
                raise AirflowFailException(str(err)) from err
        review_set = review.build_review_set(lines, policy, self.kind)
        if review_set.duplicates:
            self.log.warning("%d prediction lines repeat an image already seen; the first line of each is used",
                             review_set.duplicates)
        return review_set

    # -- what both backends write ---------------------------------------------------------------
    @staticmethod
    def routed_uris(turn: S3Uri) -> dict[str, S3Uri]:
        return {"items_uri": turn.join(*review.ITEMS_FILE),
                "auto_accepted_uri": turn.join("review", "auto-accepted.jsonl"),
                "unlabelled_uri": turn.join("review", "unlabelled.jsonl")}

    def write_routed(self, s3: S3Hook, turn: S3Uri, review_set: review.ReviewSet, context,
                     unlabelled: list[dict] | None = None) -> dict[str, str]:
        """Write every review item once (the collect steps join the backend's answers to it), the
        auto-accepted answers and the unlabelled list, before any job or task exists (a retry rewrites
        the same files).

        Auto-accepted answers are dated by the run (its logical date, or when it ran for a run without
        one), so a retry writes the same answers."""
        uris = self.routed_uris(turn)
        answered_at = context.get("logical_date") or getattr(context.get("dag_run"), "run_after", None)
        files = S3Artifacts(s3)
        files.write_text(uris["items_uri"], review.dumps_items(review_set.items))
        files.write_text(uris["auto_accepted_uri"], ans.dumps_jsonl(review.auto_accepted_answers(review_set, answered_at)))
        files.write_text(uris["unlabelled_uri"], review.dumps_unlabelled(
            review_set.by_route("unlabelled") if unlabelled is None else unlabelled))
        return {k: str(v) for k, v in uris.items()}
