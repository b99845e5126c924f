"""Send a turn's predictions to Label Studio for human review (the open-source alternative to Ground Truth)."""

from __future__ import annotations

import json
from typing import Any

from airflow.providers.amazon.aws.hooks.s3 import S3Hook
from airflow.providers.amazon.aws.operators.base_aws import AwsBaseOperator
from airflow.providers.amazon.aws.utils.mixins import aws_template_fields

from rekfeedback.core import templated
from rekfeedback.core import answers as answerlib
from rekfeedback.core import label_studio as lsfmt
from rekfeedback.core import review as reviewlib
from rekfeedback.core.predictions import read_prediction_lines
from rekfeedback.core.paths import S3Uri, parse_s3_uri, run_key
from rekfeedback.hooks.label_studio import LabelStudioHook
from rekfeedback.hooks.s3_artifacts import S3Artifacts
from rekfeedback.links.label_studio import LabelStudioProjectLink

HUMAN_ROUTES = ("human", "audit", "to-label")
MAX_PRESIGN_SECONDS = 7 * 24 * 3600  # the SigV4 limit


class LabelStudioReviewOperator(AwsBaseOperator[S3Hook]):
    """Create (or reuse) the turn's Label Studio project and import one task per image to review.

    Images reach the browser as presigned S3 GET URLs made with the AWS connection (with the emulator
    they point at its endpoint). They expire after `url_expires_in` seconds (at most 7 days): a review
    that takes longer needs the operator re-run, which re-imports nothing but can be pointed at a new
    project title. Label Studio never gets AWS credentials this way.

    Retry safety: the project is found by its deterministic title (`project_title`, default
    "rekfeedback <dag_id> <run key> <hash of the turn prefix>"); tasks carry the image's s3:// URI in `data.source_ref` and only
    images without a task are imported.

    :param predictions_uris: list of predictions-file S3 URIs, or one S3 prefix (every `*.jsonl` under it
        except checkpoints).
    :param output_prefix: the turn prefix; writes `review/items.jsonl` (every image with its route),
        `review/auto-accepted.jsonl`, `review/unlabelled.jsonl`,
        `review/label-studio/project.json`; the sensor later writes `answers/label-studio.jsonl`.
    :param labels: the label set of the project (default: every label predicted this turn).
    :param auto_accept_threshold, audit_rate, routing_seed, label_unpredicted: routing as for Ground Truth
        (`core.review.RoutingPolicy`).
    :param kind: 'classification' | 'boxes' | None (detected from the predictions).
    :param chunk_size: tasks per import request.
    :param round_name: a second round of the same turn (e.g. `review`): its own project, titled after it.
    :param workers_per_object: annotators per task (1..9): the project's `maximum_annotations`. The
        Community edition honours it: its label stream gives a task to an annotator who has not
        answered it yet, and counts the task done once that many distinct annotators answered it.
        The sensor consolidates their annotations (`core.consensus`).
    """

    aws_hook_class = S3Hook
    template_fields = aws_template_fields("predictions_uris", "output_prefix", "labels", "project_title",
                                          "auto_accept_threshold", "audit_rate", "label_studio_conn_id",
                                          "label_unpredicted", "routing_seed", "kind", "workers_per_object")
    operator_extra_links = (LabelStudioProjectLink(),)
    ui_color = "#ffcc80"

    def __init__(self, *, predictions_uris: list[str] | str, output_prefix: str,
                 label_studio_conn_id: str = LabelStudioHook.default_conn_name,
                 labels: list[str] | None = None, project_title: str | None = None,
                 auto_accept_threshold: float | None = None, audit_rate: float = 0.0, routing_seed: int = 0,
                 label_unpredicted: bool = False, kind: str | None = None, chunk_size: int = 100,
                 url_expires_in: int = MAX_PRESIGN_SECONDS, workers_per_object: int = 1, round_name: str | None = None, **kwargs):
        super().__init__(**kwargs)
        self.predictions_uris = predictions_uris
        self.output_prefix = output_prefix
        self.label_studio_conn_id = label_studio_conn_id
        self.labels = labels
        self.project_title = project_title
        self.auto_accept_threshold = auto_accept_threshold
        self.audit_rate = audit_rate
        self.routing_seed = routing_seed
        self.label_unpredicted = label_unpredicted
        self.kind = kind
        self.chunk_size = chunk_size
        self.url_expires_in = url_expires_in
        self.workers_per_object = workers_per_object
        self.round_name = round_name

    # --- reading predictions ------------------------------------------------------------------

    def _prediction_uris(self) -> list[S3Uri]:
        value = self.predictions_uris
        if isinstance(value, str):
            return S3Artifacts(self.hook).jsonl_files(value)
        if not isinstance(value, (list, tuple)):
            raise ValueError(f"predictions_uris must be a list of S3 URIs or one S3 prefix, got {type(value).__name__}")
        return [parse_s3_uri(u, f"predictions_uris[{i}]") for i, u in enumerate(value)]

    def _read_predictions(self) -> list[dict]:
        lines = []
        for uri in self._prediction_uris():
            text = self.hook.read_key(uri.key, uri.bucket)
            lines.extend(read_prediction_lines(text, where=str(uri)))
        return lines

    def _put(self, uri: S3Uri, body: str) -> None:
        S3Artifacts(self.hook).write_text(uri, body)

    def _presign(self, source_ref: str) -> str:
        uri = parse_s3_uri(source_ref, "source-ref")
        return self.hook.generate_presigned_url(
            client_method="get_object", params={"Bucket": uri.bucket, "Key": uri.key},
            expires_in=min(int(self.url_expires_in), MAX_PRESIGN_SECONDS))

    # --- execute ------------------------------------------------------------------------------

    def execute(self, context) -> dict[str, Any]:
        workers = int(self.workers_per_object or 1)
        if not 1 <= workers <= 9:
            raise ValueError(f"workers_per_object must be between 1 and 9, got {self.workers_per_object!r}")
        ls = LabelStudioHook(label_studio_conn_id=self.label_studio_conn_id)
        ls.check()  # a wrong URL or token fails here, before anything is written
        turn = parse_s3_uri(self.output_prefix, "output_prefix")
        key = run_key(context["run_id"]) + (f" {self.round_name}" if self.round_name else "")
        title = self.project_title or lsfmt.project_title(context["dag"].dag_id, key, turn=str(turn))
        policy = reviewlib.RoutingPolicy(
            auto_accept_threshold=None if self.auto_accept_threshold in (None, "") else float(self.auto_accept_threshold),
            audit_rate=float(self.audit_rate or 0), seed=int(self.routing_seed),
            label_unpredicted=templated.as_bool(self.label_unpredicted, "label_unpredicted", True))
        review_set = reviewlib.build_review_set(self._read_predictions(), policy, kind=self.kind)
        if review_set.duplicates:
            self.log.warning("%d prediction lines repeat an image already listed; kept the first", review_set.duplicates)

        items_uri = turn.join(*reviewlib.ITEMS_FILE)
        auto_uri = turn.join("review", "auto-accepted.jsonl")
        unlabelled_uri = turn.join("review", "unlabelled.jsonl")
        answers_uri = turn.join("answers", "label-studio.jsonl")
        # Every item once: the sensor joins the exported annotations to it.
        self._put(items_uri, reviewlib.dumps_items(review_set.items))
        auto = reviewlib.auto_accepted_answers(review_set, context.get("logical_date"))
        self._put(auto_uri, answerlib.dumps_jsonl(auto))
        self._put(unlabelled_uri, reviewlib.dumps_unlabelled(review_set.by_route("unlabelled")))
        result = {"backend": "label-studio", "project_id": None, "project_url": None, "project_title": title,
                  "answers_uri": str(answers_uri), "items_uri": str(items_uri), "auto_accepted_uri": str(auto_uri),
                  "unlabelled_uri": str(unlabelled_uri), "counts": review_set.counts()}

        items = review_set.by_route(*HUMAN_ROUTES)
        if not items:
            self.log.info("nothing to send to humans this turn (%s); no project created", result["counts"])
            return result
        labels = list(self.labels or review_set.label_set())
        config = lsfmt.labeling_config(labels, review_set.kind)

        project, created = ls.ensure_project(title, config, f"Review of {self.output_prefix} ({review_set.kind})",
                                             maximum_annotations=workers)
        self.log.info("%s Label Studio project %s %r (%d annotators per task)", "created" if created else
                      "reusing (retry)", project["id"], title, workers)
        project_id = project["id"]
        url = ls.project_url(project_id)
        LabelStudioProjectLink.persist(context, self, url=url, project_id=project_id, title=title)

        existing = ls.task_ids(project_id, lsfmt.SOURCE_KEY)
        missing = [i for i in items if i["source-ref"] not in existing]
        self.log.info("%d images for review, %d already imported, importing %d", len(items), len(existing), len(missing))
        for n, chunk in enumerate(reviewlib.batches(missing, int(self.chunk_size)), start=1):
            tasks = [lsfmt.task_for_item(i, self._presign(i["source-ref"])) for i in chunk]
            out = ls.import_tasks(project_id, tasks)
            self.log.info("import %d: %s tasks, %s predictions", n, out.get("task_count"), out.get("prediction_count"))
        task_ids = ls.task_ids(project_id, lsfmt.SOURCE_KEY)
        lost = [i["source-ref"] for i in items if i["source-ref"] not in task_ids]
        if lost:
            raise RuntimeError(f"Label Studio project {project_id} lacks tasks for {len(lost)} images after import, "
                               f"e.g. {lost[:3]}; re-run the task (it imports only what is missing)")

        self._put(turn.join("review", "label-studio", "project.json"), json.dumps({
            "project_id": project_id, "title": title, "url": url, "kind": review_set.kind, "labels": labels,
            "tasks": {ref: task_ids[ref] for ref in sorted(task_ids)}, "counts": result["counts"],
        }, indent=2, sort_keys=True) + "\n")
        self.log.info("review the images at %s", url)
        return {**result, "project_id": project_id, "project_url": url}
