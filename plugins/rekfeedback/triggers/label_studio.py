"""Async wait for a Label Studio project's annotations (runs in the triggerer)."""

from __future__ import annotations

import asyncio
import logging
from datetime import datetime, timezone
from typing import Any, AsyncIterator

from airflow.triggers.base import BaseTrigger, TriggerEvent

from rekfeedback.core.label_studio import progress as judge_progress
from rekfeedback.hooks.label_studio import progress_of
from rekfeedback.hooks.label_studio_async import LabelStudioAsyncHook
from rekfeedback.hooks.label_studio_connection import TRANSIENT, LabelStudioError, LabelStudioNotFound

log = logging.getLogger(__name__)


def parse_deadline(value) -> datetime | None:
    if value in (None, ""):
        return None
    if isinstance(value, datetime):
        dt = value
    else:
        try:
            dt = datetime.fromisoformat(str(value).strip().replace("Z", "+00:00"))
        except ValueError as exc:
            raise ValueError(f"deadline must be an ISO-8601 date-time, got {value!r}") from exc
    return dt if dt.tzinfo else dt.replace(tzinfo=timezone.utc)


def review_done(counts: dict, min_share: float | None, deadline: datetime | None) -> tuple[bool, str]:
    """Whether the wait is over for these progress counts (the sensor and the trigger decide alike)."""
    passed = deadline is not None and datetime.now(timezone.utc) >= deadline
    return judge_progress(counts["tasks"], counts["annotated"], min_share, passed)


class LabelStudioReviewTrigger(BaseTrigger):
    """Polls `GET /api/projects/{id}/` until every task is annotated, or `min_share` is once `deadline` passed.

    Label Studio being down (connection refused, timeouts, 5xx, 429, a page that is not JSON) is logged and
    retried at the next poll: the wait only ends with success, a refused token, a deleted project, another
    error Label Studio answers (a 4xx), or the defer timeout.
    """

    def __init__(self, *, project_id: int, label_studio_conn_id: str = "label_studio_default",
                 poll_interval: float = 30.0, min_share: float | None = None, deadline: str | None = None):
        super().__init__()
        self.project_id = int(project_id)
        self.label_studio_conn_id = label_studio_conn_id
        self.poll_interval = float(poll_interval)
        self.min_share = min_share
        self.deadline = deadline

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return (f"{self.__class__.__module__}.{self.__class__.__qualname__}", {
            "project_id": self.project_id, "label_studio_conn_id": self.label_studio_conn_id,
            "poll_interval": self.poll_interval, "min_share": self.min_share, "deadline": self.deadline})

    async def run(self) -> AsyncIterator[TriggerEvent]:
        hook = LabelStudioAsyncHook(self.label_studio_conn_id)
        try:
            await hook.config()
            deadline = parse_deadline(self.deadline)
        except Exception as exc:
            yield TriggerEvent({"status": "error", "project_id": self.project_id,
                                "message": f"Label Studio connection {self.label_studio_conn_id!r}: {exc}"})
            return
        base = hook.base_url
        polls = failures = 0
        while True:
            polls += 1
            try:
                counts = progress_of(await hook.get_project(self.project_id))
                done, why = review_done(counts, self.min_share, deadline)
                if failures:
                    log.info("Label Studio at %s answers again after %d failed polls", base, failures)
                    failures = 0
                log.info("Label Studio project %s: %s", self.project_id, why)
                if done:
                    yield TriggerEvent({"status": "success", "project_id": self.project_id,
                                        "progress": counts, "reason": why})
                    return
            except TRANSIENT as exc:
                # Down, restarting, busy, or a proxy error page: keep waiting; the defer timeout bounds it.
                failures += 1
                log.warning("Label Studio at %s unreachable (%s: %s); retry %d in %.0fs",
                            base, exc.__class__.__name__, exc, failures, self.poll_interval)
            except LabelStudioNotFound:
                yield TriggerEvent({"status": "error", "project_id": self.project_id, "message":
                                    f"Label Studio project {self.project_id} no longer exists at {base}"})
                return
            except LabelStudioError as exc:  # a refused token, or another answer no later poll would change
                yield TriggerEvent({"status": "error", "project_id": self.project_id, "message": str(exc)})
                return
            await asyncio.sleep(self.poll_interval)
