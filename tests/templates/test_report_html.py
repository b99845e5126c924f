"""The HTML report renders every chart, stays self-contained and has an empty state per chart."""

from __future__ import annotations

import re
from html.parser import HTMLParser

import pytest

from rekfeedback.core.report import compute_figures
from rekfeedback.core.report_html import CHARTS, render_report
from tests.fixtures.report_sample import demo_turn


def _demo_figures(**kw):
    t = demo_turn()
    return compute_figures(t["predictions"], t["answers"], run=t["run"], training=t["training"],
                           history=t["history"], inference_unit_hours=1.5, min_support=10,
                           generated_at="2026-11-26T08:00:00Z", **kw)


class _Checker(HTMLParser):
    """Collects what the tests look at and checks every opened element is closed in order."""

    VOID = {"meta", "br", "img", "input", "link", "hr"}
    SVG_VOID_OK = {"line", "rect", "circle", "polyline", "path"}

    def __init__(self):
        super().__init__()
        self.stack, self.svgs, self.urls, self.scripts = [], [], [], 0

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "script":
            self.scripts += 1
        if tag == "svg":
            self.svgs.append(a)
        for key in ("src", "href"):
            if a.get(key):
                self.urls.append(a[key])
        if tag not in self.VOID:
            self.stack.append(tag)

    def handle_startendtag(self, tag, attrs):
        self.handle_starttag(tag, attrs)
        if tag not in self.VOID:
            self.stack.pop()

    def handle_endtag(self, tag):
        assert self.stack and self.stack[-1] == tag, f"</{tag}> closes <{self.stack[-1] if self.stack else None}>"
        self.stack.pop()


def _parse(html: str) -> _Checker:
    c = _Checker()
    c.feed(html)
    c.close()
    assert c.stack == [], f"unclosed elements: {c.stack}"
    return c


def test_demo_turn_renders_every_chart_as_accessible_inline_svg():
    figs = _demo_figures()
    html = render_report(figs)
    c = _parse(html)
    charts = {s["data-chart"]: s for s in c.svgs}
    assert set(charts) == set(CHARTS)
    for key, svg in charts.items():
        assert svg["role"] == "img"
        title_id, desc_id = svg["aria-labelledby"].split()
        assert re.search(rf'<title id="{title_id}">[^<]+</title><desc id="{desc_id}">[^<]+</desc>', html), key
    assert c.scripts == 0
    assert c.urls == [], "the report must not load anything"
    assert "http://" not in html.replace('xmlns="http://www.w3.org/2000/svg"', "")
    assert "https://" not in html
    assert 'data-empty' not in html


def test_headline_numbers_are_at_the_top():
    figs = _demo_figures()
    html = render_report(figs)
    cards = html.index('class="cards"')
    assert cards < html.index("<section")
    h = figs["headline"]
    assert f"{h['confirmation_rate']:.0%}" in html[cards:html.index("<section")]
    assert f"≥ {h['suggested_threshold']:g}" in html
    assert f"${h['total_cost']:,.2f}" in html
    assert f"{h['f1_after']:.3f}" in html


def test_reliability_chart_marks_the_chosen_threshold():
    figs = _demo_figures()
    html = render_report(figs)
    chart = html[html.index('data-chart="reliability"'):]
    chart = chart[:chart.index("</svg>")]
    assert f"auto-accept ≥ {figs['reliability']['threshold']:g}" in chart
    filled = [b for b in figs["reliability"]["buckets"] if b["count"]]
    assert chart.count("<circle") == len(filled)


def test_turn_without_human_answers_renders_messages_instead_of_charts():
    preds = [{"source-ref": "s3://b/a.jpg", "width": 10, "height": 10, "error": None,
              "labels": [{"name": "cat", "confidence": 97.0, "box": None}]}]
    answers = [{"source-ref": "s3://b/a.jpg", "kind": "classification", "labels": ["cat"], "boxes": [],
                "human": False, "workers": 1, "agreement": 1.0, "answered_at": "2026-11-26T07:00:00Z"}]
    html = render_report(compute_figures(preds, answers, run="quiet"))
    c = _parse(html)
    empties = set(re.findall(r'data-empty="(\w+)"', html))
    assert {"reliability", "labels", "agreement", "f1"} <= empties
    assert {s["data-chart"] for s in c.svgs} == {"dataset"}  # the auto-accepted cat still grows the dataset
    assert "nothing to calibrate" in html


def test_an_entirely_empty_turn_still_renders():
    html = render_report(compute_figures([], [], run="nothing"))
    _parse(html)
    assert set(re.findall(r'data-empty="(\w+)"', html)) >= {"reliability", "labels", "agreement", "f1", "dataset", "details"}


def test_single_label_turn_renders_its_bar():
    preds = [{"source-ref": f"r{i}", "width": 10, "height": 10, "error": None,
              "labels": [{"name": "only", "confidence": 60.0 + i, "box": None}]} for i in range(4)]
    answers = [{"source-ref": f"r{i}", "kind": "classification", "labels": ["only"] if i else [], "boxes": [],
                "human": True, "workers": 1, "agreement": 1.0, "answered_at": "2026-11-26T07:00:00Z"} for i in range(4)]
    html = render_report(compute_figures(preds, answers, run="one", min_support=1))
    c = _parse(html)
    assert {"reliability", "labels", "dataset"} <= {s["data-chart"] for s in c.svgs}
    labels_svg = html[html.index('data-chart="labels"'):]
    assert ">only<" in labels_svg[:labels_svg.index("</svg>")]


def test_names_are_escaped():
    preds = [{"source-ref": "r", "width": 10, "height": 10, "error": None,
              "labels": [{"name": "<b>&cat", "confidence": 80.0, "box": None}]}]
    answers = [{"source-ref": "r", "kind": "classification", "labels": ["<b>&cat"], "boxes": [], "human": True}]
    html = render_report(compute_figures(preds, answers, run="<script>"))
    assert "<b>&cat" not in html and "<script>" not in html
    assert "&lt;b&gt;&amp;cat" in html


@pytest.mark.parametrize("n_turns", [1, 9])
def test_f1_chart_with_one_or_many_turns(n_turns):
    history = [{"run": f"t{i}", "f1_before": 0.5 + i / 50, "f1_after": 0.52 + i / 50} for i in range(n_turns - 1)]
    figs = compute_figures([], [], run="now", history=history,
                           training={"new_version_arn": "v", "f1_before": 0.7, "f1_after": 0.72, "improved": True})
    html = render_report(figs)
    chart = html[html.index('data-chart="f1"'):]
    chart = chart[:chart.index("</svg>")]
    assert chart.count("<circle") == 2 * n_turns
    assert ("One turn so far" in html) == (n_turns == 1)


def test_f1_axis_labels_tell_the_turns_apart_with_the_version_on_hover():
    import re

    from rekfeedback.core.report_html import f1_chart

    prefix = "arn:aws:rekognition:us-east-1:123456789012:project/shapes/version/rekognition_feedback_loop-manual"
    turns = [{"run": f"run{i}", "version_arn": f"{prefix}-2026-12-0{i}/170000000000{i}", "f1_before": 0.5,
              "f1_after": 0.6} for i in range(1, 4)]
    svg = f1_chart(turns)
    ticks = re.findall(r'<text[^>]*text-anchor="middle"[^>]*>(?:<title>([^<]*)</title>)?([^<]*)</text>', svg)
    axis = [(title, label) for title, label in ticks if label.startswith("turn ")]
    assert [label for _, label in axis] == ["turn 1", "turn 2", "turn 3"]
    assert all("rekognition_feedback_loop-manual-2026-12-0" in title for title, _ in axis)
