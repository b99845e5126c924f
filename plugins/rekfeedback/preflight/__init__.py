"""The preflight checks: every AWS resource and service one turn will touch, looked at before anything costs money.

boto3 level, no Airflow import but the Label Studio client (on the HTTP provider), so `rekfeedback preflight` runs them without an Airflow installation
being configured; the operator passes clients made from its AWS connection. Every check runs, whatever
the others found, and records `Finding`s in one `Report` (rekfeedback.core.preflight). Nothing is
started or created, except one small marker object written to the output prefix and removed at once
(the only way to know a prefix is writable).

One module per thing checked: settings, model (and its labels), s3 (input, output, CORS), ground_truth
(work team, role, Lambdas), label_studio, labels (templates and label set); `runner` runs them in order.
Entry point: `run_checks(config, clients=..., region=..., dag_id=..., labelstudio=...)`.
"""

from rekfeedback.preflight.checker import GT_CORS_RULE, Checker, LabelStudioTarget
from rekfeedback.preflight.runner import CHECKS, run_checks
from rekfeedback.preflight.s3 import cors_problem

__all__ = ["CHECKS", "GT_CORS_RULE", "Checker", "LabelStudioTarget", "cors_problem", "run_checks"]
