"""The settings of one turn of the loop: the DAG's params, with defaults from Variables or environment.

One table (`SETTINGS`) describes every setting once: the DAG builds its Trigger form from it, the
`resolve` step fills blanks from the Airflow Variable `rekfeedback_<name>` or the environment
variable `REKFEEDBACK_<NAME>`, and preflight and the `rekfeedback preflight --config` command read the
same resolved dict. No Airflow import here: Variable lookup is injected, so parsing the DAG file does
no I/O and this module is testable on its own.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from typing import Any, Callable

from rekfeedback.core import arns, templated
from rekfeedback.core.report import DEFAULT_PRICE_PER_OBJECT
from rekfeedback.core.selection import SETTING_CHOICES, SelectionPolicy, policy_from_settings

PROJECT_VERSION_ARN_RE = arns.PROJECT_VERSION
ARN_EXAMPLE = "arn:aws:rekognition:us-east-1:123456789012:project/my-project/version/my-project.2026-01-01T00.00.00/1700000000000"


@dataclass(frozen=True)
class Setting:
    name: str
    type: str | list[str]
    default: Any
    section: str
    description: str
    enum: list | None = None
    minimum: float | None = None
    maximum: float | None = None


SETTINGS: tuple[Setting, ...] = (
    # Model
    Setting("project_version_arn", "string", "", "Model",
            f"ARN of the Rekognition Custom Labels model version to run, e.g. `{ARN_EXAMPLE}`. "
            "Blank: the Variable `rekfeedback_project_version_arn` or env `REKFEEDBACK_PROJECT_VERSION_ARN`."),
    Setting("start_model", "boolean", True, "Model",
            "Start the model version if it is not running, and stop it after inference when this run started it."),
    Setting("stop_leftover_models", "boolean", True, "Model",
            "Preflight stops a model version an earlier turn of this loop started and left running (a crash, a "
            "killed teardown)."),
    Setting("min_inference_units", "integer", 1, "Model", "Inference units to start the model with.", minimum=1, maximum=100),
    Setting("max_inference_units", "integer", 1, "Model", "Upper bound for auto-scaling inference units.", minimum=1, maximum=100),
    # Inference
    Setting("input_uri", "string", "", "Inference",
            "S3 prefix of the new images (jpg, jpeg, png), or an S3 manifest listing them, e.g. `s3://my-bucket/new-images/`."),
    Setting("output_uri", "string", "", "Inference",
            "S3 prefix for this loop's outputs; each run writes under `<output_uri>/<dag_id>/<run>/` and the cumulative "
            "manifest lives at `<output_uri>/<dag_id>/dataset/cumulative.manifest`."),
    Setting("dataset_name", "string", "dataset", "Inference",
            "Folder of the cumulative dataset under `<output_uri>/<dag_id>/`. A new name starts a new cumulative "
            "manifest, e.g. when the new images are in another bucket than the dataset's (a Rekognition manifest "
            "holds one bucket; preflight refuses the change otherwise)."),
    Setting("min_confidence", "number", 50.0, "Inference", "DetectCustomLabels MinConfidence (0-100).", minimum=0, maximum=100),
    Setting("max_results", ["null", "integer"], None, "Inference", "DetectCustomLabels MaxResults; blank for all labels.", minimum=1),
    Setting("checkpoint_images", "integer", 50, "Inference",
            "Save the predictions done so far after this many new ones: a killed worker loses at most that many "
            "paid answers.", minimum=1, maximum=100000),
    Setting("checkpoint_seconds", "number", 5.0, "Inference",
            "... or after this many seconds, whichever comes first.", minimum=0.5, maximum=3600),
    Setting("shard_count", "integer", 2, "Inference",
            "Inference shards, run as mapped tasks (spread over workers).", minimum=1, maximum=64),
    Setting("max_failed_share", "number", 0.2, "Inference",
            "Fail inference when more than this share of images could not be predicted.", minimum=0, maximum=1),
    # Review
    Setting("review_backend", "string", "ground-truth", "Human review",
            "Where humans verify the predictions.", enum=["ground-truth", "label-studio"]),
    Setting("auto_accept_confidence", ["null", "number"], None, "Human review",
            "Predictions at or above this confidence skip humans (blank: off).", minimum=0, maximum=100),
    Setting("audit_rate", "number", 0.1, "Human review",
            "Share of auto-accepted images still sent to humans.", minimum=0, maximum=1),
    Setting("label_unpredicted", "boolean", True, "Human review",
            "Send images with no prediction to a labelling task (otherwise they are listed as unlabelled)."),
    Setting("review_timeout_hours", "number", 72, "Human review", "Give up waiting for the humans after this long.", minimum=0.001),
    Setting("workteam_arn", "string", "", "Ground Truth", "Ground Truth work team ARN (private or vendor)."),
    Setting("role_arn", "string", "", "Ground Truth", "IAM role Ground Truth assumes (infra output `GroundTruthRoleArn`)."),
    Setting("pre_annotation_lambda_arn", "string", "", "Ground Truth",
            "Pre-annotation Lambda of the verification task (infra output `PreAnnotationLambdaArn`)."),
    Setting("consolidation_lambda_arn", "string", "", "Ground Truth",
            "Annotation-consolidation Lambda (infra output `AnnotationConsolidationLambdaArn`)."),
    Setting("box_task", "string", "adjustment", "Ground Truth",
            "Task for bounding boxes.", enum=["adjustment", "verification"]),
    Setting("images_per_task", "integer", 5, "Ground Truth", "Images per verification task.", minimum=1, maximum=50),
    Setting("workers_per_object", "integer", 1, "Human review",
            "Workers (Ground Truth) or annotators (Label Studio) who answer each image; several are consolidated "
            "by majority vote with an agreement score.", minimum=1, maximum=9),
    Setting("agreement_threshold", "number", 0.6, "Human review",
            "With several workers per image: an answer whose agreement (share of workers who gave the consolidated "
            "answer) is below this is not merged as verified; it goes to the review round, or stays pending for a "
            "later turn.", minimum=0, maximum=1),
    Setting("review_round", "boolean", True, "Human review",
            "Send answers below agreement_threshold, and those the noise check flags, to one reviewer who sees the "
            "candidate answers and accepts, fixes or rejects them; the reviewed answer is final. Off: they are held "
            "out of this turn's training and listed."),
    Setting("noise_check", "string", "review", "Human review",
            "Label-noise check before the merge (reviewers disagreed, the model confidently of another opinion, "
            "boxes far from every prediction and reviewer, cleanlab for boxes): `review` sends flagged answers to "
            "the review round, `hold-out` keeps them out of training, `off` merges them.",
            enum=["review", "hold-out", "off"]),
    Setting("noise_confidence", "number", 90.0, "Human review",
            "Model confidence (percent) from which a human answer that removes or relabels the model's label or "
            "box is flagged by the noise check.", minimum=0, maximum=100),
    Setting("labelstudio_conn_id", "string", "label_studio_default", "Label Studio", "Airflow connection of the Label Studio server."),
    Setting("labelstudio_min_share", "number", 1.0, "Label Studio",
            "Finish when this share of tasks is annotated and `labelstudio_deadline_hours` has passed.", minimum=0, maximum=1),
    Setting("labelstudio_deadline_hours", ["null", "number"], None, "Label Studio",
            "Deadline after which `labelstudio_min_share` is enough (blank: wait for every task)."),
    # Selection (core.selection): which images humans review, under a budget
    Setting("review_budget", ["null", "integer"], None, "Selection",
            "Images humans review per turn (blank: no cap). The others are deferred: not reviewed this turn, they stay "
            "candidates for later turns, their paid predictions reused while the model version is unchanged.",
            minimum=0),
    Setting("selection", "string", "auto", "Selection",
            "Which images use the budget: `uncertainty` (the model's least sure), `balanced` (uncertainty + diversity + "
            "rare labels), `random`, or `all` (every image, no cap). `auto`: balanced under a budget or cost cap, else all.",
            enum=list(SETTING_CHOICES)),
    Setting("review_cost_cap", ["null", "number"], None, "Selection",
            "Most USD of human review per turn, at the report's price per reviewed object (blank: no cap).", minimum=0),
    # Training
    Setting("train", "boolean", True, "Training", "Train the next model version on the merged dataset and compare it."),
    Setting("test_share", "number", 0.0, "Training",
            "Share of new images routed to the TEST dataset instead of TRAIN. 0 keeps the TEST set fixed, so F1 "
            "before and after compare like with like; raise it to grow the TEST set (a project without a TEST "
            "dataset needs it above 0).", minimum=0, maximum=0.5),
    Setting("improvement_margin", "number", 0.0, "Training",
            "The new version must beat the champion's F1 by more than this to become champion.", minimum=0, maximum=1),
    # Champion
    Setting("max_label_regression", "number", 0.05, "Champion",
            "Refuse a promotion when any label's F1 drops by more than this.", minimum=0, maximum=1),
    Setting("min_f1", "number", 0.0, "Champion",
            "Refuse a promotion when the new version's F1 is below this.", minimum=0, maximum=1),
    Setting("min_new_labels", ["null", "integer"], None, "Champion",
            "Train only when at least this many new human-verified images were merged since the champion "
            "was trained (blank: every turn trains).", minimum=0),
    Setting("require_approval", "boolean", False, "Champion",
            "A person approves each promotion in Airflow's Required Actions before it happens."),
    Setting("approval_timeout_hours", "number", 24, "Champion",
            "How long the approval waits for an answer.", minimum=0.0001),
    Setting("approval_timeout_action", "string", "keep", "Champion",
            "What an unanswered approval does: keep the champion or promote anyway.", enum=["keep", "promote"]),
    Setting("serve_champion", "boolean", False, "Champion",
            "When the old champion was RUNNING before the turn, start the new champion (min_inference_units) "
            "and stop the old one once the new one runs. Off: the loop never touches a model it did not start."),
    Setting("keep_versions", ["null", "integer"], None, "Champion",
            "Delete losing challengers this loop trained beyond the newest N (blank: delete nothing).", minimum=0),
    # Connections
    Setting("aws_conn_id", "string", "aws_default", "Connections", "Airflow AWS connection."),
)

BY_NAME = {s.name: s for s in SETTINGS}
DATASET_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")


def form_field(setting: Setting) -> dict[str, Any]:
    """Keyword arguments of the setting's `airflow.sdk.Param`: its field in the Trigger form.

    A setting that is blank by default is optional in the form (its JSON-schema type admits null), so an
    empty form can be submitted when the Variables hold the settings; the description is Markdown
    (`description_md`: the form renders it, where a plain `description` would show backticks).
    """
    types = setting.type if isinstance(setting.type, list) else [setting.type]
    blank = setting.default in (None, "")
    if blank and "null" not in types:
        types = ["null", *types]
    schema: dict[str, Any] = {
        "default": None if blank else setting.default,
        "type": types[0] if len(types) == 1 else types,
        "title": setting.name.replace("_", " ").capitalize(),
        "description_md": setting.description,
        "section": setting.section,
    }
    for keyword in ("enum", "minimum", "maximum"):
        if getattr(setting, keyword) is not None:
            schema[keyword] = getattr(setting, keyword)
    if setting.name == "project_version_arn":
        # Blank lets a nightly schedule run on the Variable; anything else must look like an ARN, and the form
        # refuses it before a run exists.
        schema["pattern"] = f"^$|{arns.PROJECT_VERSION_SCHEMA_PATTERN}"
    return schema


class TurnConfigError(ValueError):
    """Every problem with the settings, one per line."""


def _env_name(name: str) -> str:
    return f"REKFEEDBACK_{name.upper()}"


def _coerce(setting: Setting, value: Any) -> Any:
    """Values from Variables and environment are strings; give them the setting's type."""
    if not isinstance(value, str):
        return value
    types = setting.type if isinstance(setting.type, list) else [setting.type]
    if value.strip() == "" and "null" in types:
        return None
    if "boolean" in types:
        return templated.as_bool(value, setting.name)
    if "integer" in types:
        return int(value)
    if "number" in types:
        return float(value)
    return value


def parse_setting(name: str, text: Any) -> Any:
    """A setting given as text (a command-line `name=value`) with the setting's type; unknown names raise."""
    if name not in BY_NAME:
        raise TurnConfigError(f"unknown setting {name!r}; known settings: {', '.join(sorted(BY_NAME))}")
    try:
        return _coerce(BY_NAME[name], text)
    except ValueError as exc:
        raise TurnConfigError(f"setting {name}: {exc}") from exc


def resolve(
    params: dict[str, Any],
    variable_get: Callable[[str], str | None] = lambda _key: None,
    environ: dict[str, str] | None = None,
    sources: dict[str, str] | None = None,
) -> dict[str, Any]:
    """Blank params take the Variable `rekfeedback_<name>`, then env `REKFEEDBACK_<NAME>`, then the default.

    `sources`, when given, is filled with where each value came from (for `check_values`' messages).
    A Variable or environment value that does not parse is kept as text: `check_values` reports it.
    """
    environ = os.environ if environ is None else environ
    sources = {} if sources is None else sources
    out: dict[str, Any] = {}
    for s in SETTINGS:
        value = params.get(s.name)
        sources[s.name] = "the Trigger form (param)"
        if value in (None, ""):
            source = f"the Airflow Variable `rekfeedback_{s.name}`"
            fallback = variable_get(f"rekfeedback_{s.name}")
            if fallback in (None, ""):
                source, fallback = f"the environment variable `{_env_name(s.name)}`", environ.get(_env_name(s.name))
            if fallback not in (None, ""):
                sources[s.name] = source
                try:
                    value = _coerce(s, fallback)
                except ValueError:
                    value = fallback
        if value in (None, "") and s.default not in (None, ""):
            value = s.default
            sources[s.name] = "the default"
        out[s.name] = value
    return out


def _type_ok(value: Any, kind: str) -> bool:
    if kind == "null":
        return value is None
    if kind == "boolean":
        return isinstance(value, bool)
    if kind == "integer":
        return isinstance(value, int) and not isinstance(value, bool)
    if kind == "number":
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    return isinstance(value, str) or value is None


def check_values(config: dict[str, Any], sources: dict[str, str] | None = None) -> list[str]:
    """Type, range and choice of every setting, whatever its source; one problem per line, naming the
    setting, where its value came from and what to do. The form checks params itself; Variables and
    environment variables are only checked here, before anything is started or paid."""
    problems = []
    for s in SETTINGS:
        if s.name not in config:
            continue
        value = config[s.name]
        types = s.type if isinstance(s.type, list) else [s.type]
        where = (sources or {}).get(s.name) or (f"the form, the Variable `rekfeedback_{s.name}` "
                                                f"or env `{_env_name(s.name)}`")
        fix = f"fix it in {where}" if sources else f"check {where}"
        if not any(_type_ok(value, t) for t in types):
            problems.append(f"{s.name}={value!r} from {where} is not a {' or '.join(t for t in types if t != 'null')}; "
                            f"{fix}")
            continue
        if s.enum and value not in s.enum:
            problems.append(f"{s.name}={value!r} from {where} must be one of {', '.join(map(str, s.enum))}; {fix}")
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            if s.minimum is not None and value < s.minimum:
                problems.append(f"{s.name}={value!r} from {where} must be >= {s.minimum:g}; {fix}")
            if s.maximum is not None and value > s.maximum:
                problems.append(f"{s.name}={value!r} from {where} must be <= {s.maximum:g}; {fix}")
    return problems


def check_project_version_arn(arn: str | None) -> str | None:
    """The problem with the ARN, or None."""
    if not arn:
        return ("project_version_arn is required: give it in the Trigger form, or set the Variable "
                f"`rekfeedback_project_version_arn`. It looks like {ARN_EXAMPLE}")
    if not arns.match(arns.PROJECT_VERSION, arn):
        return (f"project_version_arn {arn!r} is not a Rekognition project-version ARN. It looks like "
                f"{ARN_EXAMPLE} (copy it from the model's page in the Rekognition console)")
    return None


def selection_policy(config: dict[str, Any]) -> SelectionPolicy:
    """The review selection of a turn; a cost cap is priced as the report prices a reviewed object."""
    return policy_from_settings(config.get("selection"), config.get("review_budget"), config.get("review_cost_cap"),
                                DEFAULT_PRICE_PER_OBJECT)


def validate(config: dict[str, Any]) -> dict[str, Any]:
    """Check what can be checked without calling AWS; raise TurnConfigError listing every problem."""
    problems = check_values(config)
    arn_problem = check_project_version_arn(config.get("project_version_arn"))
    if arn_problem:
        problems.append(arn_problem)
    for name in ("input_uri", "output_uri"):
        value = config.get(name) or ""
        if not re.match(r"^s3://[a-z0-9][a-z0-9.\-]{1,61}[a-z0-9](/.*)?$", value):
            problems.append(f"{name} must be an S3 URI like s3://my-bucket/prefix/, got {value!r} "
                            f"(set it in the form, the Variable `rekfeedback_{name}` or env `{_env_name(name)}`)")
    dataset = config.get("dataset_name") or "dataset"
    if not DATASET_NAME_RE.match(str(dataset)) or str(dataset) == "reports":
        problems.append(f"dataset_name must be 1-64 letters, digits, '.', '_' or '-' (not 'reports'), got {dataset!r}")
    units = (config.get("min_inference_units", 1), config.get("max_inference_units", 1))
    if all(_type_ok(u, "integer") for u in units) and units[0] > units[1]:
        problems.append("min_inference_units must not exceed max_inference_units")
    selection_names = ("selection", "review_budget", "review_cost_cap")
    if not any(p.startswith(selection_names) for p in problems):  # the combination, once each value is well typed
        try:
            selection_policy(config)
        except ValueError as exc:
            problems.append(str(exc))
    if config.get("review_backend") == "ground-truth":
        for name in ("workteam_arn", "role_arn", "pre_annotation_lambda_arn", "consolidation_lambda_arn"):
            if not config.get(name):
                problems.append(f"{name} is required for the ground-truth review backend "
                                f"(form, Variable `rekfeedback_{name}` or env `{_env_name(name)}`; infra/ outputs it)")
    if problems:
        raise TurnConfigError("\n".join(f"- {p}" for p in problems))
    return config


def dataset_prefix(config: dict[str, Any], dag_id: str) -> str:
    """The folder of the cumulative manifest (``dataset_name`` picks a new one). What is about images or
    models rather than the dataset (unusable images, paid work, owned models) stays in ``dataset/``."""
    return f"{config['output_uri'].rstrip('/')}/{dag_id}/{config.get('dataset_name') or 'dataset'}"


def cumulative_manifest_uri(config: dict[str, Any], dag_id: str) -> str:
    return f"{dataset_prefix(config, dag_id)}/cumulative.manifest"


def unusable_images_uri(config: dict[str, Any], dag_id: str) -> str:
    """The loop's list of images that can never be predicted (written by the merge, skipped by later turns)."""
    return f"{config['output_uri'].rstrip('/')}/{dag_id}/dataset/unusable.jsonl"


def _loop_folder(config: dict[str, Any], dag_id: str, name: str) -> str:
    return f"{config['output_uri'].rstrip('/')}/{dag_id}/dataset/{name}/"


def paid_predictions_uri(config: dict[str, Any], dag_id: str) -> str:
    """The loop's ledger of paid work (core.paid): answers to reuse, images known unusable, by ETag."""
    return _loop_folder(config, dag_id, "paid")


def throughput_memory_uri(config: dict[str, Any], dag_id: str) -> str:
    """Calls/s the model sustained, per version and inference units (core.shard_rates): later turns start there."""
    return f"{config['output_uri'].rstrip('/')}/{dag_id}/dataset/throughput/"


def owned_models_uri(config: dict[str, Any], dag_id: str) -> str:
    """Where each turn records a model version it owns until its teardown stopped it (core.ownership)."""
    return _loop_folder(config, dag_id, "owned-models")


def champion_record_uri(config: dict[str, Any], dag_id: str) -> str:
    """The loop's champion record, next to the cumulative manifest (rekfeedback.core.champion)."""
    return f"{config['output_uri'].rstrip('/')}/{dag_id}/dataset/champion.json"
