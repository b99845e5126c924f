"""Jinja templates every task of a turn renders: the preflight task resolves the settings and the turn's S3
locations once, at run time, and later tasks read them from its XCom (parsing the DAG reads nothing)."""

from __future__ import annotations

PREFLIGHT = "ti.xcom_pull(task_ids='preflight')"
CONFIG = PREFLIGHT + "['config']"


def from_preflight(expression: str) -> str:
    """A template of the preflight's result, e.g. `from_preflight("['turn_prefix']")`."""
    return "{{ " + PREFLIGHT + expression + " }}"


def setting(name: str) -> str:
    """A template that renders to the resolved setting, with its native type."""
    return "{{ " + CONFIG + "['" + name + "'] }}"


def result_of(task_id: str, key: str | None = None) -> str:
    """A template of a task's XCom (or one key of it)."""
    return "{{ ti.xcom_pull(task_ids='" + task_id + "')" + (f"['{key}']" if key else "") + " }}"


TURN_PREFIX = from_preflight("['turn_prefix']")
CUMULATIVE = from_preflight("['cumulative_manifest_uri']")
UNUSABLE = from_preflight("['unusable_images_uri']")
PAID = from_preflight("['paid_predictions_uri']")
CHAMPION_RECORD = from_preflight("['champion_record_uri']")
CHAMPION_ARN = from_preflight("['champion_arn']")
THROUGHPUT = from_preflight("['throughput_memory_uri']")
OWNED_MODELS = from_preflight("['owned_models_uri']")
LABELS = from_preflight("['facts'].get('labels') or none")
