"""What an approval answer does to the gate's verdict (ChampionRecordOperator._final), without a DAG run."""

from __future__ import annotations

import pytest

from rekfeedback.operators.champion import ChampionRecordOperator

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
    op = ChampionRecordOperator(task_id="record", gate=GATE, champion_record_uri="s3://b/champion.json",
                                approval=answer, approval_timeout_action=action)
    got, reasons = op._final(GATE)
    assert got == decision
    assert reasons[0] == "gate passed: better" and words in reasons[-1]


def test_no_approval_needed_keeps_the_gate_verdict():
    op = ChampionRecordOperator(task_id="record", gate={}, champion_record_uri="s3://b/champion.json",
                                approval={"chosen_options": ["Reject"], "responded_by_user": PERSON})
    assert op._final({"decision": "kept", "reasons": ["keep the champion: worse"]}) == ("kept", ["keep the champion: worse"])
