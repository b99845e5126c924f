"""Send a turn's predictions to Label Studio for human review (the open-source alternative to Ground Truth)."""

from __future__ import annotations

import json
from functools import cached_property
from typing import Any

from airflow.providers.amazon.aws.hooks.s3 import S3Hook

from rekfeedback.core import label_studio as lsfmt
from rekfeedback.core.paths import parse_s3_uri, run_key
from rekfeedback.hooks.label_studio import LabelStudioHook
from rekfeedback.hooks.s3_artifacts import S3Artifacts
from rekfeedback.links.label_studio import LabelStudioProjectLink
from rekfeedback.operators.review import REVIEW_TEMPLATE_FIELDS, ReviewOperator

HUMAN_ROUTES = ("human", "audit", "to-label")
MAX_PRESIGN_SECONDS = 7 * 24 * 3600  # the SigV4 limit


class LabelStudioReviewOperator(ReviewOperator[S3Hook]):
    """Create (or reuse) the turn's Label Studio project and import one task per image to review.

    Images reach the browser as presigned S3 GET URLs made with the AWS connection (with the emulator
    they point at its endpoint). They expire after `url_expires_in` seconds (at most 7 days): a review
    that takes longer needs the operator re-run, which re-imports nothing but can be pointed at a new
    project title. Label Studio never gets AWS credentials this way.

    Retry safety: the project is found by its deterministic title (`project_title`, default
    "rekfeedback <dag_id> <run key> <hash of the turn prefix>"); tasks carry the image's s3:// URI in `data.source_ref` and only
    images without a task are imported.

    The review inputs (predictions_uris, output_prefix, labels, kind, label_unpredicted, routing,
    workers_per_object, round_name) are `ReviewOperator`'s. It writes `review/items.jsonl` (every image with its route), `review/auto-accepted.jsonl`,
    `review/unlabelled.jsonl` and `review/label-studio/project.json`; the sensor later writes
    `answers/label-studio.jsonl`. Each task needs `workers_per_object` distinct annotators: the project's
    `maximum_annotations`, which the Community edition honours (its label stream gives a task to an
    annotator who has not answered it yet); the sensor consolidates their annotations (`core.consensus`).

    :param chunk_size: tasks per import request.
    """

    aws_hook_class = S3Hook
    template_fields = (*REVIEW_TEMPLATE_FIELDS, "project_title", "label_studio_conn_id")
    operator_extra_links = (LabelStudioProjectLink(),)
    ui_color = "#ffcc80"

    def __init__(self, *, label_studio_conn_id: str = LabelStudioHook.default_conn_name,
                 project_title: str | None = None, chunk_size: int = 100, url_expires_in: int = MAX_PRESIGN_SECONDS,
                 **kwargs):
        super().__init__(**kwargs)
        self.label_studio_conn_id = label_studio_conn_id
        self.project_title = project_title
        self.chunk_size = chunk_size
        self.url_expires_in = url_expires_in

    @cached_property
    def ls_hook(self) -> LabelStudioHook:
        """The Label Studio client (`hook` is S3's: predictions in, presigned image URLs out)."""
        return LabelStudioHook(label_studio_conn_id=self.label_studio_conn_id)

    def _presign(self, source_ref: str) -> str:
        uri = parse_s3_uri(source_ref, "source-ref")
        return self.hook.generate_presigned_url(
            client_method="get_object", params={"Bucket": uri.bucket, "Key": uri.key},
            expires_in=min(int(self.url_expires_in), MAX_PRESIGN_SECONDS))

    # --- execute ------------------------------------------------------------------------------

    def execute(self, context) -> dict[str, Any]:
        turn, sources, policy = self.review_inputs()
        workers = self.workers_per_object
        ls = self.ls_hook
        ls.check()  # a wrong URL or token fails here, before anything is written
        key = run_key(context["run_id"]) + (f" {self.round_name}" if self.round_name else "")
        title = self.project_title or lsfmt.project_title(context["dag"].dag_id, key, turn=str(turn))
        review_set = self.review_set(self.hook, sources, policy)
        routed = self.write_routed(self.hook, turn, review_set, context)
        result = {"backend": "label-studio", "project_id": None, "project_url": None, "project_title": title,
                  "answers_uri": str(turn.join("answers", "label-studio.jsonl")), **routed,
                  "counts": review_set.counts()}

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

        by_ref = {item["source-ref"]: item for item in items}
        task_ids = ls.import_missing(project_id, list(by_ref),
                                     lambda ref: lsfmt.task_for_item(by_ref[ref], self._presign(ref)),
                                     data_key=lsfmt.SOURCE_KEY, chunk_size=int(self.chunk_size))

        S3Artifacts(self.hook).write_text(turn.join("review", "label-studio", "project.json"), json.dumps({
            "project_id": project_id, "title": title, "url": url, "kind": review_set.kind, "labels": labels,
            "tasks": {ref: task_ids[ref] for ref in sorted(task_ids)}, "counts": result["counts"],
        }, indent=2, sort_keys=True) + "\n")
        self.log.info("review the images at %s", url)
        return {**result, "project_id": project_id, "project_url": url}
