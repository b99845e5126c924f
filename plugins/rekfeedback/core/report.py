"""Figures of one turn of the feedback loop, for the report people look at after each turn.

Pure: takes the turn's artifacts as parsed JSON (prediction lines, normalized answer lines,
training results, previous turns' figures) and returns one JSON-serializable dict whose keys are
stable (`FIGURES_SCHEMA`), so earlier turns' `figures.json` can be read back as history.

Per-label figures are computed here from predictions + answers (not copied from the merge
summary) so the report stays correct whichever backend produced the answers: boxes are matched
by IoU, image-level labels by name.
"""

from __future__ import annotations

import json
import math
import statistics
from collections import defaultdict
from typing import Iterable, Mapping, Sequence

from rekfeedback.core.manifest import parse_record
from rekfeedback.core.ranking import winning_answers
from rekfeedback.core.report_measures import (  # noqa: F401 - part of this module's interface
    AGREEMENT_BINS,
    DEFAULT_PRICE_PER_IU_HOUR,
    DEFAULT_PRICE_PER_OBJECT,
    DEFAULT_PRICE_PER_TRAINING_HOUR,
    _ratio,
    agreement_figures,
    compare_image,
    cost_figures,
    reliability_curve,
)

FIGURES_SCHEMA = "rekfeedback.report.figures/1"



def compute_figures(
    predictions: Iterable[Mapping],
    answers: Iterable[Mapping],
    *,
    run: str = "",
    generated_at: str | None = None,
    training: Mapping | None = None,
    merge_summary: Mapping | None = None,
    history: Sequence[Mapping] = (),
    dataset_per_label: Mapping[str, int] | None = None,
    inference_unit_hours: float = 0.0,
    price_per_iu_hour: float = DEFAULT_PRICE_PER_IU_HOUR,
    human_objects: int | None = None,
    price_per_object: float = DEFAULT_PRICE_PER_OBJECT,
    workforce_price_per_object: float = 0.0,
    training_hours: float = 0.0,
    price_per_training_hour: float = DEFAULT_PRICE_PER_TRAINING_HOUR,
    buckets: int | Sequence[float] = 10,
    target_error: float = 0.05,
    min_support: int = 20,
    match_iou: float = 0.1,
    inputs: Mapping | None = None,
) -> dict:
    """The figures of a turn.

    - `buckets`: number of equal confidence buckets over 0..100, or the bucket edges (ascending).
    - `target_error`: the highest acceptable share of auto-accepted predictions humans would reject.
    - `min_support`: reviewed predictions needed above a threshold before it may be suggested.
    - `match_iou`: the least IoU for a predicted box and a final box of the same label to be the
      same object (below it the prediction counts as rejected and the final box as added).
    - `human_objects`: objects billed for human review (Ground Truth bills per data object, which
      may be a batch of images); defaults to the number of images humans answered.
    - `dataset_per_label`: images per label in the cumulative dataset when the caller knows it
      (e.g. counted from the manifest); otherwise the previous turn's figure plus this turn's answers.
    - `history`: previous turns' figures (or their `turn` records), oldest first.
    - `inputs`: where the artifacts came from (URIs, missing files), kept as is for the reader.
    """
    _check_params(target_error=target_error, min_support=min_support, match_iou=match_iou,
                  inference_unit_hours=inference_unit_hours, training_hours=training_hours)
    edges = _bucket_edges(buckets)
    preds = _index_predictions(predictions)
    chosen = winning_answers(answers)  # the answers the merge writes

    labels: dict[str, dict] = defaultdict(_empty_label)
    outcomes: list[tuple[float, bool]] = []  # (confidence, confirmed) of human-reviewed predictions
    agreements: list[tuple[float, set[str]]] = []
    images = {
        "predicted": len(preds),
        "with_prediction": sum(1 for p in preds.values() if p.get("labels")),
        "no_prediction": sum(1 for p in preds.values() if not p.get("labels") and not p.get("error")),
        "failed": sum(1 for p in preds.values() if p.get("error")),
        "human": 0,
        "auto_accepted": 0,
        "answers_without_prediction": 0,
    }
    for p in preds.values():
        for lab in p.get("labels") or []:
            labels[lab["name"]]["predicted"] += 1
            labels[lab["name"]]["confidence_sum"] += float(lab.get("confidence") or 0.0)

    for ref, answer in chosen.items():
        human = bool(answer.get("human"))
        pred = preds.get(ref)
        if not human:
            images["auto_accepted"] += 1
            for name in answer.get("labels") or []:
                labels[name]["auto_accepted"] += 1
            continue
        images["human"] += 1
        if (answer.get("workers") or 1) > 1 and answer.get("agreement") is not None:
            names = set(answer.get("labels") or []) | {lab["name"] for lab in (pred or {}).get("labels") or []}
            agreements.append((float(answer["agreement"]), names))
        if pred is None:
            # Still counted, from the answer's own lists, so no answer is silently dropped.
            images["answers_without_prediction"] += 1
            for key in ("confirmed", "rejected", "added", "adjusted"):
                for name in answer.get(key) or []:
                    labels[name][key] += 1
            continue
        for res in compare_image(pred, answer, match_iou=match_iou):
            entry = labels[res["name"]]
            entry[res["outcome"]] += 1
            if res["outcome"] != "added":
                entry["reviewed"] += 1
                outcomes.append((res["confidence"], res["outcome"] == "confirmed"))
            if res.get("adjusted"):
                entry["adjusted"] += 1
                entry["adjusted_ious"].append(res["iou"])
            if res.get("iou") is not None:
                entry["matched_ious"].append(res["iou"])

    label_figures = {name: _finish_label(v) for name, v in sorted(labels.items())}
    reliability = reliability_curve(outcomes, edges, target_error=target_error, min_support=min_support)
    agreement = agreement_figures(agreements)
    cost = cost_figures(
        inference_unit_hours=inference_unit_hours, price_per_iu_hour=price_per_iu_hour,
        human_objects=images["human"] if human_objects is None else int(human_objects),
        price_per_object=price_per_object, workforce_price_per_object=workforce_price_per_object,
        training_hours=training_hours, price_per_training_hour=price_per_training_hour,
        human_images=images["human"],
    )
    training_fig = _training_figures(training)
    previous = history_turns(history, exclude_run=run)
    dataset = _dataset(label_figures, chosen, dataset_per_label, previous)

    reviewed = sum(v["reviewed"] for v in label_figures.values())
    confirmed = sum(v["confirmed"] for v in label_figures.values())
    headline = {
        "images_predicted": images["predicted"],
        "images_human": images["human"],
        "images_auto_accepted": images["auto_accepted"],
        "predictions_reviewed": reviewed,
        "confirmation_rate": _ratio(confirmed, reviewed),
        "confirmed": confirmed,
        "rejected": sum(v["rejected"] for v in label_figures.values()),
        "added": sum(v["added"] for v in label_figures.values()),
        "adjusted": sum(v["adjusted"] for v in label_figures.values()),
        # What this turn's review did not settle, from the merge: objects the backend left unresolved
        # (counted, never labelled) and single boxes dropped from otherwise kept answers (rejects.jsonl).
        "unresolved": int(((merge_summary or {}).get("images") or {}).get("unresolved") or 0),
        "boxes_dropped": int((merge_summary or {}).get("boxes_dropped") or 0),
        "mean_agreement": agreement["mean"],
        "suggested_threshold": reliability["threshold"],
        "total_cost": cost["total"],
        "f1_before": training_fig["f1_before"] if training_fig else None,
        "f1_after": training_fig["f1_after"] if training_fig else None,
        "improved": training_fig["improved"] if training_fig else None,
    }
    turn = {
        "run": run,
        "generated_at": generated_at,
        "version_arn": training_fig["new_version_arn"] if training_fig else None,
        "f1_before": headline["f1_before"],
        "f1_after": headline["f1_after"],
        "improved": headline["improved"],
        "confirmation_rate": headline["confirmation_rate"],
        "total_cost": cost["total"],
        "dataset_per_label": dataset["per_label"],
    }
    return {
        "schema": FIGURES_SCHEMA,
        "run": run,
        "generated_at": generated_at,
        "headline": headline,
        "images": images,
        "label_names": list(label_figures),
        "labels": label_figures,
        "reliability": reliability,
        "agreement": agreement,
        "cost": cost,
        "training": training_fig,
        "merge": dict(merge_summary) if merge_summary else None,
        "dataset": dataset,
        "turn": turn,
        "history": {"turns": [*previous, turn]},
        "inputs": dict(inputs) if inputs else {},
    }


def summary(figures: Mapping) -> dict:
    """The small part of the figures worth an XCom: the headline and where the report lives."""
    return {"run": figures.get("run"), **figures["headline"]}


def dataset_per_label(manifest_lines: Iterable[str]) -> dict[str, int]:
    """Images per label in a Rekognition manifest (image-level labels and box labels alike)."""
    counts: dict[str, int] = defaultdict(int)
    for n, line in enumerate(manifest_lines, 1):
        if not line.strip():
            continue
        try:
            entry, _ = parse_record(json.loads(line))
        except (ValueError, TypeError) as err:
            raise ValueError(f"manifest line {n} cannot be read ({err}); the merge's rejects file explains "
                             "invalid lines") from err
        names = {lab.name for lab in entry.labels}
        if entry.detection:
            names |= {b["label"] for b in entry.detection.boxes}
        for name in names:
            counts[name] += 1
    return dict(sorted(counts.items()))


# --- one image ---------------------------------------------------------------------------------

def history_turns(history: Iterable[Mapping], *, exclude_run: str = "") -> list[dict]:
    """Previous turns' compact records, oldest first, one per run (the last record of a run wins).

    Accepts full figures (their `turn` record is used) or bare turn records, so a history file
    never grows with the history of the history.
    """
    by_run: dict[str, dict] = {}
    for i, item in enumerate(history):
        if not isinstance(item, Mapping):
            raise ValueError(f"history entry {i} must be a JSON object (a turn's figures), got {type(item).__name__}")
        rec = item.get("turn") if isinstance(item.get("turn"), Mapping) else item
        run = str(rec.get("run") or f"turn-{i + 1}")
        if exclude_run and run == exclude_run:
            continue
        by_run[run] = {
            "run": run,
            "generated_at": rec.get("generated_at"),
            "version_arn": rec.get("version_arn"),
            "f1_before": rec.get("f1_before"),
            "f1_after": rec.get("f1_after"),
            "improved": rec.get("improved"),
            "confirmation_rate": rec.get("confirmation_rate"),
            "total_cost": rec.get("total_cost"),
            "dataset_per_label": dict(rec.get("dataset_per_label") or {}),
        }
    return list(by_run.values())


# --- helpers -----------------------------------------------------------------------------------

def _check_params(**values) -> None:
    if not 0.0 <= values["target_error"] < 1.0:
        raise ValueError(f"target_error must be in [0, 1), got {values['target_error']!r}")
    if int(values["min_support"]) < 0:
        raise ValueError(f"min_support must be >= 0, got {values['min_support']!r}")
    if not 0.0 <= values["match_iou"] <= 1.0:
        raise ValueError(f"match_iou must be in [0, 1], got {values['match_iou']!r}")
    for key in ("inference_unit_hours", "training_hours"):
        v = values[key]
        if v is None or v < 0 or not math.isfinite(v):
            raise ValueError(f"{key} must be a finite number >= 0, got {v!r}")


def _bucket_edges(buckets: int | Sequence[float]) -> list[float]:
    if isinstance(buckets, int):
        if buckets < 1:
            raise ValueError(f"buckets must be >= 1 or a list of edges, got {buckets!r}")
        return [round(100.0 * k / buckets, 6) for k in range(buckets + 1)]
    edges = [float(e) for e in buckets]
    if len(edges) < 2 or any(b <= a for a, b in zip(edges, edges[1:])):
        raise ValueError(f"bucket edges must be at least two strictly increasing numbers, got {list(buckets)!r}")
    return edges


def _index_predictions(lines: Iterable[Mapping]) -> dict[str, Mapping]:
    out: dict[str, Mapping] = {}
    for n, line in enumerate(lines, 1):
        ref = line.get("source-ref") if isinstance(line, Mapping) else None
        if not ref:
            raise ValueError(f"prediction line {n} has no 'source-ref'; see docs/data-formats.md")
        out[ref] = line  # a retried shard may repeat a line; the last one is the one kept
    return out


def _empty_label() -> dict:
    return {"predicted": 0, "reviewed": 0, "confirmed": 0, "rejected": 0, "added": 0, "adjusted": 0,
            "auto_accepted": 0, "confidence_sum": 0.0, "adjusted_ious": [], "matched_ious": []}


def _finish_label(v: dict) -> dict:
    return {
        "predicted": v["predicted"],
        "reviewed": v["reviewed"],
        "confirmed": v["confirmed"],
        "rejected": v["rejected"],
        "added": v["added"],
        "adjusted": v["adjusted"],
        "auto_accepted": v["auto_accepted"],
        "confirmation_rate": _ratio(v["confirmed"], v["reviewed"]),
        "mean_confidence": (v["confidence_sum"] / v["predicted"]) if v["predicted"] else None,
        "mean_adjusted_iou": statistics.fmean(v["adjusted_ious"]) if v["adjusted_ious"] else None,
        "mean_matched_iou": statistics.fmean(v["matched_ious"]) if v["matched_ious"] else None,
    }


def _training_figures(training: Mapping | None) -> dict | None:
    if not training:
        return None
    return {
        "new_version_arn": training.get("new_version_arn"),
        "f1_before": _num(training.get("f1_before")),
        "f1_after": _num(training.get("f1_after")),
        "improved": training.get("improved"),
        "per_label": dict(training.get("per_label") or {}),
    }


def _dataset(labels: Mapping[str, dict], chosen: Mapping[str, Mapping],
             given: Mapping[str, int] | None, previous: Sequence[Mapping]) -> dict:
    added_now: dict[str, int] = defaultdict(int)
    for answer in chosen.values():
        for name in set(answer.get("labels") or []):
            added_now[name] += 1
    before = dict(previous[-1]["dataset_per_label"]) if previous else {}
    if given is not None:
        per_label = {k: int(v) for k, v in given.items()}
        source = "given"
    else:
        per_label = {k: before.get(k, 0) + added_now.get(k, 0) for k in set(before) | set(added_now)}
        source = "previous turn + this turn's answers"
    return {
        "per_label": dict(sorted(per_label.items())),
        "this_turn": dict(sorted(added_now.items())),
        "previous": dict(sorted(before.items())),
        "source": source,
    }


def _num(v) -> float | None:
    return float(v) if isinstance(v, (int, float)) and not isinstance(v, bool) else None
