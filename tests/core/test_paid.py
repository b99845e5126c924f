"""core.paid: which paid answers a turn reuses and which unusable images it skips, by model and ETag."""

from __future__ import annotations

from rekfeedback.core import paid

MODEL = "arn:aws:rekognition:us-east-1:123456789012:project/p/version/v1/1"


def line(ref, *, etag="e1", error=None, model=MODEL, at="2026-12-01T00:00:00Z"):
    return {"source-ref": ref, "labels": [], "error": error, "model": model, "predicted_at": at, "etag": etag}


def test_answers_are_reused_only_for_the_same_model_and_etag():
    ledger = paid.index([line("s3://b/a.jpg"), line("s3://b/b.jpg"), line("s3://b/c.jpg", model="other")])
    got = paid.plan({"s3://b/a.jpg": '"e1"', "s3://b/b.jpg": "e2", "s3://b/c.jpg": "e1", "s3://b/new.jpg": "e9"},
                    ledger, MODEL)
    assert [x["source-ref"] for x in got.reuse] == ["s3://b/a.jpg"]  # quoted and bare ETags compare equal
    assert sorted(got.todo) == ["s3://b/b.jpg", "s3://b/c.jpg", "s3://b/new.jpg"]


def test_unusable_images_are_skipped_until_their_etag_changes_and_a_missing_one_until_it_appears():
    bad = {"code": "InvalidImageFormatException", "message": "corrupt"}
    missing = {"code": "NoSuchKey", "message": "gone"}
    ledger = paid.index([line("s3://b/bad.jpg", error=bad), line("s3://b/fixed.jpg", error=bad),
                         line("s3://b/gone.jpg", etag=None, error=missing)])
    got = paid.plan({"s3://b/bad.jpg": "e1", "s3://b/fixed.jpg": "e2", "s3://b/gone.jpg": None}, ledger, MODEL)
    assert sorted(x["source-ref"] for x in got.unusable) == ["s3://b/bad.jpg", "s3://b/gone.jpg"]
    assert got.todo == ["s3://b/fixed.jpg"]
    assert paid.plan({"s3://b/gone.jpg": "e5"}, ledger, MODEL).todo == ["s3://b/gone.jpg"]


def test_the_ledger_keeps_answers_and_file_verdicts_with_their_etag_never_transient_errors():
    throttled = {"code": "ThrottlingException", "message": "slow down"}
    lines = [line("s3://b/a.jpg", etag=None), line("s3://b/t.jpg", etag=None, error=throttled),
             line("s3://b/x.jpg", etag=None)]
    kept = paid.ledger_lines(lines, {"s3://b/a.jpg": "e1", "s3://b/t.jpg": "e1"})
    assert [(x["source-ref"], x["etag"]) for x in kept] == [("s3://b/a.jpg", "e1")]  # x: ETag unknown


def test_the_newest_line_of_an_image_wins():
    old, new = line("s3://b/a.jpg", at="2026-01-01T00:00:00Z"), line("s3://b/a.jpg", etag="e2", at="2026-02-01T00:00:00Z")
    assert paid.index([new, old])["s3://b/a.jpg"]["etag"] == "e2"
