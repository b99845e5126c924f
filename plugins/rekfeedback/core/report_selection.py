"""The report's "Which images did humans review?" table: the turn's selection per reason and per label."""

from __future__ import annotations

from html import escape
from typing import Mapping


def selection_table(sel: Mapping) -> str:
    """Two small tables: images chosen per reason, and chosen vs deferred per label (the model's label)."""
    reasons = sel.get("by_reason") or {}
    chosen, deferred = sel.get("by_label") or {}, sel.get("deferred_by_label") or {}
    head = (f"<p>Strategy <strong>{escape(str(sel.get('strategy')))}</strong>, limit "
            f"{escape(str(sel.get('limit') if sel.get('limit') is not None else 'none'))}: "
            f"{int(sel.get('selected') or 0)} images chosen for humans, {int(sel.get('deferred') or 0)} deferred "
            "to a later turn.</p>")
    by_reason = "".join(f"<tr><th scope=\"row\">{escape(str(k))}</th><td>{int(v)}</td></tr>"
                        for k, v in sorted(reasons.items()))
    by_label = "".join(f"<tr><th scope=\"row\">{escape(str(k))}</th><td>{int(chosen.get(k, 0))}</td>"
                       f"<td>{int(deferred.get(k, 0))}</td></tr>" for k in sorted(set(chosen) | set(deferred)))
    return (head + "<table data-table=\"selection-reasons\"><thead><tr><th scope=\"col\">Why chosen</th>"
            f"<th scope=\"col\">Images</th></tr></thead><tbody>{by_reason}</tbody></table>"
            "<table data-table=\"selection-labels\"><thead><tr><th scope=\"col\">Label (model)</th>"
            f"<th scope=\"col\">Chosen</th><th scope=\"col\">Deferred</th></tr></thead><tbody>{by_label}</tbody></table>")
