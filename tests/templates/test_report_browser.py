"""The report of a demo-like turn, opened in headless Chromium: loads cleanly and shows each chart."""

from __future__ import annotations

import json

import pytest

from rekfeedback.core.report import compute_figures
from rekfeedback.core.report_html import CHARTS
from rekfeedback.operators.report import write_report_locally
from tests.fixtures.cdp import find_chromium, load_page
from tests.fixtures.report_sample import demo_turn

pytestmark = pytest.mark.skipif(
    find_chromium() is None,
    reason="no Chromium found (Debian: apt-get install -y chromium); the browser check of the report is skipped",
)

# Every chart: drawn with a real size, inside the viewport width, with marks in it.
PROBE = """
(() => {
  const charts = {};
  for (const svg of document.querySelectorAll('svg[data-chart]')) {
    const r = svg.getBoundingClientRect();
    const style = getComputedStyle(svg);
    charts[svg.dataset.chart] = {
      width: r.width, height: r.height, right: r.right,
      visible: style.visibility !== 'hidden' && style.display !== 'none',
      marks: svg.querySelectorAll('rect, circle, polyline').length,
      label: svg.getAttribute('aria-labelledby').split(' ').map(id => document.getElementById(id)?.textContent || '').join(' ')
    };
  }
  return {charts, viewport: document.documentElement.clientWidth, title: document.title,
          empties: [...document.querySelectorAll('[data-empty]')].map(e => e.dataset.empty),
          cards: document.querySelectorAll('.cards .card').length};
})()
"""


def _open(figures, tmp_path, name):
    page = write_report_locally(figures, tmp_path / name)
    run = load_page(page.as_uri(), expression=PROBE)
    shot = tmp_path / f"{name}.png"
    shot.write_bytes(run.screenshot)
    print(f"screenshot: {shot}")
    assert run.console_errors == [], run.console_errors
    assert [u for u in run.requests if not u.startswith(("file:", "data:"))] == [], "the report reached the network"
    assert run.screenshot[:8] == b"\x89PNG\r\n\x1a\n" and len(run.screenshot) > 10_000
    return run.value


def test_demo_turn_report_in_chromium(tmp_path):
    t = demo_turn()
    figs = compute_figures(t["predictions"], t["answers"], run=t["run"], training=t["training"], history=t["history"],
                           inference_unit_hours=1.5, min_support=10, generated_at="2026-11-26T08:00:00Z")
    value = _open(figs, tmp_path, "demo")
    assert value["title"].startswith("Feedback loop report")
    assert value["cards"] == 7
    assert value["empties"] == []
    assert set(value["charts"]) == set(CHARTS), json.dumps(value)
    for key, c in value["charts"].items():
        assert c["visible"] and c["width"] > 200 and c["height"] > 80, (key, c)
        assert c["right"] <= value["viewport"] + 1, (key, c)
        assert c["marks"] > 0, (key, c)
        assert len(c["label"]) > 20, (key, c)


def test_turn_without_human_answers_in_chromium(tmp_path):
    preds = [{"source-ref": "s3://b/a.jpg", "width": 10, "height": 10, "error": None,
              "labels": [{"name": "cat", "confidence": 97.0, "box": None}]}]
    answers = [{"source-ref": "s3://b/a.jpg", "kind": "classification", "labels": ["cat"], "boxes": [],
                "human": False, "workers": 1, "agreement": 1.0, "answered_at": "2026-11-26T07:00:00Z"}]
    value = _open(compute_figures(preds, answers, run="quiet"), tmp_path, "no-humans")
    assert {"reliability", "labels", "agreement", "f1"} <= set(value["empties"])
    assert set(value["charts"]) == {"dataset"}
