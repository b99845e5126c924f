"""Preflight runner: every check in order, one report, a check that breaks is an error of its own."""

from __future__ import annotations

from typing import Any, Callable, Iterable

from botocore.exceptions import BotoCoreError, ClientError

from rekfeedback.core.preflight import Report
from rekfeedback.preflight.checker import Checker, LabelStudioTarget, error_message
from rekfeedback.preflight.settings import check_settings
from rekfeedback.preflight.model import check_model
from rekfeedback.preflight.s3 import check_cors, check_input, check_output
from rekfeedback.preflight.ground_truth import check_lambdas, check_role, check_workteam
from rekfeedback.preflight.label_studio import check_labelstudio
from rekfeedback.preflight.labels import check_templates_and_labels

CHECKS: tuple[Callable[[Checker], None], ...] = (
    check_settings, check_model, check_input, check_output, check_cors, check_workteam, check_role,
    check_lambdas, check_labelstudio, check_templates_and_labels,
)


def run_checks(config: dict, *, clients: Callable[[str], Any], region: str, dag_id: str,
               labelstudio: LabelStudioTarget | None = None,
               checks: Iterable[Callable[[Checker], None]] = CHECKS, turn_prefix: str | None = None) -> Report:
    """Run every check on a resolved turn config; return the report (never raises for a problem found).

    clients: service name ("s3", "iam", "lambda", "sagemaker", "rekognition") -> boto3 client in `region`.
    turn_prefix: the run's own prefix; images an earlier try of this run predicted count as new again
    (a rerun redoes its own turn, reusing what it finds, instead of skipping it as "already labelled").
    """
    checker = Checker(dict(config), clients, region, dag_id, labelstudio, turn_prefix=turn_prefix)
    checker.report.facts.update({"review_backend": checker.config.get("review_backend"), "region": region})
    for check in checks:
        try:
            check(checker)
        except (ClientError, BotoCoreError) as exc:
            name = check.__name__.removeprefix("check_")
            checker.report.error(name, _resource_of(check, checker.config), f"the check could not finish: "
                                                                           f"{error_message(exc)}",
                                 "check the AWS connection (credentials, region, endpoint) and the permissions to "
                                 "describe this resource")
    checker.report.facts.setdefault("candidates", 0 if not checker.usable("input_uri") else
                                    checker.report.facts.get("candidates", 0))
    checker.report.facts.setdefault("new_images", len(checker.new_uris))
    checker.report.facts.setdefault("to_predict", checker.report.facts["new_images"])
    return checker.report


def _resource_of(check, config: dict) -> str:
    setting = {"check_model": "project_version_arn", "check_input": "input_uri", "check_output": "output_uri",
               "check_cors": "input_uri", "check_workteam": "workteam_arn", "check_role": "role_arn"}.get(check.__name__)
    return str(config.get(setting) or setting or check.__name__)
