"""Wait for Label Studio reviewers, then write the turn's normalized answers to S3."""

from __future__ import annotations

from datetime import datetime, timedelta
from functools import cached_property
from typing import Any

from airflow.providers.amazon.aws.hooks.s3 import S3Hook
from airflow.providers.amazon.aws.utils.mixins import aws_template_fields
from airflow.sdk import BaseSensorOperator, PokeReturnValue
from airflow.sdk.exceptions import AirflowException
from airflow.providers.common.compat.sdk import conf

from rekfeedback.core import consensus as consensuslib
from rekfeedback.core import label_studio as lsfmt
from rekfeedback.core import review as reviewlib
from rekfeedback.core.collected import collected
from rekfeedback.core.paths import parse_s3_uri
from rekfeedback.hooks.label_studio import TRANSIENT, LabelStudioHook
from rekfeedback.hooks.s3_artifacts import S3Artifacts
from rekfeedback.links.label_studio import LabelStudioProjectLink
from rekfeedback.links.presigned import AnswersFileLink
from rekfeedback.triggers.label_studio import LabelStudioReviewTrigger, parse_deadline, review_done


class LabelStudioReviewSensor(BaseSensorOperator):
    """Done when every task of the turn's project is annotated, or when `min_annotated_share` of them
    is and `deadline` has passed. Then exports the annotations and writes the normalized answers
    (several annotators per task: `core.consensus`) to `answers_uri`, overwriting it, so a retried
    sensor writes the same file once. Answers of several annotators whose agreement is below
    `agreement_threshold` go to `*.pending.jsonl` beside it (the review round's input), not to the merge.
    With `reviewed=True` (the review round's wait) every answer is recorded as reviewed: final.

    :param review: the XCom of LabelStudioReviewOperator (gives `project_id` and `answers_uri`), or
    :param project_id: / :param answers_uri: given directly.
    :param min_annotated_share: 0..1; with `deadline` (ISO-8601 or datetime) allows finishing early.
    :param deferrable: wait in the triggerer (default). Label Studio being down while waiting is
        retried until the sensor's `timeout`; a refused token fails at once.
    :param aws_conn_id, region_name, verify, botocore_config: the AWS connection the answers are written
        with (as for the amazon provider's operators).
    Label Studio is the service waited on (`ls_hook`, the connection `label_studio_conn_id`); S3 only
    stores the result (`s3_hook`), so this is a plain sensor with both hooks, not an AWS sensor.
    Each exported task is joined to its review item (`review/items.jsonl`, the operator's `items_uri`).
    Images nobody annotated yet are listed in `*.unresolved.jsonl` beside `answers_uri`, as the Ground
    Truth sensor lists its own. Returns `{"answers_uri", "unresolved_uri", "pending_uri", "counts":
    {"answers", "unresolved", "pending", "tasks", "annotations"}}` (the first three as Ground Truth's).
    """

    template_fields = aws_template_fields("review", "project_id", "answers_uri", "min_annotated_share", "deadline",
                                          "label_studio_conn_id", "agreement_threshold")
    ui_color = "#ffcc80"
    # On the wait itself: the task a reviewer's lead looks at while it is deferred.
    operator_extra_links = (LabelStudioProjectLink(), AnswersFileLink())

    def __init__(self, *, review: dict | None = None, project_id: int | None = None, answers_uri: str | None = None,
                 label_studio_conn_id: str = LabelStudioHook.default_conn_name,
                 min_annotated_share: float | None = None, deadline: str | datetime | None = None,
                 poll_interval: float = 30.0, iou_threshold: float = 0.5,
                 agreement_threshold: float = consensuslib.DEFAULT_THRESHOLD, reviewed: bool = False,
                 deferrable: bool = conf.getboolean("operators", "default_deferrable", fallback=True),
                 aws_conn_id: str | None = "aws_default", region_name: str | None = None,
                 verify: bool | str | None = None, botocore_config: dict | None = None, **kwargs):
        kwargs.setdefault("poke_interval", poll_interval)
        super().__init__(**kwargs)
        self.aws_conn_id = aws_conn_id
        self.region_name = region_name
        self.verify = verify
        self.botocore_config = botocore_config
        self.review = review
        self.project_id = project_id
        self.answers_uri = answers_uri
        self.label_studio_conn_id = label_studio_conn_id
        self.min_annotated_share = min_annotated_share
        self.deadline = deadline
        self.poll_interval = poll_interval
        self.iou_threshold = iou_threshold
        self.agreement_threshold = agreement_threshold
        self.reviewed = reviewed
        self.deferrable = deferrable

    # --- inputs -------------------------------------------------------------------------------

    def _items_uri(self, answers_uri: str) -> str:
        review = self.review if isinstance(self.review, dict) else {}
        return review.get("items_uri") or reviewlib.items_uri_beside(answers_uri)

    def _target(self) -> tuple[int | None, str]:
        review = self.review or {}
        if review and not isinstance(review, dict):
            raise ValueError(f"review must be the dict returned by LabelStudioReviewOperator, got {type(review).__name__}")
        project_id = self.project_id if self.project_id not in (None, "") else review.get("project_id")
        answers_uri = self.answers_uri or review.get("answers_uri")
        if not answers_uri:
            raise ValueError("answers_uri is missing: pass answers_uri or review=<LabelStudioReviewOperator output>")
        parse_s3_uri(answers_uri, "answers_uri")
        share = self.min_annotated_share
        if share not in (None, "") and not 0 <= float(share) <= 1:
            raise ValueError(f"min_annotated_share must be between 0 and 1, got {share!r}")
        return (int(project_id) if project_id not in (None, "") else None), answers_uri

    def _min_share(self) -> float | None:
        return None if self.min_annotated_share in (None, "") else float(self.min_annotated_share)

    def _deadline_iso(self) -> str | None:
        dt = parse_deadline(self.deadline)
        return dt.isoformat() if dt else None

    @cached_property
    def ls_hook(self) -> LabelStudioHook:
        """The Label Studio client: the service this sensor waits on."""
        return LabelStudioHook(label_studio_conn_id=self.label_studio_conn_id)

    @cached_property
    def s3_hook(self) -> S3Hook:
        """Where the answers are written."""
        return S3Hook(aws_conn_id=self.aws_conn_id, region_name=self.region_name, verify=self.verify,
                      config=self.botocore_config)

    # --- waiting ------------------------------------------------------------------------------

    def _done(self, project_id: int) -> bool:
        done, why = review_done(self.ls_hook.progress(project_id), self._min_share(), parse_deadline(self.deadline))
        self.log.info("Label Studio project %s: %s", project_id, why)
        return done

    def _try_done(self, project_id: int) -> bool:
        """One poll; Label Studio unreachable counts as not done (a refused token still fails)."""
        try:
            return self._done(project_id)
        except TRANSIENT as exc:
            self.log.warning("Label Studio unreachable, will keep waiting: %s", exc)
            return False

    def execute(self, context) -> Any:
        project_id, answers_uri = self._target()
        self._persist_links(context, project_id, answers_uri)
        if project_id is None:
            self.log.info("no Label Studio project this turn (nothing sent to humans); writing an empty answers file")
            return self._write(answers_uri, [], [], tasks=0, annotations=0)  # nothing to join: no items read
        if not self.deferrable:
            return super().execute(context)
        self._deadline_iso()  # a bad deadline fails here, not in the triggerer
        if self._try_done(project_id):
            return self._collect(project_id, answers_uri)
        self.defer(
            trigger=LabelStudioReviewTrigger(project_id=project_id, label_studio_conn_id=self.label_studio_conn_id,
                                             poll_interval=self.poll_interval, min_share=self._min_share(),
                                             deadline=self._deadline_iso()),
            method_name="execute_complete",
            timeout=timedelta(seconds=float(self.timeout)),
        )

    def _persist_links(self, context, project_id: int | None, answers_uri: str) -> None:
        review = self.review if isinstance(self.review, dict) else {}
        if project_id is not None and review.get("project_url"):
            LabelStudioProjectLink.persist(context, self, url=review["project_url"], project_id=project_id,
                                           title=review.get("title") or f"project {project_id}")
        AnswersFileLink.persist(context, self, answers_uri)  # signed now, opens once the answers are written

    def poke(self, context) -> PokeReturnValue | bool:
        project_id, answers_uri = self._target()
        if self._try_done(project_id):
            return PokeReturnValue(is_done=True, xcom_value=self._collect(project_id, answers_uri))
        return False

    def execute_complete(self, context, event: dict[str, Any] | None = None) -> dict:
        if not event:
            raise AirflowException("LabelStudioReviewSensor resumed without a trigger event")
        if event.get("status") != "success":
            raise AirflowException(f"waiting for Label Studio failed: {event.get('message', event)}")
        project_id, answers_uri = self._target()
        self.log.info("Label Studio review done: %s", event.get("reason"))
        return self._collect(project_id, answers_uri)

    # --- collecting ---------------------------------------------------------------------------

    def _collect(self, project_id: int, answers_uri: str) -> dict:
        items_uri = self._items_uri(answers_uri)
        text = S3Artifacts(self.s3_hook).read_text(parse_s3_uri(items_uri, "items_uri"), missing_ok=True)
        if text is None:
            raise AirflowException(f"the turn's review items {items_uri} are missing; clear the review task: it "
                                   "writes them (and reuses its project)")
        project = self.ls_hook.get_project(project_id)
        tasks = self.ls_hook.export_tasks(project_id)
        answers, unanswered = lsfmt.normalized_answers(tasks, reviewlib.read_items(text, items_uri),
                                                       source=project["title"], iou_threshold=self.iou_threshold,
                                                       agreement_threshold=float(self.agreement_threshold))
        if unanswered:
            self.log.warning("%d images have no answer yet and are left for a later turn, e.g. %s",
                             len(unanswered), ", ".join(unanswered[:5]))
        annotations = sum(len(lsfmt.valid_annotations(t)) for t in tasks)
        return self._write(answers_uri, answers, unanswered, tasks=len(tasks), annotations=annotations)

    def _write(self, answers_uri: str, answers: list[dict], unanswered: list[str], *, tasks: int,
               annotations: int) -> dict:
        unresolved = [{"source-ref": ref, "reason": "no annotation yet (left for a later turn)"} for ref in unanswered]
        files, uris, counts = collected(answers_uri, answers, unresolved, reviewed=self.reviewed)
        store = S3Artifacts(self.s3_hook)
        for uri, text in files.items():  # replace=True: a retry rewrites, never appends
            store.write_text(parse_s3_uri(uri, "answers_uri"), text)
        counts = {**counts, "tasks": tasks, "annotations": annotations}  # Label Studio's own after the common ones
        self.log.info("wrote %d normalized answers to %s (%s)", counts["answers"], answers_uri, counts)
        return {**uris, "counts": counts}
