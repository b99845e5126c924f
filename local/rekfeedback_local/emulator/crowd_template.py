"""A simulated worker that reads a custom task's UI template and answers its crowd elements.

Ground Truth renders the job's Liquid template with `task.input` (the pre-annotation Lambda's taskInput) and
records, per worker, what the form posts: one entry per named crowd element, in the shapes of the element
reference (sms-ui-template-reference, see /work/shared/reference/aws-formats.md 4.7):

    crowd-checkbox                        {"<name>": {"<value>": true|false}}   (boxes sharing a name merge)
    crowd-radio-button                    {"<name>": {"<value>": true|false}}
    crowd-classifier, crowd-image-classifier  {"<name>": {"label": "<category>"}}
    crowd-image-classifier-multi-select   {"<name>": {"labels": [...]}}
    crowd-bounding-box                    {"<name>": {"boundingBoxes": [...], "inputImageProperties": {...}}}
    crowd-input                           {"<name>": "<text>"}

The template is rendered with python-liquid; `grant_read_access` leaves the s3:// URI in place so each element
can be tied to its image (its own `src`, else the nearest image before it). What the worker believes about an
image comes from the truth policy (`policy.worker_answer`), so error rates and policies apply as elsewhere.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from html.parser import HTMLParser
from typing import Callable

from liquid import Environment
from liquid.exceptions import LiquidError

ELEMENTS = ("crowd-checkbox", "crowd-radio-button", "crowd-classifier", "crowd-image-classifier",
            "crowd-image-classifier-multi-select", "crowd-bounding-box", "crowd-input")

# image URI -> the worker's answer for that image: {"labels": [...], "boxes": [...]} in pixels
Believe = Callable[[str | None], dict]


def _environment() -> Environment:
    env = Environment()
    env.add_filter("grant_read_access", lambda uri: uri)  # keep the s3:// URI: it names the image
    env.add_filter("to_json", lambda value: json.dumps(value))
    env.add_filter("skip_autoescape", lambda value: value)
    return env


_LIQUID = _environment()


@dataclass
class Element:
    tag: str
    attrs: dict[str, str]
    image: str | None  # the s3:// URI the element is about, if any
    text: str = ""


@dataclass
class Form:
    elements: list[Element] = field(default_factory=list)
    hidden_fields: set[str] = field(default_factory=set)

    @property
    def posts_one_json_field(self) -> bool:
        """This project's own templates post one hidden `answer` field that the page's script fills with JSON
        (docs/contracts.md); a script can't run here, so that contract is answered as such."""
        return "answer" in self.hidden_fields or not any(e.attrs.get("name") for e in self.elements)


def parse(template: str, task_input: dict) -> Form:
    """Render the template for one task and list its named crowd elements in document order."""
    try:
        rendered = _LIQUID.from_string(template).render(task={"input": task_input})
    except LiquidError as err:
        raise ValueError(f"the UI template does not render with this task input: {err}") from err
    parser = _Parser()
    parser.feed(rendered)
    return Form(parser.elements, parser.hidden_fields)


def answer(form: Form, believe: Believe, image_size: Callable[[str | None], tuple[int, int]],
           known: list[str]) -> dict:
    """One worker's answerContent for the rendered form; `known` are the task's labels."""
    content: dict = {}
    for element in form.elements:
        name = element.attrs.get("name")
        if not name:
            continue  # an unnamed element posts nothing
        seen = believe(element.image)
        labels = list(seen.get("labels") or [])
        if element.tag in ("crowd-checkbox", "crowd-radio-button"):
            value = element.attrs.get("value", "on")
            content.setdefault(name, {})[value] = _ticked(element, value, labels, known)
        elif element.tag in ("crowd-classifier", "crowd-image-classifier"):
            categories = _json_list(element.attrs.get("categories"))
            chosen = next((c for c in categories if c in labels), categories[-1] if categories else "")
            content[name] = {"label": chosen}
        elif element.tag == "crowd-image-classifier-multi-select":
            categories = _json_list(element.attrs.get("categories"))
            content[name] = {"labels": [c for c in categories if c in labels]}
        elif element.tag == "crowd-bounding-box":
            allowed = set(_json_list(element.attrs.get("labels"))) or None
            width, height = image_size(element.image)
            boxes = [{k: b[k] for k in ("label", "left", "top", "width", "height")}
                     for b in seen.get("boxes") or [] if allowed is None or b["label"] in allowed]
            content[name] = {"boundingBoxes": boxes, "inputImageProperties": {"width": width, "height": height}}
        elif element.tag == "crowd-input":
            content[name] = ", ".join(labels)
    return content


def _ticked(element: Element, value: str, labels: list[str], known: list[str]) -> bool:
    """A box or button ticks when the label it names (its text, else its value) is in the image; one that
    names none of the task's labels keeps its default state."""
    named = element.text.strip() or value
    words = named.split()
    label = next((k for k in known if named == k or (words and words[0] == k)), None)
    if label is None:
        return "checked" in element.attrs
    return label in labels


def _json_list(raw: str | None) -> list[str]:
    if not raw:
        return []
    try:
        value = json.loads(raw)
    except ValueError:
        value = json.loads(raw.replace("'", '"'))  # templates often write categories="['a', 'b']"
    return [v if isinstance(v, str) else v.get("label", v.get("text", "")) for v in value]


class _Parser(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.elements: list[Element] = []
        self.hidden_fields: set[str] = set()
        self._image: str | None = None
        self._open: list[Element] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = {k: (v if v is not None else "") for k, v in attrs}
        src = values.get("src", "")
        if src.startswith("s3://"):
            self._image = src
        if tag == "input" and values.get("type") == "hidden" and values.get("name"):
            self.hidden_fields.add(values["name"])
        if tag in ELEMENTS:
            element = Element(tag, values, src if src.startswith("s3://") else self._image)
            self.elements.append(element)
            self._open.append(element)

    def handle_endtag(self, tag: str) -> None:
        if self._open and self._open[-1].tag == tag:
            self._open.pop()

    def handle_data(self, data: str) -> None:
        for element in self._open:
            element.text += data
