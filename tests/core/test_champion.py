"""The champion: which version serves, the promotion gate, min_new_labels, the record, keep_versions."""

from __future__ import annotations

import json

import pytest

from rekfeedback.core import champion as c

V1 = "arn:aws:rekognition:us-east-1:123456789012:project/p/version/v1/1"
V2 = "arn:aws:rekognition:us-east-1:123456789012:project/p/version/v2/2"
V3 = "arn:aws:rekognition:us-east-1:123456789012:project/p/version/v3/3"
V4 = "arn:aws:rekognition:us-east-1:123456789012:project/p/version/v4/4"
SAME = "40 images, sha1 abc"


def comparison(before, after, labels, new=V2, base=V1):
    return {"f1_before": before, "f1_after": after, "new_version_arn": new, "base_version_arn": base,
            "per_label": {k: {"f1_before": b, "f1_after": a} for k, (b, a) in labels.items()}}


def test_an_explicit_arn_wins_over_the_champion_and_says_so():
    record = c.seed_record(V1, at="t0")
    assert c.serving_version(None, record, V3)[:2] == (V1, "champion")
    arn, source, note = c.serving_version(V2, record, V3)
    assert (arn, source) == (V2, "explicit") and "wins over the champion" in note and V1 in note
    assert c.serving_version(None, None, V3)[:2] == (V3, "seed")


def test_gate_promotes_a_better_challenger_on_the_same_test_set():
    result = c.gate(comparison(0.80, 0.90, {"a": (0.8, 0.9), "b": (0.8, 0.9)}), c.Gate(improvement_margin=0.05),
                    champion_test_set=SAME, challenger_test_set=SAME)
    assert result["promote"] is True
    assert all(check["ok"] for check in result["checks"])
    assert result["reasons"][0].startswith("gate passed:")


@pytest.mark.parametrize("gate,comp,test_set,check,words", [
    (c.Gate(improvement_margin=0.05), comparison(0.80, 0.84, {"a": (0.8, 0.84)}), SAME, "improvement_margin", "needs more than +0.05"),
    (c.Gate(max_label_regression=0.05), comparison(0.80, 0.90, {"a": (0.8, 1.0), "b": (0.8, 0.7)}), SAME,
     "max_label_regression", "b F1 0.8000 -> 0.7000"),
    (c.Gate(min_f1=0.95), comparison(0.80, 0.90, {"a": (0.8, 0.9)}), SAME, "min_f1", "< min_f1 0.95"),
    (c.Gate(), comparison(0.80, 0.90, {"a": (0.8, 0.9)}), "41 images, sha1 def", "same_test_set", "not like with like"),
    (c.Gate(), comparison(0.80, 0.90, {"a": (0.8, 0.9)}), None, "same_test_set", "not like with like"),
    (c.Gate(), comparison(0.80, 0.90, {"a": (0.8, 0.9), "b": (0.9, None)}), SAME, "max_label_regression", "b F1 0.9000 -> 0.0000"),
])
def test_gate_refuses_with_the_reason(gate, comp, test_set, check, words):
    result = c.gate(comp, gate, champion_test_set=SAME, challenger_test_set=test_set)
    assert result["promote"] is False
    failed = [x for x in result["checks"] if not x["ok"]]
    assert [x["check"] for x in failed] == [check]
    assert words in failed[0]["detail"]
    assert any(words in r and r.startswith("keep the champion") for r in result["reasons"])


def test_gate_margin_is_not_beaten_by_float_noise():
    result = c.gate(comparison(0.80, 0.81, {}), c.Gate(improvement_margin=0.01), champion_test_set=SAME,
                    challenger_test_set=SAME)
    assert result["promote"] is False


def test_a_champion_without_evaluation_is_beaten_by_any_challenger_above_min_f1():
    assert c.gate(comparison(None, 0.5, {"a": (None, 0.5)}), c.Gate(min_f1=0.4), champion_test_set=None,
                  challenger_test_set=SAME)["promote"] is True


def test_min_new_labels_counts_verified_images_since_the_champion_was_promoted():
    record = c.seed_record(V1, at="t0")
    record = c.record_turn(record, run="r1", at="t1", served_by=V1, seed_arn=V1, decision=c.KEPT, reasons=["x"],
                           comparison=comparison(0.8, 0.7, {}), new_verified_images=5)
    assert c.verified_since_champion(record) == 5  # the seed was trained outside the loop: every turn counts
    record = c.record_turn(record, run="r2", at="t2", served_by=V1, seed_arn=V1, decision=c.PROMOTED, reasons=["y"],
                           comparison=comparison(0.8, 0.9, {}, new=V3), new_verified_images=7)
    assert c.verified_since_champion(record) == 0  # V3 was trained on everything up to r2
    record = c.record_turn(record, run="r3", at="t3", served_by=V3, seed_arn=V1, decision=c.TRAINING_SKIPPED,
                           reasons=["z"], new_verified_images=4)
    assert c.verified_since_champion(record) == 4
    assert c.verified_since_champion(record, exclude_run="r3") == 0  # a rerun of r3 does not count itself
    trains, why = c.should_train(10, 4, 3)
    assert not trains and "7 new human-verified image(s)" in why and "min_new_labels 10" in why
    assert c.should_train(10, 4, 6)[0] and c.should_train(None, 0, 0)[0]


def test_record_promotes_keeps_history_and_a_rerun_changes_nothing():
    comp = comparison(0.8, 0.9, {"a": (0.8, 0.9)})
    first = c.record_turn(None, run="r1", at="t1", served_by=V1, seed_arn=V1, decision=c.PROMOTED,
                          reasons=["gate passed: better"], comparison=comp, new_verified_images=3,
                          test_sets={"champion": SAME, "challenger": SAME})
    assert first["champion"]["project_version_arn"] == V2 and first["champion"]["promoted_by_run"] == "r1"
    assert first["champion"]["per_label"] == {"a": 0.9}
    assert [h["project_version_arn"] for h in first["history"]] == [V1]
    assert first["history"][0]["f1"] == 0.8 and first["history"][0]["replaced_by"] == V2  # the seed's F1, learnt
    assert [x["project_version_arn"] for x in first["created_by_loop"]] == [V2]
    assert first["turns"][0]["champion"] == V1 and first["turns"][0]["decision"] == c.PROMOTED

    again = c.record_turn(first, run="r1", at="t9", served_by=V1, seed_arn=V1, decision=c.PROMOTED,
                          reasons=["gate passed: better"], comparison=comp, new_verified_images=3,
                          test_sets={"champion": SAME, "challenger": SAME})
    assert c.dumps_record(again) == c.dumps_record(first)
    assert c.parse_record(c.dumps_record(first)) == first


def test_a_record_that_is_not_one_is_refused_with_what_to_do():
    assert c.parse_record(None) is None and c.parse_record(b"") is None
    with pytest.raises(c.ChampionRecordError, match="s3://b/champion.json is not JSON.*delete it"):
        c.parse_record("{nope", "s3://b/champion.json")
    with pytest.raises(c.ChampionRecordError, match="not a rekfeedback champion record"):
        c.parse_record(json.dumps({"champion": "x"}))


def _with_losers() -> dict:
    record = c.seed_record(V1, at="t0")
    for run, arn, decision in (("r1", V2, c.KEPT), ("r2", V3, c.PROMOTED), ("r3", V4, c.KEPT)):
        record = c.record_turn(record, run=run, at=f"t{run[1]}", served_by=V1, seed_arn=V1, decision=decision,
                               reasons=[decision], comparison=comparison(0.8, 0.9, {}, new=arn))
    other = "arn:aws:rekognition:us-east-1:123456789012:project/p/version/someone-elses/9"
    record["statuses"] = {V1: "STOPPED", V2: "TRAINING_COMPLETED", V3: "RUNNING", V4: "TRAINING_COMPLETED",
                          other: "TRAINING_COMPLETED"}
    return record


def test_keep_versions_deletes_only_losing_challengers_this_loop_trained_beyond_the_newest_n():
    record = _with_losers()
    statuses = record.pop("statuses")
    assert c.champion_arn(record) == V3
    assert [arn for arn, _ in c.versions_to_delete(record, statuses, 0)] == [V4, V2]  # never V1 (seed), V3 (champion)
    assert [arn for arn, _ in c.versions_to_delete(record, statuses, 1)] == [V2]  # V4 is the newest loser
    assert c.versions_to_delete(record, statuses, None) == []
    assert c.versions_to_delete(record, {**statuses, V2: "RUNNING"}, 1) == []  # running: never
    assert c.versions_to_delete(record, {**statuses, V2: "TRAINING_IN_PROGRESS"}, 1) == []
    done = c.mark_deleted(record, [V2], "t9")
    assert [arn for arn, _ in c.versions_to_delete(done, statuses, 0)] == [V4]
    gone = {k: v for k, v in statuses.items() if k != V4}
    assert [arn for arn, _ in c.versions_to_delete(done, gone, 0)] == []


def test_approval_body_shows_f1_before_and_after_per_label_counts_and_the_report():
    comp = comparison(0.8, 0.9, {"circle": (0.7, 0.95)})
    verdict = c.gate(comp, c.Gate(), champion_test_set=SAME, challenger_test_set=SAME)
    body = c.approval_markdown(comp, verdict, counts={"new human-verified images": 12},
                               report_uri="s3://b/run/report/index.html")
    assert "| **F1 overall** | 0.8000 | 0.9000 |" in body
    assert "| circle | 0.7000 | 0.9500 |" in body
    assert "new human-verified images 12" in body and "s3://b/run/report/index.html" in body
