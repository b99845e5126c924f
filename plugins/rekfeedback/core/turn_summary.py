"""The figures of one turn, from what each step returned (its XCom): what the DAG's last task logs and returns."""

from __future__ import annotations

from typing import Any, Iterable


def _sum(shards: Iterable[dict], key: str) -> int:
    return sum(int(s.get(key) or 0) for s in shards)


def _unresolved(merge: dict | None, wait: dict | None) -> int:
    images = (merge or {}).get("images") or {}
    if "unresolved" in images:  # the merge's count: objects still without an answer after every job
        return int(images["unresolved"])
    counts = (wait or {}).get("counts") or {}
    return int(counts.get("unresolved") or 0)  # both sensors count it under this key


def _review_round_figures(review_round: dict | None) -> dict[str, int]:
    if not review_round:
        return {}
    counts = (review_round.get("check") or {}).get("counts") or {}
    wait = (review_round.get("wait") or {}).get("counts") or {}
    return {"noise_flagged": int(counts.get("flagged") or 0), "sent_to_review_round": int(counts.get("to_review") or 0),
            "held_out": int(counts.get("held_out") or 0),
            "reviewed": int(wait.get("answers") or 0)}


def summarize(
    *,
    preflight: dict | None,
    start: dict | None,
    inference: list[dict] | None,
    stop: dict | None,
    review: dict | None,
    wait: dict | None,
    merge: dict | None,
    training: dict | None,
    report: dict | None,
    champion: dict | None = None,
    pruned: dict | None = None,
    selection: dict | None = None,
    review_round: dict | None = None,
) -> dict[str, Any]:
    """Every step's result is optional: a skipped step contributes nothing, and says so by its absence."""
    shards = [s for s in (inference or []) if isinstance(s, dict)]
    counts = (review or {}).get("counts") or {}
    totals = (merge or {}).get("totals") or {}
    labels = (merge or {}).get("labels") or {}

    def label_total(key: str) -> int:
        if key in totals:
            return int(totals[key])
        return sum(int(v.get(key) or 0) for v in labels.values())

    units = int(((preflight or {}).get("config") or {}).get("min_inference_units") or 1)
    model_hours = 0.0
    if stop and stop.get("running_seconds"):
        model_hours = float(stop["running_seconds"]) / 3600.0 * units

    outputs = {
        "predictions": shards[0]["output_uri"].rsplit("/", 1)[0] + "/" if shards and shards[0].get("output_uri") else None,
        "answers": (wait or {}).get("answers_uri"),
        "manifest": (merge or {}).get("manifest_uri"),
        "rejects": (merge or {}).get("rejects_uri"),
        "cumulative_manifest": (merge or {}).get("cumulative_manifest_uri"),
        "report": (report or {}).get("report_uri"),
        "new_version": (training or {}).get("new_version_arn"),
    }
    summary = {
        "images_seen": _sum(shards, "images_total"),
        "images_skipped": _sum(shards, "images_skipped"),
        "predicted": _sum(shards, "predicted"),
        "failed": _sum(shards, "failed"),
        "no_prediction": _sum(shards, "no_prediction"),
        "sent_to_humans": int(counts.get("human", 0)) + int(counts.get("audit", 0)) + int(counts.get("to_label", 0)),
        "auto_accepted": int(counts.get("auto_accept", 0)),
        "audited": int(counts.get("audit", 0)),
        # Selection under the review budget: images chosen for humans, and those left for a later turn.
        "selected": (selection or {}).get("selected"),
        "deferred": (selection or {}).get("deferred"),
        "selection": (selection or {}).get("strategy"),
        "unlabelled": int(counts.get("unlabelled", 0)),
        # Several workers disagreed (agreement below agreement_threshold): not merged as verified.
        "pending_agreement": int(((wait or {}).get("counts") or {}).get("pending") or 0),
        # The noise check and the review round (core.review_round): how many were reviewed, held out, flagged.
        **_review_round_figures(review_round),
        # Objects the backend left without an answer (Ground Truth: no consensus; Label Studio: not annotated).
        "unresolved": _unresolved(merge, wait),
        "boxes_dropped": int((merge or {}).get("boxes_dropped") or 0),
        "confirmed": label_total("confirmed"),
        "rejected": label_total("rejected"),
        "added": label_total("added"),
        "adjusted": label_total("adjusted"),
        "manifest_images": (merge or {}).get("manifest_lines"),
        "f1_before": (training or {}).get("f1_before"),
        "f1_after": (training or {}).get("f1_after"),
        "improved": (training or {}).get("improved"),
        "new_version_arn": (training or {}).get("new_version_arn"),
        "model_hours": round(model_hours, 4),
        "model_started_by_this_run": bool((start or {}).get("started_by_this_run")),
        "backend": (review or {}).get("backend"),
        "outputs": {k: v for k, v in outputs.items() if v},
    }
    if champion:
        summary.update({
            "champion": (champion.get("champion") or {}).get("project_version_arn"),
            "champion_decision": champion.get("decision"),
            "champion_reasons": champion.get("reasons"),
            "champion_timeline": [
                {k: t.get(k) for k in ("run", "served_by", "f1_champion", "f1_challenger", "decision")}
                for t in champion.get("timeline") or []],
            "served_by": (preflight or {}).get("config", {}).get("project_version_arn"),
        })
        summary["outputs"]["champion_record"] = champion.get("record_uri")
    if pruned and pruned.get("deleted"):
        summary["versions_deleted"] = pruned["deleted"]
    if preflight and preflight.get("warnings"):
        summary["warnings"] = [w.get("problem", str(w)) if isinstance(w, dict) else str(w) for w in preflight["warnings"]]
    return summary
