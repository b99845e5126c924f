"""The loop's champion: which model version the loop uses, why, and since when (no Airflow, no boto3).

The champion record is one JSON file next to the cumulative manifest
(`<output_uri>/<dag_id>/dataset/champion.json`), written by the DAG's `champion.record` task and
read by the next turn's preflight. It survives a reset of Airflow's metadata database and is meant
to be read by a person:

    {"format": "rekfeedback-champion/1",
     "champion": {"project_version_arn", "since", "promoted_by_run", "f1", "per_label": {label: f1},
                  "test_set", "reason"},
     "history": [earlier champions, each with "until" and "replaced_by"],
     "turns": [{"run", "at", "served_by", "champion", "challenger", "f1_champion", "f1_challenger",
                "decision", "reasons", "new_verified_images"}],
     "created_by_loop": [{"project_version_arn", "run", "at", "deleted_at"}]}

`turns` is the champion timeline (one entry per run, replaced when the run is rerun), and
`created_by_loop` is what `keep_versions` may ever delete: versions this loop trained.
"""

from __future__ import annotations

import copy
import hashlib
import json
from dataclasses import dataclass
from typing import Any, Iterable, Mapping

FORMAT = "rekfeedback-champion/1"

# Turn decisions, in the words the summary and the report use.
PROMOTED = "promoted"
KEPT = "kept"  # the challenger lost at the gate
REJECTED = "rejected"  # a person rejected the promotion (or the approval timed out)
TRAINING_SKIPPED = "training skipped"  # min_new_labels not reached
NOT_TRAINED = "not trained"  # train=False, or no training result
SEEDED = "seeded"

# Statuses DeleteProjectVersion refuses, or that mean the version is in use or on its way.
_BUSY = {"RUNNING", "STARTING", "STOPPING", "TRAINING_IN_PROGRESS", "DELETING", "COPYING_IN_PROGRESS"}


class ChampionRecordError(ValueError):
    """The champion record cannot be read: name the file and what to do."""


@dataclass(frozen=True)
class Gate:
    """What a challenger must show to become champion (the DAG settings of the same names)."""

    improvement_margin: float = 0.0
    max_label_regression: float = 0.05
    min_f1: float = 0.0


# ------------------------------------------------------------------------------ reading, writing

def parse_record(text: str | bytes | None, where: str = "champion record") -> dict | None:
    """The record, or None when there is none yet. A file that is not a record raises, naming it."""
    if text in (None, b"", ""):
        return None
    try:
        record = json.loads(text)
    except ValueError as exc:
        raise ChampionRecordError(f"{where} is not JSON ({exc}); fix or delete it (the next run seeds a new one "
                                  "from project_version_arn)") from exc
    if not isinstance(record, dict) or record.get("format") != FORMAT or not isinstance(record.get("champion"), dict):
        raise ChampionRecordError(f"{where} is not a rekfeedback champion record (format {FORMAT!r} with a "
                                  "'champion'); fix or delete it")
    for key in ("history", "turns", "created_by_loop"):
        record.setdefault(key, [])
    return record


def dumps_record(record: Mapping) -> str:
    """Indented and key-sorted: a person reads it, and a rerun writes the same bytes."""
    return json.dumps(record, indent=2, sort_keys=True) + "\n"


def seed_record(arn: str, *, at: str, f1: float | None = None, per_label: Mapping | None = None,
                test_set: str | None = None) -> dict:
    """The first record: the version the loop was started with (project_version_arn)."""
    return {
        "format": FORMAT,
        "champion": {"project_version_arn": arn, "since": at, "promoted_by_run": None, "f1": f1,
                     "per_label": dict(per_label or {}), "test_set": test_set,
                     "reason": "seeded from project_version_arn (form, Variable or environment)"},
        "history": [], "turns": [], "created_by_loop": [],
    }


def champion_arn(record: Mapping | None) -> str | None:
    return ((record or {}).get("champion") or {}).get("project_version_arn")


# ------------------------------------------------------------------------------ which version serves

def serving_version(explicit_arn: str | None, record: Mapping | None, configured_arn: str | None) -> tuple[str | None, str, str]:
    """(ARN the turn runs, its source, a sentence for the log).

    An explicit ARN in the run's conf wins (a pinned run); otherwise the champion; with no record
    yet, the Variable/environment value seeds it.
    """
    current = champion_arn(record)
    if explicit_arn:
        if current and current != explicit_arn:
            return explicit_arn, "explicit", (f"project_version_arn {explicit_arn} given for this run wins over the "
                                              f"champion {current} (a pinned run; the champion stays as it is)")
        return explicit_arn, "explicit", f"project_version_arn {explicit_arn} given for this run"
    if current:
        return current, "champion", f"no project_version_arn given: using the champion {current}"
    return configured_arn, "seed", (f"no champion record yet: {configured_arn} (Variable or environment) "
                                    "becomes the first champion")


# ------------------------------------------------------------------------------ min_new_labels

def verified_since_champion(record: Mapping | None, *, exclude_run: str | None = None) -> int:
    """Human-verified images merged in turns after the one that promoted the champion.

    The seed champion was trained outside the loop, so every turn counts. A rerun of a turn is
    not counted twice: `exclude_run` leaves out this run's own entry.
    """
    if not record:
        return 0
    promoted_by = (record.get("champion") or {}).get("promoted_by_run")
    turns = [t for t in record.get("turns") or [] if t.get("run") != exclude_run]
    if promoted_by:
        index = next((i for i, t in enumerate(turns) if t.get("run") == promoted_by), None)
        turns = turns[index + 1:] if index is not None else turns
    return sum(int(t.get("new_verified_images") or 0) for t in turns)


def should_train(min_new_labels: int | None, since_champion: int, this_turn: int) -> tuple[bool, str]:
    """Whether this turn trains, and why, in words for the summary."""
    total = since_champion + this_turn
    if not min_new_labels:
        return True, f"{total} new human-verified image(s) since the champion was trained (min_new_labels off)"
    if total >= min_new_labels:
        return True, f"{total} new human-verified image(s) since the champion was trained, min_new_labels {min_new_labels}"
    return False, (f"training skipped: {total} new human-verified image(s) since the champion was trained, fewer than "
                   f"min_new_labels {min_new_labels}; the answers are in the cumulative manifest and count next turn")


# ------------------------------------------------------------------------------ the gate

def test_set_fingerprint(source_refs: Iterable[str]) -> str:
    """Which TEST images a version was evaluated on: a hash of the sorted, distinct source-refs."""
    refs = sorted(set(source_refs))
    digest = hashlib.sha1("\n".join(refs).encode("utf-8")).hexdigest()[:16]
    return f"{len(refs)} images, sha1 {digest}"


def gate(comparison: Mapping, settings: Gate, *, champion_test_set: str | None,
         challenger_test_set: str | None) -> dict:
    """Decide whether the challenger replaces the champion; every check and its reason.

    `comparison` is the training task's result (core.evaluation.compare): f1_before (the
    champion's), f1_after (the challenger's) and per_label {label: {f1_before, f1_after}}.
    Returns {"promote": bool, "reasons": [sentence, ...], "checks": [{"check", "ok", "detail"}]}.
    """
    checks: list[dict] = []

    def check(name: str, ok: bool, detail: str) -> None:
        checks.append({"check": name, "ok": bool(ok), "detail": detail})

    after = comparison.get("f1_after")
    before = comparison.get("f1_before")
    if after is None:
        check("evaluation", False, "the challenger has no F1 score")
    else:
        check("min_f1", round(after, 9) >= settings.min_f1,
              f"challenger F1 {after:.4f} {'>=' if round(after, 9) >= settings.min_f1 else '<'} min_f1 {settings.min_f1:g}")
    if before is None:
        check("improvement_margin", True, "the champion has no evaluation to beat")
    else:
        if champion_test_set is None or challenger_test_set is None:
            check("same_test_set", False, "not like with like: the TEST set of "
                  f"{'the champion' if champion_test_set is None else 'the challenger'} is unknown")
        else:
            same = champion_test_set == challenger_test_set
            check("same_test_set", same, "both evaluated on the same TEST set (" + champion_test_set + ")" if same else
                  f"not like with like: the champion was evaluated on {champion_test_set}, the challenger on "
                  f"{challenger_test_set} (keep test_share at 0 so that the TEST set stays fixed)")
        if after is not None:
            gain = round(after - before, 9)
            check("improvement_margin", gain > settings.improvement_margin,
                  f"F1 {before:.4f} -> {after:.4f} ({gain:+.4f}), needs more than +{settings.improvement_margin:g}")
        worst = []
        for label, scores in sorted((comparison.get("per_label") or {}).items()):
            old, new = scores.get("f1_before"), scores.get("f1_after")
            if old is None:
                continue  # a label the champion was not evaluated on cannot regress
            drop = round(old - (new or 0.0), 9)
            if drop > settings.max_label_regression:
                worst.append(f"{label} F1 {old:.4f} -> {(new or 0.0):.4f} ({-drop:+.4f})")
        check("max_label_regression", not worst,
              (f"label(s) dropped by more than {settings.max_label_regression:g}: " + "; ".join(worst)) if worst else
              f"no label dropped by more than {settings.max_label_regression:g}")
    promote = all(c["ok"] for c in checks)
    failed = [c["detail"] for c in checks if not c["ok"]]
    reasons = ["gate passed: " + "; ".join(c["detail"] for c in checks)] if promote else ["keep the champion: " + r for r in failed]
    return {"promote": promote, "reasons": reasons, "checks": checks}


# ------------------------------------------------------------------------------ the turn, recorded

def record_turn(record: Mapping | None, *, run: str, at: str, served_by: str | None, seed_arn: str | None,
                decision: str, reasons: list[str], comparison: Mapping | None = None,
                new_verified_images: int = 0, test_sets: Mapping | None = None) -> dict:
    """The record after this turn: a new dict, the same for a rerun of the same run (idempotent).

    `decision` is one of PROMOTED, KEPT, REJECTED, TRAINING_SKIPPED, NOT_TRAINED. A trained
    challenger is added to `created_by_loop` whatever the decision. On PROMOTED the challenger
    becomes champion and the old one moves to `history`.
    """
    out = copy.deepcopy(dict(record)) if record else None
    comparison = comparison or {}
    test_sets = test_sets or {}
    if out is None:
        if not seed_arn:
            raise ChampionRecordError("no champion record yet and no project_version_arn to seed it with")
        out = seed_record(seed_arn, at=at, f1=comparison.get("f1_before"),
                          per_label=_label_f1(comparison, "f1_before"), test_set=test_sets.get("champion"))
    champion = out["champion"]
    if champion.get("f1") is None and comparison.get("f1_before") is not None \
            and comparison.get("base_version_arn") in (None, champion["project_version_arn"]):
        # The seed's figures are known once a turn compared against it.
        champion.update(f1=comparison["f1_before"], per_label=_label_f1(comparison, "f1_before"))
        champion["test_set"] = champion.get("test_set") or test_sets.get("champion")
    challenger = comparison.get("new_version_arn")
    if challenger and not any(c["project_version_arn"] == challenger for c in out["created_by_loop"]):
        out["created_by_loop"].append({"project_version_arn": challenger, "run": run, "at": at, "deleted_at": None})
    already = champion.get("promoted_by_run") == run and champion["project_version_arn"] == challenger
    if decision == PROMOTED and challenger and not already:
        out["history"].append({**champion, "until": at, "replaced_by": challenger})
        out["champion"] = {"project_version_arn": challenger, "since": at, "promoted_by_run": run,
                           "f1": comparison.get("f1_after"), "per_label": _label_f1(comparison, "f1_after"),
                           "test_set": test_sets.get("challenger"), "reason": "; ".join(reasons)}
    entry = {"run": run, "at": at, "served_by": served_by,
             "champion": (out["history"][-1]["project_version_arn"] if decision == PROMOTED and out["history"]
                          else out["champion"]["project_version_arn"]),
             "challenger": challenger, "f1_champion": comparison.get("f1_before"),
             "f1_challenger": comparison.get("f1_after"), "decision": decision, "reasons": list(reasons),
             "new_verified_images": int(new_verified_images)}
    turns = [t for t in out["turns"] if t.get("run") != run]
    old = next((t for t in out["turns"] if t.get("run") == run), None)
    if old:
        entry["at"] = old["at"]  # a rerun keeps the turn's place and time in the timeline
        turns.insert(out["turns"].index(old), entry)
    else:
        turns.append(entry)
    out["turns"] = turns
    return out


def _label_f1(comparison: Mapping, key: str) -> dict:
    return {label: s.get(key) for label, s in sorted((comparison.get("per_label") or {}).items())
            if s.get(key) is not None}


def timeline(record: Mapping | None, last: int = 20) -> list[dict]:
    """The newest turns, oldest first: which version served, F1 of both, the decision and why."""
    keys = ("run", "at", "served_by", "champion", "challenger", "f1_champion", "f1_challenger", "decision", "reasons",
            "new_verified_images")
    return [{k: t.get(k) for k in keys} for t in ((record or {}).get("turns") or [])[-last:]]


# ------------------------------------------------------------------------------ keep_versions

def versions_to_delete(record: Mapping | None, statuses: Mapping[str, str], keep: int | None) -> list[tuple[str, str]]:
    """Losing challengers beyond the newest `keep`, each with why it may go: [(arn, reason)].

    Only versions in `created_by_loop` (this loop trained them) are ever candidates; never the
    champion, never an earlier champion, never a version that is running, starting, stopping,
    training or already deleting. `statuses` is ARN -> Status from DescribeProjectVersions; a
    version missing from it is gone already.
    """
    if keep is None or record is None:
        return []
    if keep < 0:
        raise ValueError(f"keep_versions must be >= 0 or blank, got {keep}")
    protected = {champion_arn(record)} | {h.get("project_version_arn") for h in record.get("history") or []}
    losers = [c for c in record.get("created_by_loop") or []
              if not c.get("deleted_at") and c["project_version_arn"] not in protected
              and c["project_version_arn"] in statuses]
    losers.sort(key=lambda c: c.get("at") or "", reverse=True)  # newest first
    out = []
    for c in losers[keep:]:
        arn = c["project_version_arn"]
        if statuses[arn] in _BUSY:
            continue  # in use or changing: a later turn deletes it
        out.append((arn, f"losing challenger of run {c.get('run')}, beyond the newest {keep} kept ({statuses[arn]})"))
    return out


def mark_deleted(record: Mapping, arns: Iterable[str], at: str) -> dict:
    out = copy.deepcopy(dict(record))
    gone = set(arns)
    for c in out.get("created_by_loop") or []:
        if c["project_version_arn"] in gone and not c.get("deleted_at"):
            c["deleted_at"] = at
    return out


# ------------------------------------------------------------------------------ approval

def approval_markdown(comparison: Mapping, gate_result: Mapping, *, counts: Mapping[str, Any],
                      report_uri: str | None, report_url: str | None = None) -> str:
    """The body of the approval request: F1 before/after overall and per label, the turn's counts, the report."""
    def f(v) -> str:
        return "n/a" if v is None else f"{v:.4f}"

    lines = [
        f"**Challenger** `{comparison.get('new_version_arn')}`",
        f"**Champion** `{comparison.get('base_version_arn')}`",
        "",
        "| | champion | challenger | change |",
        "|---|---|---|---|",
        f"| **F1 overall** | {f(comparison.get('f1_before'))} | {f(comparison.get('f1_after'))} | "
        f"{f(comparison.get('delta'))} |",
    ]
    for label, s in sorted((comparison.get("per_label") or {}).items()):
        lines.append(f"| {label} | {f(s.get('f1_before'))} | {f(s.get('f1_after'))} | {f(s.get('delta'))} |")
    lines += ["", "**Gate**: " + "; ".join(c["detail"] for c in gate_result.get("checks") or []), "",
              "**This turn**: " + ", ".join(f"{k.replace('_', ' ')} {v}" for k, v in counts.items() if v is not None)]
    if report_uri:
        lines += ["", f"**Report**: [{report_uri}]({report_url})" if report_url else f"**Report**: {report_uri}"]
    lines += ["", "Approve makes the challenger the loop's model from the next turn on; Reject keeps the champion."]
    return "\n".join(lines)
