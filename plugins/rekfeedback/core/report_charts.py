"""The report's five charts as inline SVG (``core.report_svg``), each with an empty state.

Each takes its part of the figures (``core.report.compute_figures``) and returns markup; a turn
with no human answers, one label or no training still gets a sentence where the chart would be.
"""

from __future__ import annotations

from typing import Mapping, Sequence

from markupsafe import Markup

from rekfeedback.core.report_svg import (
    COLORS,
    MUTED_TEXT,
    axis_title_x,
    axis_title_y,
    el,
    empty,
    figure,
    grid_y,
    legend,
    nice_ticks,
    polyline,
    scale,
    tick_x,
)

CHARTS = ("reliability", "labels", "agreement", "f1", "dataset")
_SEGMENTS = [("confirmed", "confirmed as is"), ("adjusted", "box adjusted"), ("rejected", "rejected"), ("added", "added")]


def reliability_chart(rel: Mapping) -> Markup:
    buckets = list(rel.get("buckets") or [])
    filled = [b for b in buckets if b.get("count")]
    if not filled:
        extra = f" ({rel['outside_buckets']} fell outside the confidence buckets.)" if rel.get("outside_buckets") else ""
        return empty("reliability", "No human-reviewed predictions in this turn, so there is nothing to "
                     "calibrate yet." + extra)
    W, H, L, R, T, B = 520, 300, 48, 16, 16, 58
    thr = rel.get("threshold")
    lo = min(b["lower"] for b in filled)
    if thr is not None:
        lo = min(lo, thr)
    hi = max(b["upper"] for b in buckets)
    x, y = scale(lo, hi, L, W - R), scale(0.0, 1.0, H - B, T)
    parts = [grid_y(y, L, W - R, [0, 0.25, 0.5, 0.75, 1.0], lambda v: f"{v:.0%}")]
    if thr is not None:  # what the threshold would auto-accept
        parts.append(el("rect", x=x(thr), y=T, width=x(hi) - x(thr), height=H - B - T, fill=COLORS["accent"], opacity="0.08"))
    parts.append(el("line", x1=x(lo), y1=y(lo / 100), x2=x(hi), y2=y(hi / 100), stroke=COLORS["muted"],
                    stroke_dasharray="5 4"))
    shown = [b for b in buckets if b["lower"] >= lo]
    parts += [tick_x(x(b["lower"]), H - B, f"{b['lower']:g}") for b in shown]  # a tick at every bucket edge
    parts.append(tick_x(x(hi), H - B, f"{hi:g}"))
    max_n = max(b["count"] for b in filled)
    pts = [(x(b["mean_confidence"]), y(b["rate"]), b) for b in filled]
    parts.append(polyline([(px, py) for px, py, _ in pts], COLORS["accent"]))
    for px, py, b in pts:
        parts.append(el("circle", title=f"{b['lower']:g}–{b['upper']:g}: {b['confirmed']} of {b['count']} confirmed "
                        f"({b['rate']:.0%})", cx=px, cy=py, r=3.5 + 5.5 * (b["count"] / max_n) ** 0.5,
                        fill=COLORS["accent"], stroke="#fff", stroke_width="1.5"))
    for b in shown:  # the sample size under each bucket, so a 1-of-1 point does not look solid
        parts.append(el("text", f"n={b['count']}", x=(x(b["lower"]) + x(b["upper"])) / 2, y=H - B + 32, font_size=10,
                        text_anchor="middle", fill=COLORS["muted"], style=MUTED_TEXT))
    if thr is not None:
        parts.append(el("line", x1=x(thr), y1=T, x2=x(thr), y2=H - B, stroke=COLORS["accent"], stroke_width=2))
        # Bottom of the plot: the curve seldom goes there, so the label stays readable.
        anchor = "start" if x(thr) < W - 150 else "end"
        parts.append(el("text", f"auto-accept ≥ {thr:g}", x=x(thr) + (6 if anchor == "start" else -6), y=H - B - 8,
                        font_size=12, font_weight=600, text_anchor=anchor, style=f"fill:{COLORS['accent']}"))
    parts.append(axis_title_x((L + W - R) / 2, H - 6, "model confidence (%)"))
    parts.append(axis_title_y(14, (T + H - B) / 2, "confirmed by humans"))
    thr_txt = (f"Suggested auto-accept threshold {thr:g}: expected error {rel['threshold_error']:.1%} over "
               f"{rel['threshold_support']} reviewed predictions." if thr is not None
               else f"No threshold suggested: {rel.get('reason')}.")
    desc = ("Confirmation rate by confidence bucket: " + "; ".join(
        f"{b['lower']:g} to {b['upper']:g}: {b['rate']:.0%} of {b['count']}" for b in filled) + ". " + thr_txt)
    return figure("reliability", W, H, "Reliability curve", desc, parts) + el("p", thr_txt, class_="lead")


def label_chart(labels: Mapping[str, Mapping]) -> Markup:
    rows = [(name, v) for name, v in labels.items()
            if (v.get("confirmed") or 0) + (v.get("rejected") or 0) + (v.get("added") or 0)]
    if not rows:
        return empty("labels", "No human answers in this turn, so no label was confirmed, rejected or added.")
    rows.sort(key=lambda r: -(r[1]["rejected"] + r[1]["added"] + r[1]["adjusted"]))
    W, L, R, T, row_h = 520, 110, 44, 8, 34
    H = T + row_h * len(rows) + 26
    x = scale(0, max(_segment_values(v)["total"] for _, v in rows), L, W - R)
    parts = []
    for i, (name, v) in enumerate(rows):
        vals = _segment_values(v)
        top = T + i * row_h + 4
        parts.append(el("text", short(name, 16), el("title", name), x=L - 8, y=top + 15, font_size=12, text_anchor="end"))
        cur = 0
        for key, text in _SEGMENTS:
            n = vals[key]
            if not n:
                continue
            x0, x1 = x(cur), x(cur + n)
            parts.append(el("rect", title=f"{name}: {n} {text}", x=x0, y=top, width=max(x1 - x0, 1.0),
                            height=row_h - 10, fill=COLORS[key]))
            if x1 - x0 > 22:
                parts.append(el("text", str(n), x=(x0 + x1) / 2, y=top + 14, font_size=11, text_anchor="middle",
                                style="fill:#fff", fill="#fff"))
            cur += n
        parts.append(el("text", str(vals["total"]), x=x(cur) + 6, y=top + 14, font_size=11, style=MUTED_TEXT))
    parts.append(el("line", x1=L, y1=T, x2=L, y2=T + row_h * len(rows), stroke=COLORS["grid"]))
    parts.append(axis_title_x((L + W - R) / 2, H - 6, "predictions and added labels"))
    desc = "; ".join(
        f"{name}: {_segment_values(v)['confirmed']} confirmed as is, {v['adjusted']} adjusted, "
        f"{v['rejected']} rejected, {v['added']} added" for name, v in rows)
    return legend([(COLORS[k], t) for k, t in _SEGMENTS]) + figure("labels", W, H, "Human verdicts per label",
                                                                   desc + ".", parts)


def agreement_chart(agreement: Mapping) -> Markup:
    hist = agreement.get("histogram") or []
    if not agreement.get("answers"):
        return empty("agreement", "No image was answered by more than one worker, so there is no agreement to show.")
    W, H, L, R, T, B = 520, 240, 48, 16, 24, 44
    n = len(hist)
    top = max(h["count"] for h in hist)
    x, y = scale(0, n, L, W - R), scale(0, top, H - B, T)
    parts = [grid_y(y, L, W - R, nice_ticks(top), lambda v: f"{v:g}")]
    for k, h in enumerate(hist):
        x0, x1 = x(k) + 6, x(k + 1) - 6
        label = f"{h['lower']:.0%}–{h['upper']:.0%}"
        if h["count"]:
            parts.append(el("rect", title=f"{label}: {h['count']} answers", x=x0, y=y(h["count"]), width=x1 - x0,
                            height=y(0) - y(h["count"]), rx=3, fill=COLORS["accent"]))
            parts.append(el("text", str(h["count"]), x=(x0 + x1) / 2, y=y(h["count"]) - 5, font_size=11,
                            text_anchor="middle"))
        parts.append(el("text", label, x=(x0 + x1) / 2, y=H - B + 16, font_size=11, text_anchor="middle", style=MUTED_TEXT))
    mean = agreement.get("mean")
    if mean is not None:
        mx = x(min(mean, 0.9999) * n)
        parts.append(el("line", x1=mx, y1=T - 8, x2=mx, y2=H - B, stroke=COLORS["ink"], stroke_dasharray="3 3"))
        parts.append(el("text", f"mean {mean:.0%}", x=mx - 4, y=float(T - 4), font_size=11, text_anchor="end"))
    parts.append(axis_title_x((L + W - R) / 2, H - 6, "share of workers agreeing with the consolidated answer"))
    parts.append(axis_title_y(14, (T + H - B) / 2, "answers"))
    desc = (f"{agreement['answers']} multi-worker answers, mean agreement {mean:.0%}, "
            f"{agreement.get('unanimous', 0)} unanimous. " +
            "; ".join(f"{h['lower']:.0%} to {h['upper']:.0%}: {h['count']}" for h in hist) + ".")
    return figure("agreement", W, H, "Inter-worker agreement", desc, parts)


def f1_chart(turns: Sequence[Mapping]) -> Markup:
    numbered = [(k, t) for k, t in enumerate(turns, 1) if t.get("f1_after") is not None or t.get("f1_before") is not None]
    pts = [t for _, t in numbered]
    if not pts:
        return empty("f1", "No training results yet: the F1 of each version appears here once a turn trains one.")
    W, H, L, R, T, B = 520, 260, 48, 24, 20, 56
    vals = [v for t in pts for v in (t.get("f1_before"), t.get("f1_after")) if v is not None]
    lo = max(0.0, min(vals) - 0.1)
    lo = 0.0 if lo < 0.3 else round(lo - 0.05, 1)
    hi = 1.0
    n = len(pts)
    x = (lambda i: (L + W - R) / 2) if n == 1 else scale(0, n - 1, L + 24, W - R - 24)
    y = scale(lo, hi, H - B, T)
    parts = [grid_y(y, L, W - R, [round(lo + (hi - lo) * k / 4, 3) for k in range(5)], lambda v: f"{v:.2f}")]
    for key, color, dash in (("f1_before", COLORS["muted"], "5 4"), ("f1_after", COLORS["accent"], "")):
        with_value = [(i, t) for i, t in enumerate(pts) if t.get(key) is not None]
        coords = [(x(i), y(t[key])) for i, t in with_value]
        if len(coords) > 1:
            parts.append(polyline(coords, color, dash))
        for (cx, cy), (_, t) in zip(coords, with_value):
            parts.append(el("circle", title=f"{t['run']}: {key.replace('_', ' ')} {t[key]:.3f}", cx=cx, cy=cy, r=4,
                            fill=color, stroke="#fff", stroke_width="1.5"))
            if key == "f1_after":
                parts.append(el("text", f"{t[key]:.3f}", x=cx, y=cy - 9, font_size=11, text_anchor="middle"))
    step = max(1, (n + 5) // 6)  # at most about six run labels on the axis
    for i, (k, t) in enumerate(numbered):
        if i % step == 0 or i == n - 1:
            # Version names share a long prefix (the DAG id), so cut short they all read the same: the axis
            # says the turn, and the version's name and run show on hover.
            parts.append(tick_x(x(i), H - B, f"turn {k}", title=f"{version_name(t)} ({t.get('run') or ''})"))
    parts.append(axis_title_y(14, (T + H - B) / 2, "F1"))
    desc = "; ".join(f"{t['run']}: before {f3(t.get('f1_before'))}, after {f3(t.get('f1_after'))}" for t in pts) + "."
    out = legend([(COLORS["muted"], "model in use before the turn"), (COLORS["accent"], "version trained this turn")])
    out += figure("f1", W, H, "F1 per model version", desc, parts)
    if n == 1:
        out += el("p", "One turn so far: the trend appears after the next turn.", class_="lead")
    return out


def dataset_chart(dataset: Mapping) -> Markup:
    rows = [(k, int(v)) for k, v in (dataset.get("per_label") or {}).items() if v]
    if not rows:
        return empty("dataset", "The dataset has no labelled image yet.")
    rows.sort(key=lambda r: -r[1])
    now = dataset.get("this_turn") or {}
    W, L, R, T, row_h = 520, 110, 44, 8, 28
    H = T + row_h * len(rows) + 26
    x = scale(0, max(v for _, v in rows), L, W - R)
    parts = []
    for i, (name, total) in enumerate(rows):
        added = min(int(now.get(name, 0)), total)
        before = total - added
        top = T + i * row_h + 4
        parts.append(el("text", short(name, 16), el("title", name), x=L - 8, y=top + 14, font_size=12, text_anchor="end"))
        if before:
            parts.append(el("rect", title=f"{name}: {before} from earlier turns", x=L, y=top, width=x(before) - L,
                            height=row_h - 10, fill=COLORS["previous"]))
        if added:
            parts.append(el("rect", title=f"{name}: {added} added this turn", x=x(before), y=top,
                            width=max(x(total) - x(before), 1.0), height=row_h - 10, fill=COLORS["confirmed"]))
        parts.append(el("text", str(total), x=x(total) + 6, y=top + 13, font_size=11, style=MUTED_TEXT))
    parts.append(el("line", x1=L, y1=T, x2=L, y2=T + row_h * len(rows), stroke=COLORS["grid"]))
    parts.append(axis_title_x((L + W - R) / 2, H - 6, "images"))
    desc = "; ".join(f"{k}: {v} images, {int(now.get(k, 0))} from this turn" for k, v in rows) + "."
    return (legend([(COLORS["previous"], "earlier turns"), (COLORS["confirmed"], "this turn")])
            + figure("dataset", W, H, "Dataset size per label", desc, parts))


def _segment_values(v: Mapping) -> dict:
    confirmed, adjusted = v.get("confirmed") or 0, v.get("adjusted") or 0
    vals = {"confirmed": max(0, confirmed - adjusted), "adjusted": adjusted,
            "rejected": v.get("rejected") or 0, "added": v.get("added") or 0}
    vals["total"] = sum(vals.values())
    return vals


def version_name(turn: Mapping) -> str:
    """The version's name from its ARN (arn:...:project/<project>/version/<version>/<ts>): it reads best."""
    parts = (turn.get("version_arn") or "").split("/")
    if "version" in parts and parts.index("version") + 1 < len(parts):
        return parts[parts.index("version") + 1]
    return str(turn.get("run") or "")


def short(text, n: int) -> str:
    text = str(text)
    return text if len(text) <= n else text[: n - 1] + "…"


def f3(v) -> str:
    return "—" if v is None else f"{v:.3f}"
