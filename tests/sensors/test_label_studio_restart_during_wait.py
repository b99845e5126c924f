"""Label Studio stops while the sensor waits in its trigger, then starts again: nothing is lost."""

from __future__ import annotations

import asyncio
import threading
import uuid

import pytest
from airflow.sdk.exceptions import TaskDeferred

from rekfeedback_local.annotator import annotate_project
from rekfeedback.hooks.label_studio_async import LabelStudioAsyncHook
from rekfeedback.sensors.label_studio import LabelStudioReviewSensor
from tests.fixtures.label_studio import CONN_ID, context_for, other_sessions
from tests.fixtures.label_studio import read_s3, run_operator

pytestmark = pytest.mark.labelstudio


class PollSpy:
    """Counts the trigger's polls of Label Studio as they answer or fail: the test waits for these events."""

    def __init__(self, get_project):
        self.answered = self.failed = 0
        self.changed = threading.Condition()

        async def spied(hook, *args, **kwargs):
            try:
                answer = await get_project(hook, *args, **kwargs)
            except Exception:
                self._count("failed")
                raise
            self._count("answered")
            return answer

        self.get_project = spied

    def _count(self, outcome: str) -> None:
        with self.changed:
            setattr(self, outcome, getattr(self, outcome) + 1)
            self.changed.notify_all()

    def wait_for(self, what: str, condition, timeout: float = 300) -> None:
        with self.changed:
            assert self.changed.wait_for(lambda: condition(self), timeout), \
                f"never saw {what}: {self.answered} polls answered, {self.failed} failed"


def test_label_studio_down_during_wait_loses_nothing(make_turn, ls_hook, label_studio, s3, monkeypatch):
    if other_sessions():
        pytest.skip(f"other pytest sessions {other_sessions()} use this Label Studio; stopping it would break them")
    turn = make_turn(n=4)
    run_id = f"manual__{uuid.uuid4().hex[:8]}"
    out, _ = run_operator(turn, run_id)
    sensor = LabelStudioReviewSensor(task_id="wait", review=out, label_studio_conn_id=CONN_ID, poll_interval=1)
    with pytest.raises(TaskDeferred) as deferred:
        sensor.execute(context_for(run_id))
    trigger = deferred.value.trigger
    # The triggerer rebuilds the trigger from serialize(): do the same.
    classpath, kwargs = trigger.serialize()
    assert classpath == "rekfeedback.triggers.label_studio.LabelStudioReviewTrigger"
    trigger = type(trigger)(**kwargs)

    events, errors = [], []

    def wait():
        async def first_event():
            async for event in trigger.run():
                return event
        try:
            events.append(asyncio.run(asyncio.wait_for(first_event(), timeout=400)))
        except Exception as exc:  # surfaced below
            errors.append(exc)

    polls = PollSpy(LabelStudioAsyncHook.get_project)
    monkeypatch.setattr(LabelStudioAsyncHook, "get_project", polls.get_project)
    thread = threading.Thread(target=wait, daemon=True)
    thread.start()
    polls.wait_for("the trigger's first answered poll", lambda p: p.answered >= 1)
    label_studio.stop()
    polls.wait_for("three failed polls while Label Studio is down", lambda p: p.failed >= 3)
    assert thread.is_alive() and not events and not errors, (events, errors)
    label_studio.start()
    assert not events, "the trigger must not finish before the tasks are annotated"
    annotate_project(ls_hook, out["project_id"], policy="accept-all")
    thread.join(timeout=60)
    assert not errors and events, (errors, events)
    payload = events[0].payload
    assert payload["status"] == "success" and payload["progress"]["annotated"] == payload["progress"]["tasks"]
    result = sensor.execute_complete(context_for(run_id), event=payload)
    human = [line for line in turn["lines"] if line["labels"]]
    assert result["counts"]["answers"] == len(human)
    assert len(read_s3(s3, result["answers_uri"]).splitlines()) == len(human)
