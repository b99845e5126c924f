"""`rekfeedback preflight`: the preflight checks from a shell, before the first DAG run.

    rekfeedback preflight --config turn.yaml --param review_backend=label-studio

The config file (JSON or YAML) holds the DAG's params (the names of `turn_config.SETTINGS`), either at
the top level or under "params" or "config" (so the output of `local_setup.provision` works as is).
`--param name=value` overrides one setting. Blanks are filled from env `REKFEEDBACK_<NAME>` (Airflow
Variables are not read: no Airflow needed). AWS access is boto3's usual chain (AWS_ENDPOINT_URL,
AWS_PROFILE, AWS_REGION...); Label Studio comes from `--labelstudio-url/--labelstudio-token`, env
LABEL_STUDIO_URL/LABEL_STUDIO_TOKEN, or env AIRFLOW_CONN_<LABELSTUDIO_CONN_ID>.
Exit code: 0 when no problem (warnings allowed), 1 when problems were found, 2 for bad usage.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any

from rekfeedback import turn_config

DEFAULT_DAG_ID = "rekognition_feedback_loop"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", type=Path, help="JSON or YAML file with the turn settings (the DAG's params)")
    parser.add_argument("--param", action="append", default=[], metavar="NAME=VALUE",
                        help="override one setting (repeatable), e.g. --param review_backend=label-studio")
    parser.add_argument("--dag-id", default=DEFAULT_DAG_ID,
                        help=f"DAG id, which places the cumulative manifest (default: {DEFAULT_DAG_ID})")
    parser.add_argument("--region", default=None, help="AWS region (default: boto3's, e.g. AWS_REGION)")
    parser.add_argument("--endpoint-url", default=None, help="AWS endpoint, e.g. the local emulator")
    parser.add_argument("--labelstudio-url", default=None, help="Label Studio URL (label-studio backend)")
    parser.add_argument("--labelstudio-token", default=None, help="Label Studio API token (label-studio backend)")
    parser.add_argument("--json", action="store_true", help="print the report as JSON")


def load_settings(path: Path | None, overrides: list[str]) -> dict[str, Any]:
    """Settings from the file plus overrides; unknown names and unreadable files raise TurnConfigError."""
    settings: dict[str, Any] = {}
    if path is not None:
        try:
            text = path.read_text(encoding="utf-8")
        except OSError as exc:
            raise turn_config.TurnConfigError(f"cannot read --config {path}: {exc}") from exc
        try:
            if path.suffix.lower() in (".yaml", ".yml"):
                import yaml

                data = yaml.safe_load(text)
            else:
                data = json.loads(text)
        except Exception as exc:  # noqa: BLE001 - JSON and YAML raise different errors; both mean "fix the file"
            raise turn_config.TurnConfigError(f"--config {path} is not valid {path.suffix.lstrip('.') or 'JSON'}: "
                                              f"{exc}") from exc
        if isinstance(data, dict):
            data = data.get("params") or data.get("config") or data
        if not isinstance(data, dict):
            raise turn_config.TurnConfigError(f"--config {path} must hold a mapping of setting name -> value")
        unknown = sorted(set(data) - set(turn_config.BY_NAME))
        if unknown:
            raise turn_config.TurnConfigError(f"--config {path}: unknown setting(s) {', '.join(unknown)}; known: "
                                              f"{', '.join(sorted(turn_config.BY_NAME))}")
        settings.update(data)
    for item in overrides:
        name, sep, value = item.partition("=")
        if not sep:
            raise turn_config.TurnConfigError(f"--param {item!r} must look like name=value")
        settings[name.strip()] = turn_config.parse_setting(name.strip(), value)
    return settings


def labelstudio_target(args: argparse.Namespace, conn_id: str):
    """Where the Label Studio check looks: the flags, else env LABEL_STUDIO_*, else env AIRFLOW_CONN_<conn id>.

    The connection variable is read with Airflow's own parser (JSON or URI form) and the hook's own rules
    (scheme, port, token kind), so the command checks what the DAG's tasks will use.
    """
    from rekfeedback.preflight import LabelStudioTarget

    url = args.labelstudio_url or os.environ.get("LABEL_STUDIO_URL")
    token = args.labelstudio_token or os.environ.get("LABEL_STUDIO_TOKEN")
    auth = None
    env = f"AIRFLOW_CONN_{conn_id.upper()}"
    if os.environ.get(env) and not (url and token):
        try:
            c_url, c_token, auth = _connection_parts(os.environ[env], conn_id)
        except Exception as exc:  # noqa: BLE001 - any unreadable variable becomes one finding
            return LabelStudioTarget(conn_id=conn_id, error=f"env {env} cannot be read: {exc}")
        url, token = url or c_url, token or c_token
    if not url:
        return LabelStudioTarget(conn_id=conn_id, error="no Label Studio URL: pass --labelstudio-url, set "
                                                        f"LABEL_STUDIO_URL or {env}")
    return LabelStudioTarget(url=url, token=token, auth=auth, conn_id=conn_id)


def _connection_parts(text: str, conn_id: str) -> tuple[str | None, str | None, str | None]:
    """(url, token, auth) of an Airflow connection in JSON or URI form."""
    from airflow.sdk import Connection

    from rekfeedback.hooks.label_studio_connection import base_url_from

    text = text.strip()
    conn = Connection.from_json(text, conn_id=conn_id) if text.startswith("{") else Connection.from_uri(text, conn_id)
    return (base_url_from(conn) if conn.host else None), conn.password or None, (conn.extra_dejson or {}).get("auth")


def run(args: argparse.Namespace) -> int:
    import boto3

    from rekfeedback.preflight import run_checks

    try:
        settings = load_settings(args.config, args.param)
    except turn_config.TurnConfigError as exc:
        print(f"rekfeedback preflight: {exc}", file=sys.stderr)
        return 2
    config = turn_config.resolve(settings)
    session = boto3.session.Session(region_name=args.region)
    region = args.region or session.region_name
    if not region:
        print("rekfeedback preflight: no AWS region: pass --region or set AWS_REGION", file=sys.stderr)
        return 2
    cache: dict[str, Any] = {}

    def clients(service: str):
        if service not in cache:
            cache[service] = session.client(service, endpoint_url=args.endpoint_url, region_name=region)
        return cache[service]

    labelstudio = None
    if config.get("review_backend") == "label-studio":
        labelstudio = labelstudio_target(args, config.get("labelstudio_conn_id") or "label_studio_default")
    report = run_checks(config, clients=clients, region=region, dag_id=args.dag_id, labelstudio=labelstudio)
    if args.json:
        print(json.dumps({"failed": report.failed, **report.as_dict()}, indent=2, default=str))
    else:
        print(report.format(title=f"Preflight of {args.dag_id}"))
    return 1 if report.failed else 0
