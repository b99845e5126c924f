"""Sends a turn's predictions to Ground Truth: verification, adjustment and labelling jobs."""

from __future__ import annotations

import json
from collections.abc import Sequence
from importlib import resources
from typing import TYPE_CHECKING, Any

from airflow.providers.amazon.aws.hooks.s3 import S3Hook
from airflow.sdk.exceptions import AirflowFailException

from rekfeedback.core import ground_truth as gt
from rekfeedback.core import ground_truth_jobs as gtjobs
from rekfeedback.core.paths import S3Uri
from rekfeedback.hooks.ground_truth import GroundTruthHook
from rekfeedback.hooks.s3_artifacts import S3Artifacts
from rekfeedback.links.ground_truth import LabelingJobLink, LabelingJobOutputLink
from rekfeedback.operators.review import REVIEW_TEMPLATE_FIELDS, ReviewOperator

if TYPE_CHECKING:
    from airflow.sdk import Context

BACKEND = "ground-truth"
MAX_JOB_ATTEMPTS = 5  # redos of a failed job by clearing the review task


class GroundTruthVerificationOperator(ReviewOperator[GroundTruthHook]):
    """Create the Ground Truth labeling jobs that let humans check a turn's predictions.

    Reads the predictions (docs/data-formats.md), routes every image (humans, audit, auto-accept,
    labelling, unlabelled), writes under `<output_prefix>/review/ground-truth/` the input manifests,
    label-category files and UI templates, and creates one job per kind of work:

    - image-level labels: a custom verification task (`batch_size` images per task; our Lambdas);
    - boxes: the built-in bounding-box adjustment task, or verification (`box_task`), at most
      `max_box_labels` labels per job;
    - images without prediction: a labelling task of the same kind when `label_unpredicted`,
      otherwise listed in `review/unlabelled.jsonl`.

    Job names come from dag_id, run_id, kind and part, so a retried task finds and reuses the jobs
    it created (never two jobs for the same work). Parameters are checked before anything is
    written or created. The operator does not wait: `GroundTruthLabelingJobSensor` waits for the
    jobs and collects their answers into `answers_uri`.

    Returns `{"backend": "ground-truth", "jobs": [{"name", "kind", "arn", "status", "created",
    "label_attribute", "images", "objects", "input_manifest_uri", "output_uri"}], "answers_uri",
    "auto_accepted_uri", "unlabelled_uri", "counts": {"human", "audit", "auto_accept", "to_label",
    "unlabelled"}, "counts_by_kind": {kind: images}}`.

    The review inputs (predictions_uris, output_prefix, labels, kind, label_unpredicted, routing,
    workers_per_object, round_name) are `ReviewOperator`'s.

    :param workteam_arn: the private (or vendor/public) workteam.
    :param role_arn: Ground Truth execution role (infra output `GroundTruthRoleArn`).
    :param pre_annotation_lambda_arn: infra output `PreAnnotationLambdaArn` (image-level verification).
    :param annotation_consolidation_lambda_arn: infra output `AnnotationConsolidationLambdaArn`.
    :param batch_size: images per verification task (1 for one image per task).
    :param box_task: `adjustment` (pre-filled boxes to fix) or `verification` (correct / incorrect).
    :param max_box_labels: labels per bounding-box job (the label-category file limit, 10).
    :param task_title, task_description, task_keywords: what workers see in their task list.
    :param task_time_limit_seconds: time a worker has for one task (30..28800).
    :param task_availability_lifetime_seconds: time a task waits for a worker.
    :param max_concurrent_tasks: tasks in flight (1..5000).
    :param kms_key_id: KMS key for the output.
    :param tags: extra tags for the jobs.
    :param content_classifiers: Ground Truth content classifiers (needed for Mechanical Turk).
    """

    aws_hook_class = GroundTruthHook
    template_fields: Sequence[str] = (*REVIEW_TEMPLATE_FIELDS, "workteam_arn", "role_arn", "pre_annotation_lambda_arn",
        "annotation_consolidation_lambda_arn", "task_title", "task_description", "kms_key_id", "tags",
        "batch_size", "box_task", "max_box_labels", "task_time_limit_seconds",
        "task_availability_lifetime_seconds", "max_concurrent_tasks")
    template_fields_renderers = {"tags": "json", "labels": "json"}
    operator_extra_links = (LabelingJobLink(), LabelingJobOutputLink())
    ui_color = "#e8d5f5"

    def __init__(
        self,
        *,
        workteam_arn: str,
        role_arn: str,
        pre_annotation_lambda_arn: str | None = None,
        annotation_consolidation_lambda_arn: str | None = None,
        batch_size: int = 5,
        box_task: str = "adjustment",
        max_box_labels: int = gt.MAX_BOX_LABELS,
        task_title: str = "Check the labels a model gave these images",
        task_description: str = "Confirm or reject each label the model proposed, and add any that are missing.",
        task_keywords: list[str] | None = None,
        task_time_limit_seconds: int = 600,
        task_availability_lifetime_seconds: int = 864000,
        max_concurrent_tasks: int | None = None,
        kms_key_id: str | None = None,
        tags: dict[str, str] | None = None,
        content_classifiers: list[str] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.workteam_arn = workteam_arn
        self.role_arn = role_arn
        self.pre_annotation_lambda_arn = pre_annotation_lambda_arn
        self.annotation_consolidation_lambda_arn = annotation_consolidation_lambda_arn
        self.batch_size = batch_size
        self.box_task = box_task
        self.max_box_labels = max_box_labels
        self.task_title = task_title
        self.task_description = task_description
        self.task_keywords = task_keywords
        self.task_time_limit_seconds = task_time_limit_seconds
        self.task_availability_lifetime_seconds = task_availability_lifetime_seconds
        self.max_concurrent_tasks = max_concurrent_tasks
        self.kms_key_id = kms_key_id
        self.tags = tags
        self.content_classifiers = content_classifiers

    # --- helpers ------------------------------------------------------------------------------

    def _params(self) -> dict:
        return {name: getattr(self, name) for name in (
            "workteam_arn", "role_arn", "pre_annotation_lambda_arn", "annotation_consolidation_lambda_arn", "labels",
            "task_title", "task_description", "task_keywords", "task_time_limit_seconds",
            "task_availability_lifetime_seconds", "workers_per_object", "max_concurrent_tasks", "kms_key_id", "tags",
            "batch_size", "box_task", "max_box_labels", "kind", "label_unpredicted", "content_classifiers")}

    def _validate(self):
        """Every parameter, before anything is read, written or created (bad input is not retried)."""
        inputs = self.review_inputs()
        try:
            gtjobs.validate_parameters(self._params())
        except ValueError as err:
            raise AirflowFailException(f"{self.task_id}: {err}") from err
        return inputs

    @staticmethod
    def _put(s3: S3Hook, uri: S3Uri, text: str) -> None:
        S3Artifacts(s3).write_text(uri, text)

    @staticmethod
    def _template(name: str) -> str:
        return resources.files("rekfeedback").joinpath("templates", name).read_text(encoding="utf-8")

    def _current_job(self, run_id: str, kind: str, part: int, output: S3Uri) -> tuple[str, dict | None]:
        """A failed job is redone when this task is cleared: the same items under the next attempt's name."""
        names = [gtjobs.job_name(self.dag_id, run_id, kind, part, attempt, turn=str(output))
                 for attempt in range(1, MAX_JOB_ATTEMPTS + 1)]
        try:
            return self.hook.current_job(names, str(output), self.log)
        except AirflowFailException as err:
            raise AirflowFailException(f"{self.task_id}: {err}") from err

    # --- execute ------------------------------------------------------------------------------

    def execute(self, context: Context) -> dict:
        turn, sources, policy = self._validate()
        s3 = self.s3_hook()
        base = turn.join("review", "ground-truth")
        result = {"backend": BACKEND, "jobs": [], "answers_uri": str(turn.join("answers", f"{BACKEND}.jsonl")),
                  **{k: str(v) for k, v in self.routed_uris(turn).items()}}
        review_set = self.review_set(s3, sources, policy)
        try:
            plans, leftovers = gtjobs.plan_jobs(review_set, labels=self.labels, batch_size=self.batch_size,
                                            box_task=self.box_task, max_box_labels=self.max_box_labels)
            if any(p["kind"] in gt.CUSTOM_KINDS for p in plans):
                gtjobs.require_custom_lambdas(self._params())
            region, partition = self.hook.conn_region_name, self.hook.conn_partition
            if any(p["kind"] not in gt.CUSTOM_KINDS for p in plans):
                gtjobs.builtin_lambda_arn(region, "PRE", gt.ADJUST_BOXES)  # fails early in a region without them
        except ValueError as err:
            raise AirflowFailException(f"{self.task_id}: {err}") from err

        # Items no job can take are listed, never dropped: they join the unlabelled list.
        leftover_refs = {i["source-ref"]: i for i in leftovers}
        unlabelled = review_set.by_route("unlabelled") + list(leftover_refs.values())
        # Every item once, before any job exists: the sensor joins the jobs' answers to it.
        self.write_routed(s3, turn, review_set, context, unlabelled)

        # A second round of the turn names its jobs after it: deterministic, never the first round's names.
        dag_run_id = context["run_id"] + (f"~{self.round_name}" if self.round_name else "")
        for plan in plans:
            output = base.join("output")
            name, existing = self._current_job(dag_run_id, plan["kind"], plan["part"], output)
            folder = base.join("jobs", name)
            manifest, categories = folder.join("input.manifest"), folder.join("label-categories.json")
            template = base.join("templates", gt.TEMPLATE[plan["kind"]])
            if existing is None:
                self._put(s3, manifest, gt.manifest_text(plan["lines"], name))
                self._put(s3, categories, json.dumps(gt.label_category_config(plan["labels"]), indent=2) + "\n")
                self._put(s3, template, self._template(gt.TEMPLATE[plan["kind"]]))
                tags = {"rekfeedback:dag-id": self.dag_id, "rekfeedback:run-id": context["run_id"],
                        "rekfeedback:task-id": self.task_id, "rekfeedback:kind": plan["kind"], **(self.tags or {})}
                request = gtjobs.labeling_job_request(
                    self._params(), kind=plan["kind"], name=name, manifest=str(manifest), categories=str(categories),
                    template=str(template), output=str(output), region=region, partition=partition, tags=tags)
                description, created = self.hook.create_or_reuse_labeling_job(request)
            else:
                description, created = existing, False
            status = description.get("LabelingJobStatus")
            self.log.info("%s labeling job %s (%s, %d images in %d tasks): %s", "created" if created else "reusing",
                          name, plan["kind"], len(plan["items"]), len(plan["lines"]), status)
            result["jobs"].append({
                "name": name, "kind": plan["kind"], "arn": description.get("LabelingJobArn"), "status": status,
                "created": created, "label_attribute": gt.LABEL_ATTRIBUTE[plan["kind"]],
                "images": len(plan["items"]), "objects": len(plan["lines"]),
                "input_manifest_uri": str(manifest),
                "output_uri": str(output.join(name, "manifests", "output", "output.manifest")),
            })


        counts = review_set.counts()
        counts["unlabelled"] += len(leftovers)
        for key in ("human", "audit", "to_label"):
            counts[key] -= sum(1 for i in leftovers if i["route"].replace("-", "_") == key)
        result["counts"] = counts
        result["counts_by_kind"] = {j["kind"]: j["images"] for j in result["jobs"]}
        if result["jobs"]:
            LabelingJobLink.persist(context=context, operator=self, region_name=region, aws_partition=partition,
                                    job_name=result["jobs"][0]["name"])
            out = base.join("output")
            LabelingJobOutputLink.persist(context=context, operator=self, region_name=region,
                                          aws_partition=partition, bucket=out.bucket, prefix=out.key)
        self.log.info("review routing: %s; jobs: %s", counts, [j["name"] for j in result["jobs"]] or "none")
        return result
