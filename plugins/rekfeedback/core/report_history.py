"""The report's history across turns (a JSON list of `{"run", "figures_uri", "report_uri", "turn"}`, keyed by
run) and the few lines the report operator logs. Pure: the operator reads and writes the file."""

from __future__ import annotations

import json
from typing import Mapping


def parse_history(raw: bytes | str | None, uri: str) -> list[dict]:
    """The entries of the history file at `uri` (none when it does not exist yet); a clear error for a bad file."""
    if raw is None:
        return []
    try:
        entries = json.loads(raw)
    except json.JSONDecodeError as err:
        raise ValueError(f"history_uri {uri} is not JSON ({err}); fix or delete it") from err
    if not isinstance(entries, list) or not all(isinstance(e, dict) and e.get("run") for e in entries):
        raise ValueError(f"history_uri {uri} must hold a JSON list of objects with a 'run'; fix or delete it")
    return entries


def with_entry(entries: list[dict], entry: dict) -> list[dict]:
    """The history with `entry` in place of the one of its run (a rerun replaces, never duplicates), else added."""
    updated = [entry if e["run"] == entry["run"] else e for e in entries]
    if not any(e["run"] == entry["run"] for e in entries):
        updated.append(entry)
    return updated


def small_merge(merge: Mapping | None) -> dict | None:
    """The merge summary's counts, without anything that could grow with the data."""
    if not merge:
        return None
    keep = ("manifest_uri", "manifest_lines", "images", "answers", "rejects", "boxes_dropped", "reject_ratio", "totals",
            "warnings")
    return {k: merge[k] for k in keep if k in merge}


def headline(figures: Mapping) -> str:
    """The turn in one log line."""
    h = figures["headline"]
    rate = "n/a" if h["confirmation_rate"] is None else f"{h['confirmation_rate']:.1%}"
    agree = "n/a" if h["mean_agreement"] is None else f"{h['mean_agreement']:.1%}"
    f1 = ("n/a" if h["f1_after"] is None else
          f"{h['f1_before'] if h['f1_before'] is not None else 'n/a'} -> {h['f1_after']}")
    return (f"Turn {figures['run']}: {h['images_predicted']} images, {h['images_human']} answered by humans, "
            f"{h['images_auto_accepted']} auto-accepted; {h['predictions_reviewed']} predictions reviewed, {rate} "
            f"confirmed ({h['rejected']} rejected, {h['added']} added, {h['adjusted']} adjusted); suggested "
            f"auto-accept threshold {h['suggested_threshold']} ({figures['reliability']['reason']}); mean agreement "
            f"{agree}; cost ${h['total_cost']:.2f}; F1 {f1}")
