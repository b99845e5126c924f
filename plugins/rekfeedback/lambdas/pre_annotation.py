"""Pre-annotation Lambda of the custom verification task (function `rekfeedback-pre-annotation`).

Ground Truth calls it once per data object (one batch of images) with the manifest line as
`dataObject`; what it returns becomes `task.input` in templates/verification.liquid.html.
Deployed from this package by infra/ground-truth.yaml; handler `rekfeedback.lambdas.pre_annotation.handler`.
"""

from __future__ import annotations

import logging

from rekfeedback.core.verification_task import pre_annotation

log = logging.getLogger(__name__)


def build_task_input(event: dict) -> dict:
    data_object = event.get("dataObject")
    if not isinstance(data_object, dict):
        raise ValueError("pre-annotation event has no 'dataObject' object")
    return pre_annotation(data_object)


def handler(event, context=None):
    result = build_task_input(event)
    log.info("task input for %s: %d images", result["taskInput"]["batch"], len(result["taskInput"]["images"]))
    return result
