"""What the champion record step decides from the gate's verdict and the person's answer (Airflow's Required
Actions), and what it announces. Pure: `operators/champion.py` reads and writes the record."""

from __future__ import annotations

from typing import Any, Mapping

from rekfeedback.core import champion as core

APPROVE, REJECT = "Approve", "Reject"


def final_decision(gate: Mapping, answer: Mapping | None, timeout_action: str = "keep") -> tuple[str, list[str]]:
    """The gate's decision, or, when a promotion awaited approval, what the answer (or its absence) makes of it."""
    decision, reasons = gate["decision"], list(gate["reasons"])
    if not (decision == core.PROMOTED and gate.get("needs_approval")):
        return decision, reasons
    answer = answer or {}
    chosen = answer.get("chosen_options") or []
    user = answer.get("responded_by_user")
    who = user.get("name") if isinstance(user, dict) else None
    if not answer:
        return core.REJECTED, reasons + ["no approval answer: the champion stays"]
    if who is None and str(timeout_action) != "promote":
        return core.REJECTED, reasons + ["approval timed out: the champion stays (approval_timeout_action keep)"]
    if who is None:
        return core.PROMOTED, reasons + ["approval timed out: promoted (approval_timeout_action promote)"]
    if APPROVE in chosen:
        return core.PROMOTED, reasons + [f"approved by {who}"]
    return core.REJECTED, reasons + [f"rejected by {who}: the champion stays"]


def promotion(record: Mapping, comparison: Mapping, run: str) -> tuple[bool, str | None]:
    """(promoted by this run, the champion it replaced): true on a rerun of that run too, so a blue/green
    switch it did not finish is redone."""
    champion = record["champion"]
    promoted = bool(comparison.get("new_version_arn")) and champion.get("promoted_by_run") == run \
        and champion["project_version_arn"] == comparison["new_version_arn"]
    previous = record["history"][-1]["project_version_arn"] if promoted and record["history"] else None
    return promoted, previous


def asset_extra(champion: Mapping, decision: str, record_uri: str) -> dict[str, Any]:
    """The extra of the champion asset's event: who the champion is now and why."""
    return {"project_version_arn": champion["project_version_arn"], "since": champion["since"],
            "promoted_by_run": champion["promoted_by_run"], "f1": champion["f1"],
            "per_label": champion["per_label"], "decision": decision, "record_uri": record_uri}
