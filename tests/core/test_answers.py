"""Normalized answers, diffs and majority votes (core.answers)."""

from __future__ import annotations

import pytest

from rekfeedback.core import answers as ans


def box(label, left, top, width=50, height=40):
    return {"label": label, "left": left, "top": top, "width": width, "height": height}


def base(**over):
    kw = dict(source_ref="s3://b/a.jpg", width=640, height=480, kind="classification", labels=["cat"],
              confirmed=["cat"], rejected=["dog"], workers=3, agreement=2 / 3, human=True,
              backend="ground-truth", source="job-1", answered_at="2026-11-26T07:12:00.123456")
    kw.update(over)
    return kw


def test_make_answer_round_trips_and_id_is_stable():
    a = ans.make_answer(**base())
    assert a["answered_at"] == "2026-11-26T07:12:00Z"
    assert a["agreement"] == 0.6667
    assert a["answer_id"] == ans.answer_id("ground-truth", "job-1", "s3://b/a.jpg")
    assert a["answer_id"] != ans.make_answer(**base(source="job-2"))["answer_id"]
    text = ans.dumps_jsonl([ans.make_answer(**base(source_ref="s3://b/z.jpg")), a])
    assert text.splitlines()[0].startswith('{"added":[]')  # sorted keys, first line is a.jpg
    assert ans.loads_jsonl(text)[0] == a
    assert ans.dumps_jsonl(ans.loads_jsonl(text)) == text


@pytest.mark.parametrize("over, message", [
    ({"kind": "video"}, "kind"),
    ({"backend": "mturk"}, "backend"),
    ({"human": True, "workers": 0}, "worker"),
    ({"agreement": 1.5}, "agreement"),
    ({"kind": "boxes", "labels": ["cat"], "boxes": [dict(box("dog", 1, 1), status="added")]}, "distinct labels"),
    ({"boxes": [dict(box("cat", 1, 1), status="unchanged")]}, "classification answer has no boxes"),
])
def test_invalid_answers_name_the_field(over, message):
    with pytest.raises(ValueError, match=message):
        ans.make_answer(**base(**over))


def test_loads_rejects_tampered_id_with_line_number():
    good = ans.dumps_jsonl([ans.make_answer(**base())])
    with pytest.raises(ValueError, match="line 2: 'answer_id'"):
        ans.loads_jsonl(good + good.replace("job-1", "job-9", 1))


def test_answered_at_accepts_naive_zoned_and_long_fractions():
    assert ans.iso_utc("2018-10-18T22:18:13.527256") == "2018-10-18T22:18:13Z"
    assert ans.iso_utc("2024-05-01T14:00:00+02:00") == "2024-05-01T12:00:00Z"
    assert ans.iso_utc("2024-05-01T12:00:00.1234567Z") == "2024-05-01T12:00:00Z"
    with pytest.raises(ValueError):
        ans.iso_utc("yesterday")


def test_diff_labels():
    d = ans.diff_labels(["cat", "dog"], ["cat", "bird"])
    assert d == {"confirmed": ["cat"], "rejected": ["dog"], "added": ["bird"], "adjusted": []}


def test_diff_boxes_confirmed_adjusted_rejected_added():
    predicted = [box("cat", 100, 100), box("cat", 300, 300), box("dog", 10, 10)]
    final = [box("cat", 101, 100),            # unchanged (1 px)
             box("cat", 310, 305),            # adjusted, still IoU >= 0.5
             box("bird", 500, 400)]           # added; the dog is rejected
    d = ans.diff_boxes(predicted, final, 0.5)
    assert [b["status"] for b in d["boxes"]] == ["unchanged", "adjusted", "added"]
    assert d["confirmed"] == ["cat", "cat"] and d["adjusted"] == ["cat"]
    assert d["rejected"] == ["dog"] and d["added"] == ["bird"] and d["labels"] == ["bird", "cat"]
    # A box moved too far is a different box: the prediction is rejected and the new one added.
    far = ans.diff_boxes([box("cat", 0, 0)], [box("cat", 45, 35)], 0.5)
    assert far["rejected"] == ["cat"] and far["added"] == ["cat"]
    # A stricter threshold turns the adjusted box into reject + add.
    strict = ans.diff_boxes(predicted, final, 0.9)
    assert strict["adjusted"] == [] and strict["rejected"].count("cat") == 1


def test_auto_accepted_answer_converts_boxes_to_pixels():
    item = {"source-ref": "s3://b/a.jpg", "width": 200, "height": 100, "kind": "boxes", "route": "auto-accept",
            "predicted": [{"name": "cat", "confidence": 97, "box": {"left": 0.1, "top": 0.2, "width": 0.5, "height": 0.5}}],
            "predicted_at": "2026-11-26T05:00:00Z"}
    a = ans.auto_accepted_answer(item, "arn:model")
    assert a["boxes"] == [{"label": "cat", "left": 20, "top": 20, "width": 100, "height": 50, "status": "unchanged"}]
    assert a["human"] is False and a["backend"] == "auto-accept" and a["workers"] == 0
    assert a["answered_at"] == "2026-11-26T05:00:00Z"
    with pytest.raises(ValueError, match="predicted_at"):
        ans.auto_accepted_answer({**item, "predicted_at": None}, "arn:model")
