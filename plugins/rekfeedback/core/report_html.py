"""The turn's report as one self-contained HTML page (inline SVG charts, no script, no network).

Pure: `render_report(figures)` takes the dict built by `core.report.compute_figures` and returns
the page. Every chart has an empty state (a sentence in place of the chart) so a turn with no
human answers, one label or no training still renders.
"""

from __future__ import annotations

from html import escape
from typing import Mapping, Sequence

from rekfeedback.core.report_noise import noise_table
from rekfeedback.core.report_selection import selection_table

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

CHARTS = ("reliability", "labels", "agreement", "f1", "dataset")

CSS = """
:root { color-scheme: light; --ink:#1f2933; --muted:#5f6b7a; --line:#e3e7ee; --bg:#f6f8fb; --card:#fff; --accent:#0072B2; }
* { box-sizing: border-box; }
body { margin:0; background:var(--bg); color:var(--ink); font:15px/1.5 system-ui,-apple-system,"Segoe UI",Roboto,"Helvetica Neue",Arial,sans-serif; }
main { max-width:1120px; margin:0 auto; padding:28px 24px 48px; }
header h1 { font-size:24px; margin:0 0 4px; letter-spacing:-0.01em; }
header p { margin:0; color:var(--muted); font-size:13px; }
.cards { display:grid; grid-template-columns:repeat(auto-fit,minmax(128px,1fr)); gap:10px; margin:20px 0 8px; padding:0; list-style:none; }
.card { background:var(--card); border:1px solid var(--line); border-radius:10px; padding:12px 14px; }
.card .k { color:var(--muted); font-size:12px; text-transform:uppercase; letter-spacing:.04em; }
.card .v { font-size:24px; font-weight:650; margin-top:2px; font-variant-numeric:tabular-nums; }
.card .s { color:var(--muted); font-size:12px; }
.up { color:#007a5a; } .down { color:#b34700; }
.grid { display:grid; grid-template-columns:repeat(auto-fit,minmax(480px,1fr)); gap:16px; }
section { background:var(--card); border:1px solid var(--line); border-radius:10px; padding:16px 18px; margin-top:16px; }
.grid section { margin-top:0; }
.grid { margin-top:16px; }
section h2 { font-size:16px; margin:0 0 2px; }
section p.lead { margin:0 0 10px; color:var(--muted); font-size:13px; }
figure { margin:0; }
svg { display:block; width:100%; height:auto; }
svg text { font-family:inherit; fill:var(--ink); }
.empty { margin:8px 0; padding:28px 16px; text-align:center; color:var(--muted); background:var(--bg); border:1px dashed var(--line); border-radius:8px; }
table { border-collapse:collapse; width:100%; font-size:13px; font-variant-numeric:tabular-nums; }
th, td { padding:6px 8px; border-bottom:1px solid var(--line); text-align:right; }
th:first-child, td:first-child { text-align:left; }
th { color:var(--muted); font-weight:600; font-size:12px; }
.legend { display:flex; flex-wrap:wrap; gap:14px; margin:4px 0 6px; padding:0; list-style:none; font-size:12px; color:var(--muted); }
.legend i { display:inline-block; width:10px; height:10px; border-radius:2px; margin-right:5px; vertical-align:-1px; }
footer { color:var(--muted); font-size:12px; margin-top:24px; }
"""


def render_report(figures: Mapping, *, title: str | None = None) -> str:
    """The whole page for one turn's figures."""
    run = figures.get("run") or "this turn"
    title = title or f"Feedback loop report: {run}"
    sections = [
        _section("calibration", "Can the model's confidence be trusted?",
                 "Share of human-reviewed predictions that were confirmed, by confidence. Points on "
                 "the dashed line are perfectly calibrated; the shaded area is what the suggested "
                 "threshold would auto-accept.",
                 reliability_chart(figures.get("reliability") or {})),
        _section("labels", "Where is the model wrong?",
                 "What the humans did to each label's predictions: confirmed as is, confirmed with "
                 "the box adjusted, rejected, or added where the model missed it.",
                 label_chart(figures.get("labels") or {})),
        _section("agreement", "Do the reviewers agree?",
                 "Inter-worker agreement on images answered by several workers.",
                 agreement_chart(figures.get("agreement") or {})),
        _section("cost", "What did this turn cost?",
                 "Prices are parameters of the report; check them against your region and workforce.",
                 cost_table(figures.get("cost") or {})),
        _section("f1", "Is the model getting better?",
                 "F1 of the model in use before each turn and of the version trained from it.",
                 f1_chart((figures.get("history") or {}).get("turns") or [])),
        _section("dataset", "How big is the training set?",
                 "Images per label in the cumulative dataset, with this turn's contribution.",
                 dataset_chart(figures.get("dataset") or {})),
    ]
    details = _section("details", "Per label", "Counts behind the charts.",
                       label_table(figures.get("labels") or {}))
    if figures.get("selection"):
        details += _section("selection", "Which images did humans review?",
                            "The review budget's choice: why each image was chosen, and what waits for a later turn.",
                            selection_table(figures["selection"]))
    if figures.get("label_noise"):
        details += _section("noise", "Which answers were doubted?",
                            "Answers of disagreeing reviewers and those the label-noise check flagged, with the "
                            "answer's boxes drawn and the reason; none was merged unreviewed.",
                            noise_table(figures["label_noise"]))
    if figures.get("champion"):
        details += _section("champion", "Which model does the loop use?",
                            "The champion timeline: the version that served each turn, F1 of the champion and of "
                            "the version trained in the turn, and what was decided, with the reason.",
                            champion_table(figures["champion"]))
    return (
        "<!doctype html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
        "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n"
        # No script and no network: the page must open from S3 or a laptop as is.
        "<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; style-src 'unsafe-inline'; img-src data:\">\n"
        f"<title>{escape(title)}</title>\n<style>{CSS}</style>\n</head>\n<body>\n<main>\n"
        f"<header><h1>{escape(title)}</h1><p>{escape(_subtitle(figures))}</p></header>\n"
        f"{headline_cards(figures)}\n"
        f"<div class=\"grid\">\n{''.join(sections)}</div>\n{details}\n"
        "<footer>Generated by rekfeedback. Figures: report/figures.json next to this page.</footer>\n"
        "</main>\n</body>\n</html>\n"
    )


# --- headline ----------------------------------------------------------------------------------

def headline_cards(figures: Mapping) -> str:
    h = figures.get("headline") or {}
    images = figures.get("images") or {}
    rel = figures.get("reliability") or {}
    cost = figures.get("cost") or {}
    thr = h.get("suggested_threshold")
    f1b, f1a = h.get("f1_before"), h.get("f1_after")
    if f1a is not None:
        delta = (f1a - f1b) if f1b is not None else None
        cls = "up" if (delta or 0) > 0 else "down" if (delta or 0) < 0 else ""
        f1_sub = (f"<span class=\"{cls}\">{'+' if delta >= 0 else '−'}{abs(delta):.3f}</span> vs {f1b:.3f} before"
                  if delta is not None else "no earlier F1")
        f1_val = f"{f1a:.3f}"
    else:
        f1_val, f1_sub = "—", "no training this turn"
    cards = [
        ("Images reviewed", _int(h.get("images_human")),
         f"of {_int(images.get('predicted'))} predicted · {_int(h.get('images_auto_accepted'))} auto-accepted"
         f" · {_int(h.get('unresolved'))} left unresolved · {_int(h.get('boxes_dropped'))} bad boxes dropped"),
        ("Confirmed", _pct(h.get("confirmation_rate")),
         f"{_int(h.get('predictions_reviewed'))} predictions reviewed"),
        ("Changed by humans", _int((h.get("rejected") or 0) + (h.get("added") or 0) + (h.get("adjusted") or 0)),
         f"{_int(h.get('rejected'))} rejected · {_int(h.get('added'))} added · {_int(h.get('adjusted'))} adjusted"),
        ("Safe auto-accept", f"≥ {thr:g}" if thr is not None else "—",
         f"error ≤ {_pct(rel.get('target_error'))}" if thr is not None else escape(rel.get("reason") or "")),
        ("Agreement", _pct(h.get("mean_agreement")),
         f"mean over {_int((figures.get('agreement') or {}).get('answers'))} multi-worker answers"),
        ("Turn cost", _money(cost.get("total")),
         f"{_money(cost.get('per_human_image'))} per reviewed image" if cost.get("per_human_image") is not None
         else "no human review"),
        ("F1", f1_val, f1_sub),
    ]
    items = "".join(
        f"<li class=\"card\"><div class=\"k\">{escape(k)}</div><div class=\"v\">{escape(v)}</div>"
        f"<div class=\"s\">{s}</div></li>"
        for k, v, s in cards
    )
    return f"<ul class=\"cards\" aria-label=\"Headline numbers\">{items}</ul>"


# --- charts ------------------------------------------------------------------------------------

def reliability_chart(rel: Mapping) -> str:
    buckets = [b for b in rel.get("buckets") or []]
    filled = [b for b in buckets if b.get("count")]
    if not filled:
        extra = f" ({rel['outside_buckets']} fell outside the confidence buckets.)" if rel.get("outside_buckets") else ""
        return _empty("reliability", "No human-reviewed predictions in this turn, so there is nothing to "
                      "calibrate yet." + extra)
    W, H, L, R, T, B = 520, 300, 48, 16, 16, 58
    thr = rel.get("threshold")
    lo = min(b["lower"] for b in filled)
    if thr is not None:
        lo = min(lo, thr)
    hi = max(b["upper"] for b in buckets)
    x = _scale(lo, hi, L, W - R)
    y = _scale(0.0, 1.0, H - B, T)
    parts = [_grid_y(y, L, W - R, [0, 0.25, 0.5, 0.75, 1.0], lambda v: f"{v:.0%}")]
    if thr is not None:
        parts.append(f"<rect x=\"{x(thr):.1f}\" y=\"{T}\" width=\"{x(hi) - x(thr):.1f}\" height=\"{H - B - T}\" "
                     f"fill=\"{COLORS['accent']}\" opacity=\"0.08\"/>")
    parts.append(f"<line x1=\"{x(lo):.1f}\" y1=\"{y(lo / 100):.1f}\" x2=\"{x(hi):.1f}\" y2=\"{y(hi / 100):.1f}\" "
                 f"stroke=\"{COLORS['muted']}\" stroke-dasharray=\"5 4\"/>")
    shown = [b for b in buckets if b["lower"] >= lo]
    for b in shown:  # x tick at every bucket edge
        parts.append(_tick_x(x(b["lower"]), H - B, f"{b['lower']:g}"))
    parts.append(_tick_x(x(hi), H - B, f"{hi:g}"))
    max_n = max(b["count"] for b in filled)
    pts = [(x(b["mean_confidence"]), y(b["rate"]), b) for b in filled]
    parts.append(f"<polyline points=\"{' '.join(f'{px:.1f},{py:.1f}' for px, py, _ in pts)}\" fill=\"none\" "
                 f"stroke=\"{COLORS['accent']}\" stroke-width=\"2\"/>")
    for px, py, b in pts:
        r = 3.5 + 5.5 * (b["count"] / max_n) ** 0.5
        parts.append(f"<circle cx=\"{px:.1f}\" cy=\"{py:.1f}\" r=\"{r:.1f}\" fill=\"{COLORS['accent']}\" "
                     f"stroke=\"#fff\" stroke-width=\"1.5\"><title>{b['lower']:g}–{b['upper']:g}: "
                     f"{b['confirmed']} of {b['count']} confirmed ({b['rate']:.0%})</title></circle>")
    for b in shown:  # the sample size under each bucket, so a 1-of-1 point does not look solid
        cx = (x(b["lower"]) + x(b["upper"])) / 2
        parts.append(f"<text x=\"{cx:.1f}\" y=\"{H - B + 32}\" font-size=\"10\" text-anchor=\"middle\" "
                     f"fill=\"{COLORS['muted']}\" style=\"fill:{COLORS['muted']}\">n={b['count']}</text>")
    if thr is not None:
        parts.append(f"<line x1=\"{x(thr):.1f}\" y1=\"{T}\" x2=\"{x(thr):.1f}\" y2=\"{H - B}\" "
                     f"stroke=\"{COLORS['accent']}\" stroke-width=\"2\"/>")
        # Bottom of the plot: the curve seldom goes there, so the label stays readable.
        anchor = "start" if x(thr) < W - 150 else "end"
        dx = 6 if anchor == "start" else -6
        parts.append(f"<text x=\"{x(thr) + dx:.1f}\" y=\"{H - B - 8}\" font-size=\"12\" font-weight=\"600\" "
                     f"text-anchor=\"{anchor}\" style=\"fill:{COLORS['accent']}\">auto-accept ≥ {thr:g}</text>")
    parts.append(_axis_title_x((L + W - R) / 2, H - 6, "model confidence (%)"))
    parts.append(_axis_title_y(14, (T + H - B) / 2, "confirmed by humans"))
    thr_txt = (f"Suggested auto-accept threshold {thr:g}: expected error {rel['threshold_error']:.1%} over "
               f"{rel['threshold_support']} reviewed predictions." if thr is not None
               else f"No threshold suggested: {rel.get('reason')}.")
    desc = ("Confirmation rate by confidence bucket: " + "; ".join(
        f"{b['lower']:g} to {b['upper']:g}: {b['rate']:.0%} of {b['count']}" for b in filled) + ". " + thr_txt)
    return _svg("reliability", W, H, "Reliability curve", desc, "".join(parts)) + f"<p class=\"lead\">{escape(thr_txt)}</p>"


def label_chart(labels: Mapping[str, Mapping]) -> str:
    rows = [(name, v) for name, v in labels.items()
            if (v.get("confirmed") or 0) + (v.get("rejected") or 0) + (v.get("added") or 0)]
    if not rows:
        return _empty("labels", "No human answers in this turn, so no label was confirmed, rejected or added.")
    rows.sort(key=lambda r: -(r[1]["rejected"] + r[1]["added"] + r[1]["adjusted"]))
    segs = [("confirmed", "confirmed as is"), ("adjusted", "box adjusted"), ("rejected", "rejected"), ("added", "added")]
    W, L, R, T, row_h = 520, 110, 44, 8, 34
    H = T + row_h * len(rows) + 26
    total_max = max(_seg_values(v)["total"] for _, v in rows)
    x = _scale(0, total_max, L, W - R)
    parts = []
    for i, (name, v) in enumerate(rows):
        vals = _seg_values(v)
        top = T + i * row_h + 4
        parts.append(f"<text x=\"{L - 8}\" y=\"{top + 15}\" font-size=\"12\" text-anchor=\"end\">"
                     f"{escape(_short(name, 16))}<title>{escape(name)}</title></text>")
        cur = 0
        for key, text in segs:
            n = vals[key]
            if not n:
                continue
            x0, x1 = x(cur), x(cur + n)
            parts.append(f"<rect x=\"{x0:.1f}\" y=\"{top}\" width=\"{max(x1 - x0, 1):.1f}\" height=\"{row_h - 10}\" "
                         f"fill=\"{COLORS[key]}\"><title>{escape(name)}: {n} {text}</title></rect>")
            if x1 - x0 > 22:
                parts.append(f"<text x=\"{(x0 + x1) / 2:.1f}\" y=\"{top + 14}\" font-size=\"11\" text-anchor=\"middle\" "
                             f"style=\"fill:#fff\" fill=\"#fff\">{n}</text>")
            cur += n
        parts.append(f"<text x=\"{x(cur) + 6:.1f}\" y=\"{top + 14}\" font-size=\"11\" "
                     f"style=\"fill:{COLORS['muted']}\">{vals['total']}</text>")
    parts.append(f"<line x1=\"{L}\" y1=\"{T}\" x2=\"{L}\" y2=\"{T + row_h * len(rows)}\" stroke=\"{COLORS['grid']}\"/>")
    parts.append(_axis_title_x((L + W - R) / 2, H - 6, "predictions and added labels"))
    desc = "; ".join(
        f"{name}: {_seg_values(v)['confirmed']} confirmed as is, {v['adjusted']} adjusted, "
        f"{v['rejected']} rejected, {v['added']} added" for name, v in rows)
    legend = _legend([(COLORS[k], t) for k, t in segs])
    return legend + _svg("labels", W, H, "Human verdicts per label", desc + ".", "".join(parts))


def agreement_chart(agreement: Mapping) -> str:
    hist = agreement.get("histogram") or []
    if not agreement.get("answers"):
        return _empty("agreement", "No image was answered by more than one worker, so there is no "
                      "agreement to show.")
    W, H, L, R, T, B = 520, 240, 48, 16, 24, 44
    n = len(hist)
    top = max(h["count"] for h in hist)
    x = _scale(0, n, L, W - R)
    y = _scale(0, top, H - B, T)
    parts = [_grid_y(y, L, W - R, _nice_ticks(top), lambda v: f"{v:g}")]
    for k, h in enumerate(hist):
        x0, x1 = x(k) + 6, x(k + 1) - 6
        label = f"{h['lower']:.0%}–{h['upper']:.0%}"
        if h["count"]:
            parts.append(f"<rect x=\"{x0:.1f}\" y=\"{y(h['count']):.1f}\" width=\"{x1 - x0:.1f}\" "
                         f"height=\"{y(0) - y(h['count']):.1f}\" rx=\"3\" fill=\"{COLORS['accent']}\">"
                         f"<title>{label}: {h['count']} answers</title></rect>")
            parts.append(f"<text x=\"{(x0 + x1) / 2:.1f}\" y=\"{y(h['count']) - 5:.1f}\" font-size=\"11\" "
                         f"text-anchor=\"middle\">{h['count']}</text>")
        parts.append(f"<text x=\"{(x0 + x1) / 2:.1f}\" y=\"{H - B + 16}\" font-size=\"11\" text-anchor=\"middle\" "
                     f"style=\"fill:{COLORS['muted']}\">{label}</text>")
    mean = agreement.get("mean")
    if mean is not None:
        mx = x(min(mean, 0.9999) * n)
        parts.append(f"<line x1=\"{mx:.1f}\" y1=\"{T - 8}\" x2=\"{mx:.1f}\" y2=\"{H - B}\" stroke=\"{COLORS['ink']}\" "
                     f"stroke-dasharray=\"3 3\"/><text x=\"{mx - 4:.1f}\" y=\"{T - 12 + 8:.1f}\" font-size=\"11\" "
                     f"text-anchor=\"end\">mean {mean:.0%}</text>")
    parts.append(_axis_title_x((L + W - R) / 2, H - 6, "share of workers agreeing with the consolidated answer"))
    parts.append(_axis_title_y(14, (T + H - B) / 2, "answers"))
    desc = (f"{agreement['answers']} multi-worker answers, mean agreement {mean:.0%}, "
            f"{agreement.get('unanimous', 0)} unanimous. " +
            "; ".join(f"{h['lower']:.0%} to {h['upper']:.0%}: {h['count']}" for h in hist) + ".")
    return _svg("agreement", W, H, "Inter-worker agreement", desc, "".join(parts))


def f1_chart(turns: Sequence[Mapping]) -> str:
    numbered = [(k, t) for k, t in enumerate(turns, 1) if t.get("f1_after") is not None or t.get("f1_before") is not None]
    pts = [t for _, t in numbered]
    if not pts:
        return _empty("f1", "No training results yet: the F1 of each version appears here once a turn trains one.")
    W, H, L, R, T, B = 520, 260, 48, 24, 20, 56
    vals = [v for t in pts for v in (t.get("f1_before"), t.get("f1_after")) if v is not None]
    lo = max(0.0, min(vals) - 0.1)
    lo = 0.0 if lo < 0.3 else round(lo - 0.05, 1)
    hi = 1.0
    n = len(pts)
    x = (lambda i: (L + W - R) / 2) if n == 1 else _scale(0, n - 1, L + 24, W - R - 24)
    y = _scale(lo, hi, H - B, T)
    ticks = [round(lo + (hi - lo) * k / 4, 3) for k in range(5)]
    parts = [_grid_y(y, L, W - R, ticks, lambda v: f"{v:.2f}")]
    series = [("f1_before", COLORS["muted"], "5 4", "in use before the turn"),
              ("f1_after", COLORS["accent"], "", "trained this turn")]
    for key, color, dash, _ in series:
        coords = [(x(i), y(t[key])) for i, t in enumerate(pts) if t.get(key) is not None]
        if len(coords) > 1:
            parts.append(f"<polyline points=\"{' '.join(f'{a:.1f},{b:.1f}' for a, b in coords)}\" fill=\"none\" "
                         f"stroke=\"{color}\" stroke-width=\"2\" stroke-dasharray=\"{dash}\"/>")
        for (cx, cy), t in zip(coords, [t for t in pts if t.get(key) is not None]):
            parts.append(f"<circle cx=\"{cx:.1f}\" cy=\"{cy:.1f}\" r=\"4\" fill=\"{color}\" stroke=\"#fff\" "
                         f"stroke-width=\"1.5\"><title>{escape(str(t['run']))}: {key.replace('_', ' ')} "
                         f"{t[key]:.3f}</title></circle>")
            if key == "f1_after":
                parts.append(f"<text x=\"{cx:.1f}\" y=\"{cy - 9:.1f}\" font-size=\"11\" text-anchor=\"middle\">"
                             f"{t[key]:.3f}</text>")
    step = max(1, (n + 5) // 6)  # at most about six run labels on the axis
    for i, (k, t) in enumerate(numbered):
        if i % step == 0 or i == n - 1:
            # Version names share a long prefix (the DAG id), so cut short they all read the same: the axis
            # says the turn, and the version's name and run show on hover.
            parts.append(_tick_x(x(i), H - B, f"turn {k}", title=f"{_version_name(t)} ({t.get('run') or ''})"))
    parts.append(_axis_title_y(14, (T + H - B) / 2, "F1"))
    desc = "; ".join(
        f"{t['run']}: before {_f3(t.get('f1_before'))}, after {_f3(t.get('f1_after'))}" for t in pts) + "."
    legend = _legend([(COLORS["muted"], "model in use before the turn"), (COLORS["accent"], "version trained this turn")])
    note = "<p class=\"lead\">One turn so far: the trend appears after the next turn.</p>" if n == 1 else ""
    return legend + _svg("f1", W, H, "F1 per model version", desc, "".join(parts)) + note


def dataset_chart(dataset: Mapping) -> str:
    per_label = dataset.get("per_label") or {}
    rows = [(k, int(v)) for k, v in per_label.items() if v]
    if not rows:
        return _empty("dataset", "The dataset has no labelled image yet.")
    rows.sort(key=lambda r: -r[1])
    now = dataset.get("this_turn") or {}
    W, L, R, T, row_h = 520, 110, 44, 8, 28
    H = T + row_h * len(rows) + 26
    x = _scale(0, max(v for _, v in rows), L, W - R)
    parts = []
    for i, (name, total) in enumerate(rows):
        added = min(int(now.get(name, 0)), total)
        before = total - added
        top = T + i * row_h + 4
        parts.append(f"<text x=\"{L - 8}\" y=\"{top + 14}\" font-size=\"12\" text-anchor=\"end\">"
                     f"{escape(_short(name, 16))}<title>{escape(name)}</title></text>")
        if before:
            parts.append(f"<rect x=\"{L}\" y=\"{top}\" width=\"{x(before) - L:.1f}\" height=\"{row_h - 10}\" "
                         f"fill=\"{COLORS['previous']}\"><title>{escape(name)}: {before} from earlier turns</title></rect>")
        if added:
            parts.append(f"<rect x=\"{x(before):.1f}\" y=\"{top}\" width=\"{max(x(total) - x(before), 1):.1f}\" "
                         f"height=\"{row_h - 10}\" fill=\"{COLORS['confirmed']}\"><title>{escape(name)}: {added} "
                         f"added this turn</title></rect>")
        parts.append(f"<text x=\"{x(total) + 6:.1f}\" y=\"{top + 13}\" font-size=\"11\" "
                     f"style=\"fill:{COLORS['muted']}\">{total}</text>")
    parts.append(f"<line x1=\"{L}\" y1=\"{T}\" x2=\"{L}\" y2=\"{T + row_h * len(rows)}\" stroke=\"{COLORS['grid']}\"/>")
    parts.append(_axis_title_x((L + W - R) / 2, H - 6, "images"))
    desc = "; ".join(f"{k}: {v} images, {int(now.get(k, 0))} from this turn" for k, v in rows) + "."
    legend = _legend([(COLORS["previous"], "earlier turns"), (COLORS["confirmed"], "this turn")])
    return legend + _svg("dataset", W, H, "Dataset size per label", desc, "".join(parts))


# --- tables ------------------------------------------------------------------------------------

def cost_table(cost: Mapping) -> str:
    if not cost:
        return _empty("cost", "No cost figures.")
    rows = [
        ("Model running time", f"{cost['inference_unit_hours']:g} IU-hours × {_money(cost['price_per_iu_hour'])}",
         cost["inference"]),
        ("Human review", f"{cost['human_objects']} objects × "
         f"{_money(cost['price_per_object'] + cost.get('workforce_price_per_object', 0))}", cost["human_review"]),
    ]
    if cost.get("training_hours"):
        rows.append(("Training", f"{cost['training_hours']:g} h × {_money(cost['price_per_training_hour'])}",
                     cost["training"]))
    body = "".join(f"<tr><td>{escape(a)}</td><td>{escape(b)}</td><td>{_money(c)}</td></tr>" for a, b, c in rows)
    currency = escape(cost.get("currency", "USD"))
    return ("<table><thead><tr><th scope=\"col\">Item</th><th scope=\"col\">Quantity × price</th>"
            f"<th scope=\"col\">Amount ({currency})</th>"
            f"</tr></thead><tbody>{body}</tbody><tfoot><tr><th scope=\"row\">Total</th><td></td>"
            f"<th>{_money(cost['total'])}</th></tr></tfoot></table>")


def label_table(labels: Mapping[str, Mapping]) -> str:
    if not labels:
        return _empty("details", "No labels were predicted or answered in this turn.")
    cols = [("predicted", "Predicted"), ("reviewed", "Reviewed"), ("confirmed", "Confirmed"),
            ("adjusted", "Adjusted"), ("mean_adjusted_iou", "IoU of adjusted"), ("rejected", "Rejected"),
            ("added", "Added"), ("auto_accepted", "Auto-accepted"), ("confirmation_rate", "Confirmation"),
            ("mean_confidence", "Mean confidence")]
    head = "".join(f"<th scope=\"col\">{escape(t)}</th>" for _, t in cols)
    body = []
    for name, v in labels.items():
        cells = []
        for key, _ in cols:
            val = v.get(key)
            if val is None:
                cells.append("<td>—</td>")
            elif key == "confirmation_rate":
                cells.append(f"<td>{val:.0%}</td>")
            elif key == "mean_adjusted_iou":
                cells.append(f"<td>{val:.2f}</td>")
            elif key == "mean_confidence":
                cells.append(f"<td>{val:.1f}</td>")
            else:
                cells.append(f"<td>{val}</td>")
        body.append(f"<tr><th scope=\"row\">{escape(name)}</th>{''.join(cells)}</tr>")
    return f"<table><thead><tr><th scope=\"col\">Label</th>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


def champion_table(champion: Mapping) -> str:
    turns = champion.get("timeline") or []
    if not turns:
        return _empty("champion", "No turn has been recorded yet.")
    rows = []
    for t in turns:
        name = _version_name({"version_arn": t.get("served_by")}) if t.get("served_by") else "—"
        challenger = _version_name({"version_arn": t.get("challenger")}) if t.get("challenger") else "—"
        rows.append(f"<tr><th scope=\"row\">{escape(str(t.get('run') or ''))}</th><td>{escape(name)}</td>"
                    f"<td>{_f3(t.get('f1_champion'))}</td><td>{escape(challenger)}</td><td>{_f3(t.get('f1_challenger'))}</td>"
                    f"<td>{escape(str(t.get('decision') or ''))}</td><td>{escape('; '.join(t.get('reasons') or []))}</td></tr>")
    head = "".join(f"<th scope=\"col\">{h}</th>" for h in ("Turn", "Served by", "Champion F1", "Challenger",
                                                           "Challenger F1", "Decision", "Why"))
    return f"<table data-table=\"champion\"><thead><tr>{head}</tr></thead><tbody>{''.join(rows)}</tbody></table>"


# --- small helpers -----------------------------------------------------------------------------

def _section(key: str, heading: str, lead: str, body: str) -> str:
    return (f"<section id=\"{key}\" aria-labelledby=\"{key}-h\"><h2 id=\"{key}-h\">{escape(heading)}</h2>"
            f"<p class=\"lead\">{escape(lead)}</p>{body}</section>\n")


def _svg(key: str, w: int, h: int, title: str, desc: str, body: str) -> str:
    return (f"<figure><svg id=\"chart-{key}\" data-chart=\"{key}\" viewBox=\"0 0 {w} {h}\" width=\"{w}\" height=\"{h}\" "
            f"role=\"img\" aria-labelledby=\"chart-{key}-title chart-{key}-desc\" xmlns=\"http://www.w3.org/2000/svg\">"
            f"<title id=\"chart-{key}-title\">{escape(title)}</title><desc id=\"chart-{key}-desc\">{escape(desc)}</desc>"
            f"{body}</svg></figure>")


def _empty(key: str, message: str) -> str:
    return f"<p class=\"empty\" data-empty=\"{key}\" role=\"note\">{escape(message.strip())}</p>"


def _legend(items: Sequence[tuple[str, str]]) -> str:
    return "<ul class=\"legend\">" + "".join(
        f"<li><i style=\"background:{c}\"></i>{escape(t)}</li>" for c, t in items) + "</ul>"


def _scale(d0: float, d1: float, r0: float, r1: float):
    span = (d1 - d0) or 1.0
    return lambda v: r0 + (float(v) - d0) * (r1 - r0) / span


def _grid_y(y, x0: float, x1: float, ticks: Sequence[float], fmt) -> str:
    out = []
    for t in ticks:
        out.append(f"<line x1=\"{x0}\" y1=\"{y(t):.1f}\" x2=\"{x1}\" y2=\"{y(t):.1f}\" stroke=\"{COLORS['grid']}\"/>"
                   f"<text x=\"{x0 - 6}\" y=\"{y(t) + 4:.1f}\" font-size=\"11\" text-anchor=\"end\" "
                   f"style=\"fill:{COLORS['muted']}\">{escape(fmt(t))}</text>")
    return "".join(out)


def _tick_x(px: float, y0: float, label: str, title: str | None = None) -> str:
    hover = f"<title>{escape(title)}</title>" if title else ""
    return (f"<line x1=\"{px:.1f}\" y1=\"{y0}\" x2=\"{px:.1f}\" y2=\"{y0 + 4}\" stroke=\"{COLORS['muted']}\"/>"
            f"<text x=\"{px:.1f}\" y=\"{y0 + 16}\" font-size=\"11\" text-anchor=\"middle\" "
            f"style=\"fill:{COLORS['muted']}\">{hover}{escape(label)}</text>")


def _axis_title_x(cx: float, cy: float, text: str) -> str:
    return f"<text x=\"{cx:.1f}\" y=\"{cy:.1f}\" font-size=\"12\" text-anchor=\"middle\">{escape(text)}</text>"


def _axis_title_y(cx: float, cy: float, text: str) -> str:
    return (f"<text x=\"{cx:.1f}\" y=\"{cy:.1f}\" font-size=\"12\" text-anchor=\"middle\" "
            f"transform=\"rotate(-90 {cx:.1f} {cy:.1f})\">{escape(text)}</text>")


def _nice_ticks(top: int) -> list[int]:
    step = max(1, -(-top // 4))
    return list(range(0, top + step, step))


def _seg_values(v: Mapping) -> dict:
    confirmed, adjusted = v.get("confirmed") or 0, v.get("adjusted") or 0
    vals = {"confirmed": max(0, confirmed - adjusted), "adjusted": adjusted,
            "rejected": v.get("rejected") or 0, "added": v.get("added") or 0}
    vals["total"] = sum(vals.values())
    return vals


def _version_name(turn: Mapping) -> str:
    arn = turn.get("version_arn") or ""
    # arn:aws:rekognition:...:project/<project>/version/<version>/<ts>: the version name reads best.
    parts = arn.split("/")
    if "version" in parts and parts.index("version") + 1 < len(parts):
        return parts[parts.index("version") + 1]
    return str(turn.get("run") or "")


def _subtitle(figures: Mapping) -> str:
    bits = [f"Run {figures.get('run') or '—'}"]
    if figures.get("generated_at"):
        bits.append(f"generated {figures['generated_at']}")
    training = figures.get("training") or {}
    if training.get("new_version_arn"):
        bits.append(f"new version {training['new_version_arn']}")
    return " · ".join(bits)


def _short(text: str, n: int) -> str:
    text = str(text)
    return text if len(text) <= n else text[: n - 1] + "…"


def _int(v) -> str:
    return "—" if v is None else f"{int(v):,}"


def _pct(v) -> str:
    return "—" if v is None else f"{v:.0%}"


def _money(v) -> str:
    return "—" if v is None else f"${v:,.2f}"


def _f3(v) -> str:
    return "—" if v is None else f"{v:.3f}"
