"""Preflight: the worker templates and the model's label set."""

from __future__ import annotations

from importlib import resources

from rekfeedback.core import ground_truth as gt
from rekfeedback.preflight.checker import Checker

def check_templates_and_labels(checker: Checker) -> None:
    report = checker.report
    if checker.ground_truth:
        kinds = {gt.VERIFY_LABELS}
        if checker.model_kind != "classification":
            kinds.add(gt.ADJUST_BOXES if checker.config.get("box_task", "adjustment") == "adjustment" else gt.VERIFY_BOXES)
        if checker.config.get("label_unpredicted", True):
            kinds.add(gt.LABEL_CLASSES if checker.model_kind == "classification" else gt.LABEL_BOXES)
        if checker.model_kind is None:
            kinds.add(gt.LABEL_CLASSES)
        for name in sorted({gt.TEMPLATE[k] for k in kinds}):
            _check_template(checker, name)
    labels = checker.labels
    if labels is None:
        if checker.report.facts.get("model_status") and not report.has("model", severity="error"):
            report.warning("labels", checker.config.get("project_version_arn") or "model",
                           "the model's label set could not be read from its evaluation summary",
                           "the review task will offer only the labels it predicts; check the version's evaluation "
                           "results in the console")
        return
    report.facts["labels"] = list(labels)
    if not labels:
        report.error("labels", checker.config["project_version_arn"], "the model has no labels",
                     "train a version on a dataset with at least one label")
        return
    dupes = sorted({x for x in labels if labels.count(x) > 1})
    if dupes:
        report.error("labels", checker.config["project_version_arn"], f"duplicate labels {dupes}",
                     "labels must be unique in a label-category file")
    if checker.ground_truth and checker.model_kind == "boxes" and len(labels) > gt.MAX_BOX_LABELS:
        report.error("labels", checker.config["project_version_arn"],
                     f"{len(labels)} labels, but Ground Truth bounding-box tasks allow at most {gt.MAX_BOX_LABELS}",
                     "use the label-studio backend for this model")
    bad = [x for x in labels if not x.strip() or len(x) > 256]
    if bad:
        report.error("labels", checker.config["project_version_arn"], f"invalid label names {bad[:5]}",
                     "labels must be 1 to 256 characters")
    if not dupes and not bad:
        report.ok("labels", ", ".join(labels))


def _check_template(checker: Checker, name: str) -> None:
    try:
        text = resources.files("rekfeedback").joinpath("templates", name).read_text(encoding="utf-8")
    except (FileNotFoundError, OSError) as exc:
        checker.report.error("template", name, f"the Ground Truth worker template is missing ({exc})",
                             "reinstall the rekfeedback package (templates/ ships with it)")
        return
    if "<crowd-form" not in text or "crowd-html-elements.js" not in text:
        checker.report.error("template", name, "the template has no <crowd-form> or does not load the crowd HTML "
                                               "elements, so workers could not submit",
                             "restore the template shipped with rekfeedback")
        return
    checker.report.ok("template", name)
