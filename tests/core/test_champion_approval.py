"""What an approval answer does to the gate's verdict (core.champion_approval.final_decision, used by ChampionRecordOperator)."""

from __future__ import annotations

import pytest

from rekfeedback.core.champion_approval import final_decision

GATE = {"decision": "promoted", "reasons": ["gate passed: better"], "needs_approval": True}
PERSON = {"id": "1", "name": "Ada Reviewer"}


@pytest.mark.parametrize("answer,action,decision,words", [
    ({"chosen_options": ["Approve"], "responded_by_user": PERSON}, "keep", "promoted", "approved by Ada Reviewer"),
    ({"chosen_options": ["Reject"], "responded_by_user": PERSON}, "keep", "rejected", "rejected by Ada Reviewer"),
    ({"chosen_options": ["Reject"], "responded_by_user": None}, "keep", "rejected", "approval timed out: the champion stays"),
    ({"chosen_options": ["Reject"], "responded_by_user": None}, "promote", "promoted", "approval timed out: promoted"),
    (None, "keep", "rejected", "no approval answer"),
])
def test_the_answer_decides(answer, action, decision, words):
    got, reasons = final_decision(GATE, answer, action)
    assert got == decision
    assert reasons[0] == "gate passed: better" and words in reasons[-1]


def test_no_approval_needed_keeps_the_gate_verdict():
    answer = {"chosen_options": ["Reject"], "responded_by_user": PERSON}
    assert final_decision({"decision": "kept", "reasons": ["keep the champion: worse"]}, answer) == (
        "kept", ["keep the champion: worse"])
