"""The DAG's first task: check every resource the turn will touch, before the model is started and billed."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from airflow.providers.amazon.aws.hooks.base_aws import AwsBaseHook
from airflow.providers.amazon.aws.operators.base_aws import AwsBaseOperator
from airflow.providers.amazon.aws.utils.mixins import aws_template_fields
from airflow.sdk.exceptions import AirflowException, AirflowFailException, AirflowSkipException
from botocore.exceptions import ClientError

from rekfeedback.core import templated
from rekfeedback import turn_config
from rekfeedback.core import champion as champion_core
from rekfeedback.core.paths import parse_s3_uri, turn_prefix
from rekfeedback.hooks.rekognition import RekognitionCustomLabelsHook
from rekfeedback.core import ownership
from rekfeedback.hooks.loop_store import LoopStore
from rekfeedback.preflight import LabelStudioTarget, run_checks

if TYPE_CHECKING:
    from airflow.sdk import Context


def variable_get(key: str) -> str | None:
    """Airflow Variable or None; a Variable backend that cannot be reached counts as "not set"."""
    from airflow.sdk import Variable

    try:
        return Variable.get(key, default=None)
    except Exception:  # noqa: BLE001 - a missing/unreachable Variable must not hide the real check results
        return None


def labelstudio_target(conn_id: str) -> LabelStudioTarget:
    """URL and token of a Label Studio connection, or why they cannot be read (reported, not raised)."""
    from rekfeedback.hooks.label_studio import LabelStudioHook

    try:
        hook = LabelStudioHook(label_studio_conn_id=conn_id)
        return LabelStudioTarget(url=hook.base_url, token=hook.token, auth=hook.auth.kind, conn_id=conn_id,
                                 timeout=hook.timeout, hook=hook)
    except Exception as exc:  # noqa: BLE001 - unknown conn id, no host, no token: all become one finding
        return LabelStudioTarget(conn_id=conn_id, error=f"cannot use Airflow connection {conn_id!r}: {exc}")


class FeedbackLoopPreflightOperator(AwsBaseOperator[AwsBaseHook]):
    """Check the model, S3 input/output, CORS, work team, role, Lambdas, Label Studio, templates and labels.

    Runs every check, logs one report, and fails once (no retry: a configuration error does not fix
    itself) listing every problem with the resource and what to do. Warnings never fail. When there
    is nothing new to label, the task is skipped so the rest of the DAG is skipped and the model is
    never started. Nothing is created except a marker object written to and removed from the output
    prefix.

    Returns ``{"config": <resolved turn settings>, "candidates": n, "new_images": n, "warnings": [...],
    "facts": {...}}``; downstream tasks read ``config`` (blanks filled from Variables/environment).

    :param params_to_check: the turn settings, usually ``"{{ params }}"``; defaults to the run's params. (templated)
    :param skip_when_nothing_new: skip (instead of succeed) when no candidate image is new.
    :param aws_conn_id: the AWS connection; its region is the turn's region. (templated)
    """

    aws_hook_class = AwsBaseHook
    template_fields: Sequence[str] = aws_template_fields("params_to_check")
    ui_color = "#d6eaf8"

    def __init__(self, *, params_to_check: Any = None, skip_when_nothing_new: bool = True, **kwargs) -> None:
        super().__init__(**kwargs)
        self.params_to_check = params_to_check
        self.skip_when_nothing_new = skip_when_nothing_new

    def _client_factory(self):
        cache: dict[str, Any] = {}

        def make(service: str):
            if service not in cache:
                cache[service] = AwsBaseHook(aws_conn_id=self.aws_conn_id, region_name=self.region_name,
                                             verify=self.verify, config=self.botocore_config,
                                             client_type=service).get_conn()
            return cache[service]
        return make

    def _choose_version(self, config: dict, params: dict, clients, dag_id: str, run_id: str) -> dict:
        """The version this turn runs: an explicit ARN, else the loop's champion, else the configured seed.

        Sets config["project_version_arn"] (what every later task uses) and returns what the champion
        steps need: the record's URI, the champion's ARN (the seed on the first run) and the source.
        """
        try:
            uri = parse_s3_uri(turn_config.champion_record_uri(config, dag_id), "champion record")
        except (KeyError, TypeError, ValueError, AttributeError):
            return {"champion_record_uri": None, "champion_arn": config.get("project_version_arn"),
                    "serving_source": "explicit" if params.get("project_version_arn") else "seed"}
        try:
            body = clients("s3").get_object(Bucket=uri.bucket, Key=uri.key)["Body"].read()
        except ClientError as exc:
            code = exc.response.get("Error", {}).get("Code")
            if code not in ("NoSuchKey", "404", "NotFound", "NoSuchBucket"):
                raise AirflowFailException(f"cannot read the champion record {uri}: {code}; give this connection "
                                           "s3:GetObject on the output prefix") from exc
            body = None
        try:
            record = champion_core.parse_record(body, str(uri))
        except champion_core.ChampionRecordError as exc:
            raise AirflowFailException(str(exc)) from exc
        arn, source, note = champion_core.serving_version(params.get("project_version_arn") or None, record,
                                                          config.get("project_version_arn"))
        self.log.info("Model version: %s", note)
        config["project_version_arn"] = arn
        return {"champion_record_uri": str(uri), "champion_arn": champion_core.champion_arn(record) or arn,
                "serving_source": source,
                # min_new_labels counts from here; a rerun of this run does not count its own answers twice.
                "verified_since_champion": champion_core.verified_since_champion(record, exclude_run=run_id)}

    def _rekognition(self) -> RekognitionCustomLabelsHook:
        return RekognitionCustomLabelsHook(aws_conn_id=self.aws_conn_id, region_name=self.region_name,
                                           verify=self.verify, config=self.botocore_config)

    def _status_of(self, arn: str | None) -> str | None:
        """A model's status before the turn (serve_champion looks at the champion's), None if unknown."""
        try:
            return self._rekognition().get_project_version_status(arn or "")
        except (AirflowException, ClientError, ValueError):
            return None

    def _stop_leftover_models(self, config: dict, dag_id: str, run_id: str, clients, report=None) -> set[str]:
        """Stop the model versions earlier turns of this loop started and never stopped (core.ownership).

        Returns the ARNs stopped. A record whose model is stopped since is removed; a model still
        STARTING is left for the next turn (StopProjectVersion is refused while it starts).
        """
        try:
            prefix = parse_s3_uri(turn_config.owned_models_uri(config, dag_id))
        except (KeyError, TypeError, ValueError, AttributeError):
            return set()
        store, stopped = LoopStore(clients("s3")), set()
        try:
            uris = list(store.keys_under(prefix, ".json"))
        except ClientError as exc:
            self.log.warning("Cannot list the owned-model records under %s: %s", prefix, exc)
            return set()
        rek = None
        for uri in uris:
            record = store.read_json(uri) or {}
            arn = record.get("project_version_arn")
            if not arn:
                continue
            rek = rek or self._rekognition()
            try:
                status = rek.get_project_version_status(arn)
            except Exception as exc:  # noqa: BLE001 - a deleted version bills nothing: forget it
                self.log.warning("Owned-model record %s: cannot describe %s (%s); forgetting it", uri, arn, exc)
                status = None
            action = ownership.leftover_action(record, status, run_id, bool(config.get("stop_leftover_models", True)))
            what = f"turn {record.get('run_id')} of this loop started this model and left it {status}"
            if report is not None and action in ("stop", "warn", "wait"):
                report.warning("model", arn, what, {"stop": "stopped now by this preflight",
                                                    "warn": "stop it yourself, or set stop_leftover_models to true",
                                                    "wait": "the next turn stops it once it is running"}[action])
            if action == "stop":
                self.log.warning("Model %s was started by turn %s of this loop and left %s: stopping it now.",
                                 arn, record.get("run_id"), status)
                rek.stop_project_version(arn)
                stopped.add(arn)
                store.delete(uri)
            elif action == "warn":
                self.log.warning("Model %s was started by turn %s of this loop and is still %s; "
                                 "stop_leftover_models is false, so it keeps running (and billing).",
                                 arn, record.get("run_id"), status)
            elif action == "wait":
                self.log.warning("Model %s, started by turn %s, is still %s: the next turn stops it.",
                                 arn, record.get("run_id"), status)
            elif action == "forget":
                store.delete(uri)
        return stopped

    def execute(self, context: Context) -> dict:
        raw = self.params_to_check if self.params_to_check not in (None, "") else context.get("params")
        try:
            params = templated.as_dict(raw, "params_to_check") or {}
        except ValueError as exc:
            raise AirflowFailException(f"{exc} (a dict of the turn settings)") from exc
        sources: dict[str, str] = {}
        config = turn_config.resolve(params, variable_get=variable_get, sources=sources)
        if self.aws_conn_id:
            config["aws_conn_id"] = self.aws_conn_id
        # A Variable or environment value is checked as strictly as the form: before anything is touched.
        bad = turn_config.check_values(config, sources)
        if bad:
            text = "Preflight: settings out of range or of the wrong type:\n" + "\n".join(f"- {p}" for p in bad)
            self.log.error("%s", text)
            raise AirflowFailException(text)
        clients = self._client_factory()
        region = clients("s3").meta.region_name  # the connection's region (or boto3's default chain)
        dag_id = context["dag"].dag_id if context.get("dag") is not None else context["ti"].dag_id
        champion = self._choose_version(config, params, clients, dag_id, str(context["run_id"]))
        labelstudio = None
        if config.get("review_backend") == "label-studio":
            labelstudio = labelstudio_target(config.get("labelstudio_conn_id") or "label_studio_default")
        try:
            # Every later task writes under this prefix: computed once, here, from the run id.
            turn = str(turn_prefix(config["output_uri"], dag_id, context["run_id"]))
        except (KeyError, TypeError, ValueError):
            turn = None  # a bad output_uri: the output check reports it
        report = run_checks(config, clients=clients, region=region, dag_id=dag_id,
                            labelstudio=labelstudio, turn_prefix=turn)
        # Before failing or skipping: a model an earlier turn left running bills whatever this turn does.
        leftovers = self._stop_leftover_models(config, dag_id, context["run_id"], clients, report)
        text = report.format(title=f"Preflight of {dag_id}")
        if report.failed:
            self.log.error("%s", text)
            raise AirflowFailException(text)
        self.log.info("%s", text)
        new_images = int(report.facts.get("new_images") or 0)
        if new_images == 0 and self.skip_when_nothing_new:
            raise AirflowSkipException(
                f"nothing new to label under {config.get('input_uri')} "
                f"({report.facts.get('candidates', 0)} candidates, all already labelled or unusable, or none found); "
                "skipping the turn without starting the model")
        if turn and report.facts.get("model_status"):
            if config["project_version_arn"] in leftovers:
                report.facts["model_status"] = "STOPPING"  # stopped just now: the model is not running for this turn
            record = LoopStore(clients("s3")).put_json_once(ownership.ownership_uri(parse_s3_uri(turn)), ownership.decide(
                project_version_arn=config["project_version_arn"], status_before_run=report.facts["model_status"],
                start_model=bool(config.get("start_model", True)), run_id=context["run_id"]))
            # A rerun keeps the first decision: the model its first attempt started is still its own.
            report.facts["model_owned"] = bool(record.get("owned"))
            report.facts["model_status"] = record.get("status_before_run") or report.facts["model_status"]
        return {
            "config": config,
            "turn_prefix": turn,
            "cumulative_manifest_uri": turn_config.cumulative_manifest_uri(config, dag_id),
            "unusable_images_uri": turn_config.unusable_images_uri(config, dag_id),
            "paid_predictions_uri": turn_config.paid_predictions_uri(config, dag_id),
            **champion,
            "champion_status_before": (report.facts.get("model_status")
                                       if champion.get("champion_arn") == config.get("project_version_arn")
                                       else self._status_of(champion.get("champion_arn"))),
            "throughput_memory_uri": turn_config.throughput_memory_uri(config, dag_id),
            "owned_models_uri": turn_config.owned_models_uri(config, dag_id),
            "leftover_models_stopped": sorted(leftovers),
            "candidates": int(report.facts.get("candidates") or 0),
            "new_images": new_images,
            "warnings": [f.as_dict() for f in report.warnings],
            "facts": report.facts,
        }
