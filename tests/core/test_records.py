"""The typed records of a turn (core.records and the stage modules): one reader and one writer each."""

from __future__ import annotations

import json

import pytest

from rekfeedback.core import answers as ans
from rekfeedback.core import review
from rekfeedback.core.predictions import prediction_line, read_prediction_lines

REF = "s3://b/a.jpg"


def item(ref=REF, route="human", **over):
    return {"source-ref": ref, "width": 640, "height": 480, "kind": "classification", "route": route,
            "predicted": [{"name": "cat", "confidence": 91.5, "box": None}], **over}


def test_items_round_trip_sorted_with_unknown_keys_kept():
    rows = [item("s3://b/z.jpg", "auto-accept"), item(selection={"strategy": "uncertainty", "rank": 1})]
    text = review.dumps_items(rows)
    assert [json.loads(line)["source-ref"] for line in text.splitlines()] == [REF, "s3://b/z.jpg"]
    items = review.read_items(text, "items.jsonl")
    assert items[REF]["selection"] == {"strategy": "uncertainty", "rank": 1}  # a later stage's field passes through
    assert review.dumps_items(items.values()) == text  # same bytes whatever order


@pytest.mark.parametrize("over, field", [
    ({"width": "640"}, "'width'"),                  # strict: a string is not a width
    ({"route": "maybe"}, "'route'"),
    ({"kind": "video"}, "'kind'"),
    ({"predicted": [{"name": "", "confidence": 9}]}, "'predicted.0.name'"),
    ({"source-ref": "/local/a.jpg"}, "'source-ref'"),
])
def test_a_bad_review_item_names_file_line_and_field(over, field):
    text = review.dumps_items([item("s3://b/0.jpg")]) + json.dumps(item(**over)) + "\n"
    with pytest.raises(ValueError, match=rf"^items.jsonl line 2: {field}"):
        review.read_items(text, "items.jsonl")
    with pytest.raises(ValueError, match=field):
        review.dumps_items([item(**over)])  # the writer checks what it writes too


def test_what_inference_writes_is_what_the_reader_accepts():
    line = prediction_line(REF, width=640, height=480, fmt="jpeg", model="arn:m", predicted_at="2026-11-26T05:00:00Z",
                           response={"CustomLabels": [{"Name": "cat", "Confidence": 91.23456}]})
    failed = prediction_line("s3://b/x.jpg", width=None, height=None, fmt=None, model="arn:m",
                             error={"code": "InvalidImageFormatException", "message": "bad"})
    [a, b] = read_prediction_lines("\n".join(json.dumps(x) for x in (line, failed)), "p")
    assert a["labels"] == [{"name": "cat", "confidence": 91.235, "box": None}] and b["error"]["code"].startswith("Invalid")
    with pytest.raises(ValueError, match="p line 1: 'labels.0.confidence'"):
        list(read_prediction_lines(json.dumps({**line, "labels": [{"name": "cat", "confidence": "high"}]}), "p"))


def test_both_collect_steps_list_unresolved_images_alike():
    text = ans.dumps_unresolved([{"source-ref": "s3://b/b.jpg", "reason": "no annotation yet"},
                                 {"source-ref": REF, "reason": "failed", "job": "j2"},
                                 {"source-ref": REF, "reason": "failed", "job": "j1"}])
    assert [(u["source-ref"], u.get("job")) for u in map(json.loads, text.splitlines())] == [
        (REF, "j1"), (REF, "j2"), ("s3://b/b.jpg", None)]
    assert ans.unresolved_uri("s3://b/t/answers/label-studio.jsonl") == "s3://b/t/answers/label-studio.unresolved.jsonl"
    with pytest.raises(ValueError, match="'reason'"):
        ans.dumps_unresolved([{"source-ref": REF}])


def test_items_live_beside_the_answers_of_their_turn():
    assert review.items_uri_beside("s3://b/loop/d/run/answers/ground-truth.jsonl") == "s3://b/loop/d/run/review/items.jsonl"
    with pytest.raises(ValueError, match="pass items_uri"):
        review.items_uri_beside("s3://b/elsewhere.jsonl")


def test_a_collect_step_writes_answers_pending_and_unresolved_beside_each_other():
    from rekfeedback.core.collected import collected

    def answer(ref, status):
        made = ans.make_answer(source_ref=ref, width=4, height=4, kind="classification", labels=["cat"],
                               workers=3, agreement=0.4 if status == "pending" else 1.0, human=True,
                               backend="label-studio", source="p", answered_at="2026-11-26T07:00:00Z")
        return {**made, "consensus": {"status": status, "threshold": 0.6, "label_agreement": {"cat": 1.0},
                                      "box_agreement": []}}

    uri = "s3://b/t/answers/label-studio.jsonl"
    found = [answer("s3://b/2.jpg", "verified"), answer("s3://b/1.jpg", "pending")]
    files, uris, counts = collected(uri, found, [{"source-ref": "s3://b/3.jpg", "reason": "no annotation yet"}])
    assert uris == {"answers_uri": uri, "pending_uri": "s3://b/t/answers/label-studio.pending.jsonl",
                    "unresolved_uri": "s3://b/t/answers/label-studio.unresolved.jsonl"}
    assert counts == {"answers": 1, "unresolved": 1, "pending": 1} and set(files) == set(uris.values())
    assert [a["source-ref"] for a in ans.loads_jsonl(files[uri])] == ["s3://b/2.jpg"]
    # The review round's own wait: every answer final, none pending.
    _, _, reviewed = collected(uri, found, [], reviewed=True)
    assert reviewed == {"answers": 2, "unresolved": 0, "pending": 0}
    assert collected(uri, list(reversed(found)), [])[0] == collected(uri, found, [])[0]  # any order, same bytes
