"""Who owns the model in a turn, decided once and kept in S3, so every try and the teardown agree.

A DAG run owns the model version when the model was not RUNNING (nor STARTING, i.e. being started
by someone else) at the run's first look, and the run may start it (`start_model`); a run that
starts the model itself (it was stopped since the first look) owns it from then on. The decision
is written once under the turn prefix (`model/ownership.json`, first writer wins): a retried start
task, a rerun after a crash, the teardown all read it, none re-decides from what they see later
(a retry that finds the model STARTING or RUNNING would otherwise think someone else started it).

When the run asks Rekognition to start the model it also writes `model/start.json` (the first
request time, for model hours) and a loop-level record `<dataset>/owned-models/<run-key>.json`;
the teardown deletes that record once the model is stopped, so a record left behind means a turn
died before stopping what it owned, and the next turn's preflight stops it.

Pure: the decisions and record shapes. The operators do the reading and writing.
"""

from __future__ import annotations

from datetime import datetime, timezone

from rekfeedback.core.paths import S3Uri, run_key

NOT_OURS = frozenset({"RUNNING", "STARTING"})  # someone else runs (or starts) it: never ours to stop
LEFTOVER_TO_STOP = frozenset({"RUNNING"})
LEFTOVER_SETTLING = frozenset({"STARTING"})  # StopProjectVersion is refused while starting: next turn


def now_iso() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_iso(stamp: str) -> datetime:
    return datetime.strptime(stamp, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=timezone.utc)


def ownership_uri(turn: S3Uri) -> S3Uri:
    return turn.join("model", "ownership.json")


def start_uri(turn: S3Uri) -> S3Uri:
    return turn.join("model", "start.json")


def owned_model_uri(owned_prefix: S3Uri, run_id: str) -> S3Uri:
    return owned_prefix.join(f"{run_key(run_id)}.json")


def decide(*, project_version_arn: str, status_before_run: str | None, start_model: bool, run_id: str) -> dict:
    """The ownership record of a run, from the model's status at the run's first look."""
    status = (status_before_run or "").strip().upper() or None
    owned = bool(start_model) and status is not None and status not in NOT_OURS
    return {"project_version_arn": project_version_arn, "owned": owned, "status_before_run": status,
            "run_id": run_id, "decided_at": now_iso()}


def start_record(*, project_version_arn: str, run_id: str, records_prefix: str) -> dict:
    return {"project_version_arn": project_version_arn, "run_id": run_id, "records_prefix": records_prefix,
            "start_requested_at": now_iso()}


def running_seconds(start: dict | None, now: datetime | None = None) -> float | None:
    """How long the model ran for this run: from its first start request until now (the stop)."""
    if not start or not start.get("start_requested_at"):
        return None
    now = now or datetime.now(timezone.utc)
    return round(max(0.0, (now - parse_iso(start["start_requested_at"])).total_seconds()), 1)


def leftover_action(record: dict, status: str | None, this_run_id: str, stop_leftovers: bool) -> str:
    """What preflight does with another turn's owned-model record: "stop", "wait", "warn" or "forget"."""
    if run_key(str(record.get("run_id") or "")) == run_key(this_run_id):
        return "keep"  # this run's own (a rerun): its teardown stops it
    if status in LEFTOVER_TO_STOP:
        return "stop" if stop_leftovers else "warn"
    if status in LEFTOVER_SETTLING:
        return "wait"
    return "forget"  # stopped (or gone) since: nothing is billing
