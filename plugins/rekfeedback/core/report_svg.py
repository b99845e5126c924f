"""A small SVG helper for the report's charts: elements with escaped text and attributes, scales, axes.

Every value goes through markupsafe's escaping (what Jinja's autoescape uses), so a label name can
never become markup; the results are ``Markup``, which the report template inserts as they are.
Floats are written with one decimal (a tenth of a pixel is finer than a screen shows).
"""

from __future__ import annotations

from typing import Callable, Iterable, Sequence

from markupsafe import Markup, escape

# Okabe-Ito: distinguishable with the common colour-vision deficiencies.
COLORS = {
    "confirmed": "#009E73",
    "adjusted": "#E69F00",
    "rejected": "#D55E00",
    "added": "#56B4E9",
    "accent": "#0072B2",
    "muted": "#8a94a6",
    "grid": "#e3e7ee",
    "ink": "#1f2933",
    "previous": "#9fb3c8",
}
MUTED_TEXT = f"fill:{COLORS['muted']}"  # as a style: a CSS rule on svg text would win over the attribute


_SHAPES = {"line", "rect", "circle", "polyline", "path"}  # the SVG elements written self-closed when empty


def _value(v) -> str:
    return f"{v:.1f}" if isinstance(v, float) else str(v)


def el(tag: str, *children, title: str | None = None, **attrs) -> Markup:
    """``<tag attrs>`` with a hover ``<title>`` first, then the children (text is escaped); an empty shape self-closed.

    Attribute names are written with dashes for underscores (``font_size`` -> ``font-size``).
    """
    attributes = "".join(f' {name.rstrip("_").replace("_", "-")}="{escape(_value(v))}"'
                         for name, v in attrs.items() if v is not None)
    body = Markup("").join(escape(c) if not isinstance(c, Markup) else c for c in children)
    if title is not None:
        body = Markup("<title>{}</title>").format(title) + body
    if not body and tag in _SHAPES:
        return Markup(f"<{tag}{attributes}/>")
    return Markup(f"<{tag}{attributes}>") + body + Markup(f"</{tag}>")


def figure(key: str, width: int, height: int, title: str, desc: str, parts: Iterable[Markup]) -> Markup:
    """The chart's ``<svg>`` (found by ``data-chart``), its accessible title and description first."""
    return el("figure", el(
        "svg",
        el("title", title, id=f"chart-{key}-title"), el("desc", desc, id=f"chart-{key}-desc"), *parts,
        id=f"chart-{key}", data_chart=key, viewBox=f"0 0 {width} {height}", width=width, height=height, role="img",
        aria_labelledby=f"chart-{key}-title chart-{key}-desc", xmlns="http://www.w3.org/2000/svg"))


def empty(key: str, message: str) -> Markup:
    """A chart's empty state: a sentence in its place (found by ``data-empty``)."""
    return el("p", message.strip(), class_="empty", data_empty=key, role="note")


def legend(items: Sequence[tuple[str, str]]) -> Markup:
    return el("ul", *(el("li", el("i", style=f"background:{color}"), text) for color, text in items),
              class_="legend")


def scale(d0: float, d1: float, r0: float, r1: float) -> Callable[[float], float]:
    """Linear map of the domain d0..d1 onto the range r0..r1 (pixels)."""
    span = (d1 - d0) or 1.0
    return lambda v: r0 + (float(v) - d0) * (r1 - r0) / span


def grid_y(y, x0: float, x1: float, ticks: Sequence[float], fmt: Callable[[float], str]) -> Markup:
    return Markup("").join(
        el("line", x1=x0, y1=y(t), x2=x1, y2=y(t), stroke=COLORS["grid"])
        + el("text", fmt(t), x=x0 - 6, y=y(t) + 4, font_size=11, text_anchor="end", style=MUTED_TEXT)
        for t in ticks)


def tick_x(px: float, y0: float, label: str, title: str | None = None) -> Markup:
    return (el("line", x1=px, y1=y0, x2=px, y2=y0 + 4, stroke=COLORS["muted"])
            + el("text", label, title=title, x=px, y=y0 + 16, font_size=11, text_anchor="middle", style=MUTED_TEXT))


def axis_title_x(cx: float, cy: float, text: str) -> Markup:
    return el("text", text, x=float(cx), y=float(cy), font_size=12, text_anchor="middle")


def axis_title_y(cx: float, cy: float, text: str) -> Markup:
    cx, cy = float(cx), float(cy)
    return el("text", text, x=cx, y=cy, font_size=12, text_anchor="middle", transform=f"rotate(-90 {cx:.1f} {cy:.1f})")


def polyline(points: Iterable[tuple[float, float]], color: str, dash: str = "") -> Markup:
    return el("polyline", points=" ".join(f"{a:.1f},{b:.1f}" for a, b in points), fill="none", stroke=color,
              stroke_width=2, stroke_dasharray=dash or None)


def nice_ticks(top: int) -> list[int]:
    step = max(1, -(-top // 4))
    return list(range(0, top + step, step))
