"""One inference shard's settings, checked before any call is paid for (the shard, DetectCustomLabels'
options, the failure share, the checkpoint cadence), and the summary the operator returns. Pure (no
Airflow, no boto3): a bad value raises ValueError naming the parameter, which the operator turns into a
failure without retry."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from rekfeedback.core import predictions as preds
from rekfeedback.core import templated


@dataclass(frozen=True)
class InferenceSettings:
    shard_index: int
    shard_count: int
    detect_options: dict  # MinConfidence / MaxResults as DetectCustomLabels takes them
    max_failed_share: float
    checkpoint_every: int
    checkpoint_interval: float


def detect_options(min_confidence, max_results) -> dict:
    options: dict = {}
    if not templated.is_blank(min_confidence):
        value = float(min_confidence)
        if not 0 <= value <= 100:
            raise ValueError(f"min_confidence must be between 0 and 100, got {min_confidence!r}")
        options["MinConfidence"] = value
    if not templated.is_blank(max_results):
        value = int(max_results)
        if value < 0:
            raise ValueError(f"max_results must be >= 0, got {max_results!r}")
        options["MaxResults"] = value
    return options


def check_settings(*, shard_index, shard_count, min_confidence, max_results, max_failed_share, checkpoint_every,
                   checkpoint_interval) -> InferenceSettings:
    index, count = preds.validate_shard(shard_index, shard_count)
    options = detect_options(min_confidence, max_results)
    share, every, interval = float(max_failed_share), int(checkpoint_every), float(checkpoint_interval)
    if not 0.0 <= share <= 1.0 or every < 1 or interval <= 0:
        raise ValueError(f"need 0 <= max_failed_share <= 1, checkpoint_every >= 1 and checkpoint_interval > 0; "
                         f"got {max_failed_share!r}, {checkpoint_every!r}, {checkpoint_interval!r}")
    return InferenceSettings(index, count, options, share, every, interval)


def shard_summary(lines: list[dict], *, settings: InferenceSettings, output: str, images_total: int, skipped: int,
                  reused: int, known_unusable: int, calls: int, throttles: int, resumed: int, checkpoint_puts: int,
                  start_rate: float, signals: bool, header_bytes: int) -> dict[str, Any]:
    """The operator's XCom: counts of this shard's prediction lines and of this attempt's calls."""
    counts = preds.summarize(lines)
    return {
        "output_uri": output,
        "images_total": images_total,
        "images_skipped": skipped,
        "predicted": counts["predicted"],
        "failed": counts["failed"],
        "no_prediction": counts["no_prediction"],
        "labels": counts["labels"],
        "calls": calls,
        "throttles": throttles,
        "errors": counts["errors"],
        "resumed": resumed,
        "reused": reused,
        "known_unusable": known_unusable,
        "checkpoint_puts": checkpoint_puts,
        "start_rate": round(start_rate, 3),
        "shard_index": settings.shard_index,
        "shard_count": settings.shard_count,
        "signals": signals,
        "header_bytes": header_bytes,
        "descriptor_bytes": sum(int((line.get("signals") or {}).get("descriptor_bytes") or 0) for line in lines),
    }
