"""Counts attached to the asset events of a task's outlets (registered by Airflow when the task succeeds)."""

from __future__ import annotations

import logging
from collections.abc import Iterable


def add_asset_extra(context, outlets: Iterable | None, extra: dict,
                    log: logging.Logger | logging.LoggerAdapter) -> None:
    outlet_events = context.get("outlet_events") if hasattr(context, "get") else None
    if outlet_events is None:
        return
    for outlet in outlets or []:
        try:
            outlet_events[outlet].extra.update(extra)
        except (KeyError, TypeError, AttributeError) as exc:  # an alias or a non-asset outlet
            log.info("No asset event extra for outlet %r: %s", outlet, exc)
