"""The report lists the doubted answers with a thumbnail and the reason, escaped."""

from __future__ import annotations

import base64
import io

from PIL import Image

from rekfeedback.core import report_noise
from rekfeedback.core.report_html import render_report


def jpeg(w=400, h=300) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (w, h), (250, 250, 250)).save(out, "JPEG")
    return out.getvalue()


def test_thumbnail_draws_the_answers_boxes_and_survives_bad_bytes():
    uri = report_noise.thumbnail(jpeg(), [{"left": 0, "top": 0, "width": 200, "height": 150}])
    with Image.open(io.BytesIO(base64.b64decode(uri.split(",", 1)[1]))) as img:
        assert max(img.size) == report_noise.THUMB_PX
        r, g, b = img.convert("RGB").getpixel((1, 30))
        assert r > 150 and g < 120  # the red box edge
    assert report_noise.thumbnail(b"not an image") is None and report_noise.thumbnail(None) is None


def test_the_report_section_lists_every_reason_escaped():
    flags = [{"source-ref": "s3://b/<x>.jpg", "action": "review", "labels": ["cat"],
              "reasons": [{"code": "model-disagrees", "detail": "'dog' at 97% removed"},
                          {"code": "reviewers-disagreed", "detail": "3 workers, agreement 33% < 60%"}]}]
    rows = report_noise.noise_rows(flags, {"s3://b/<x>.jpg": report_noise.thumbnail(jpeg())})
    html = render_report({"run": "r", "label_noise": {"rows": rows, "total": 1, "reviewed": 1, "held_out": 0,
                                                      "flags_uri": "s3://b/checked/flags.jsonl"}})
    assert "Which answers were doubted?" in html and "s3://b/&lt;x&gt;.jpg" in html and "<x>" not in html
    assert "&#39;dog&#39; at 97% removed; 3 workers, agreement 33% &lt; 60%" in html
    assert "data:image/jpeg;base64," in html
    assert "Which answers were doubted?" not in render_report({"run": "r"})
