"""The worker templates escape every value they print: a label name or image key holding HTML or quotes
shows as text and never changes the page (Ground Truth escapes by default; the templates do not rely on it,
so they stay safe under any Liquid renderer, e.g. python-liquid without autoescape)."""

from __future__ import annotations

import json
from html.parser import HTMLParser

import pytest
from liquid import Environment

from tests.conftest import ROOT

TEMPLATES = ROOT / "plugins" / "rekfeedback" / "templates"
HOSTILE = "star\"'><img src=x onerror=alert(1)><script>alert(2)</script>&amp;"


def _env() -> Environment:
    env = Environment()  # no autoescape: the templates must escape for themselves
    env.add_filter("grant_read_access", lambda uri: f"https://signed.example/{uri[5:]}?X-Amz-Signature=a&X-Amz-Expires=60")
    env.add_filter("to_json", json.dumps)
    return env


class _Page(HTMLParser):
    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, tuple[str, ...]]] = []
        self.attrs: list[str] = []
        self.text: list[str] = []

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, tuple(sorted(name for name, _ in attrs))))
        self.attrs += [value or "" for _, value in attrs]

    def handle_data(self, data):
        self.text.append(data)


def _task_input(label: str, ref: str) -> dict:
    return {
        "taskObject": ref, "labels": ["circle", label],
        "images": [{"source-ref": ref, "width": 640, "height": 480,
                    "predicted": [{"name": label, "confidence": 91.26}]}],
        "manifestLine": {"source-ref": ref,
                         "prediction": {"annotations": [{"class_id": 0, "left": 1, "top": 2, "width": 30, "height": 40}]},
                         "prediction-metadata": {"class-map": {"0": label}}},
    }


def _render(name: str, label: str, ref: str) -> _Page:
    html = _env().from_string((TEMPLATES / name).read_text()).render(task={"input": _task_input(label, ref)})
    page = _Page()
    page.feed(html)
    page.close()
    return page


@pytest.mark.parametrize("name", sorted(p.name for p in TEMPLATES.glob("*.liquid.html")))
def test_hostile_label_names_and_keys_are_printed_as_text(name):
    benign = _render(name, "star", "s3://bkt/img/1.jpg")
    hostile = _render(name, HOSTILE, f"s3://bkt/img/{HOSTILE}.jpg")
    # The same page: no tag, attribute or script was added by the values.
    assert hostile.tags == benign.tags
    # ... and the values arrive intact where the page uses them (attributes decode to the original text).
    shown = "".join(hostile.attrs) + "".join(hostile.text)
    assert HOSTILE in shown or json.dumps(HOSTILE) in shown
