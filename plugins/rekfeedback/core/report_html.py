"""The turn's report as one self-contained HTML page (inline SVG charts, no script, no network).

Pure: `render_report(figures)` takes the dict built by `core.report.compute_figures` and returns
the page: the Jinja template `templates/report/report.html.j2` (autoescaped) with the charts of
`core.report_charts`. Every chart has an empty state (a sentence in place of the chart) so a turn
with no human answers, one label or no training still renders.
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Mapping

import jinja2
from markupsafe import Markup

from rekfeedback.core.report_charts import (
    CHARTS,
    agreement_chart,
    dataset_chart,
    f1_chart,
    f3,
    label_chart,
    reliability_chart,
    version_name,
)
from rekfeedback.core.report_noise import THUMB_PX

__all__ = ["CHARTS", "f1_chart", "render_report"]

TEMPLATES = Path(__file__).resolve().parent.parent / "templates" / "report"
LABEL_COLUMNS = (("predicted", "Predicted", "{}"), ("reviewed", "Reviewed", "{}"), ("confirmed", "Confirmed", "{}"),
                 ("adjusted", "Adjusted", "{}"), ("mean_adjusted_iou", "IoU of adjusted", "{:.2f}"),
                 ("rejected", "Rejected", "{}"), ("added", "Added", "{}"), ("auto_accepted", "Auto-accepted", "{}"),
                 ("confirmation_rate", "Confirmation", "{:.0%}"), ("mean_confidence", "Mean confidence", "{:.1f}"))


@functools.cache
def _environment() -> jinja2.Environment:
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(TEMPLATES), autoescape=True,
                             keep_trailing_newline=True)
    env.filters.update(money=_money, f3=f3, version=lambda arn: version_name({"version_arn": arn}) if arn else "")
    return env


def render_report(figures: Mapping, *, title: str | None = None) -> str:
    """The whole page for one turn's figures."""
    run = figures.get("run") or "this turn"
    selection = figures.get("selection") or None
    cost = figures.get("cost") or {}
    return _environment().get_template("report.html.j2").render(
        title=title or f"Feedback loop report: {run}",
        subtitle=_subtitle(figures),
        cards=headline_cards(figures),
        charts={
            "reliability": reliability_chart(figures.get("reliability") or {}),
            "labels": label_chart(figures.get("labels") or {}),
            "agreement": agreement_chart(figures.get("agreement") or {}),
            "f1": f1_chart((figures.get("history") or {}).get("turns") or []),
            "dataset": dataset_chart(figures.get("dataset") or {}),
        },
        cost=cost, cost_rows=_cost_rows(cost) if cost else [],
        labels=figures.get("labels") or {}, label_columns=LABEL_COLUMNS,
        selection=selection,
        selection_labels=sorted(set((selection or {}).get("by_label") or {}) | set((selection or {}).get("deferred_by_label") or {})),
        noise=figures.get("label_noise") or None, thumb_px=THUMB_PX,
        champion=figures.get("champion") or None,
    )


def headline_cards(figures: Mapping) -> list[dict]:
    """The headline numbers: a key, a value and a line under it each."""
    h = figures.get("headline") or {}
    images = figures.get("images") or {}
    rel = figures.get("reliability") or {}
    cost = figures.get("cost") or {}
    thr = h.get("suggested_threshold")
    f1b, f1a = h.get("f1_before"), h.get("f1_after")
    if f1a is not None:
        delta = (f1a - f1b) if f1b is not None else None
        cls = "up" if (delta or 0) > 0 else "down" if (delta or 0) < 0 else ""
        f1_sub = (Markup('<span class="{}">{}{:.3f}</span> vs {:.3f} before').format(
            cls, "+" if delta >= 0 else "−", abs(delta), f1b) if delta is not None else "no earlier F1")
        f1_val = f"{f1a:.3f}"
    else:
        f1_val, f1_sub = "—", "no training this turn"
    cards = [
        ("Images reviewed", _int(h.get("images_human")),
         f"of {_int(images.get('predicted'))} predicted · {_int(h.get('images_auto_accepted'))} auto-accepted"
         f" · {_int(h.get('unresolved'))} left unresolved · {_int(h.get('boxes_dropped'))} bad boxes dropped"),
        ("Confirmed", _pct(h.get("confirmation_rate")), f"{_int(h.get('predictions_reviewed'))} predictions reviewed"),
        ("Changed by humans", _int((h.get("rejected") or 0) + (h.get("added") or 0) + (h.get("adjusted") or 0)),
         f"{_int(h.get('rejected'))} rejected · {_int(h.get('added'))} added · {_int(h.get('adjusted'))} adjusted"),
        ("Safe auto-accept", f"≥ {thr:g}" if thr is not None else "—",
         f"error ≤ {_pct(rel.get('target_error'))}" if thr is not None else rel.get("reason") or ""),
        ("Agreement", _pct(h.get("mean_agreement")),
         f"mean over {_int((figures.get('agreement') or {}).get('answers'))} multi-worker answers"),
        ("Turn cost", _money(cost.get("total")),
         f"{_money(cost.get('per_human_image'))} per reviewed image" if cost.get("per_human_image") is not None
         else "no human review"),
        ("F1", f1_val, f1_sub),
    ]
    return [{"key": k, "value": v, "sub": s} for k, v, s in cards]


def _cost_rows(cost: Mapping) -> list[tuple[str, str, float]]:
    rows = [
        ("Model running time", f"{cost['inference_unit_hours']:g} IU-hours × {_money(cost['price_per_iu_hour'])}",
         cost["inference"]),
        ("Human review", f"{cost['human_objects']} objects × "
         f"{_money(cost['price_per_object'] + cost.get('workforce_price_per_object', 0))}", cost["human_review"]),
    ]
    if cost.get("training_hours"):
        rows.append(("Training", f"{cost['training_hours']:g} h × {_money(cost['price_per_training_hour'])}",
                     cost["training"]))
    return rows


def _subtitle(figures: Mapping) -> str:
    bits = [f"Run {figures.get('run') or '—'}"]
    if figures.get("generated_at"):
        bits.append(f"generated {figures['generated_at']}")
    training = figures.get("training") or {}
    if training.get("new_version_arn"):
        bits.append(f"new version {training['new_version_arn']}")
    return " · ".join(bits)


def _int(v) -> str:
    return "—" if v is None else f"{int(v):,}"


def _pct(v) -> str:
    return "—" if v is None else f"{v:.0%}"


def _money(v) -> str:
    return "—" if v is None else f"${v:,.2f}"
