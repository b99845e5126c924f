"""The deployment test (`make deploy-test`): the DAG on a real Airflow 3.3, as a deployment runs it.

On loopback, with free ports, under one working folder (`.deploy/run`): PostgreSQL (Debian's binaries),
Redis, the emulator in place of AWS, then Airflow's api-server, scheduler, dag-processor, triggerer and a
Celery worker, all from the runtime venv (`requirements.lock` + `pip install --no-deps .`, what the README
tells a deployment to install) with the repository's `plugins/` as the plugins folder, as compose mounts it.
Settings come from `deploy/airflow.env`, which docker-compose reads too. `rekfeedback-local seed-local
--airflow` stores the connection and the Variables, exactly as a user runs it. Then, through the REST API
with a token from the auth manager:

1. turn 1, empty conf (everything from Variables): succeeds, runs the champion seeded from the Variable and
   records its decision; model.start, the review wait and training
   were deferred and resumed by the triggerer; the model is STOPPED at the end;
2. new images land in the input prefix; turn 2 is triggered from the UI's Trigger form in headless Chromium
   (`--no-browser`: through the API) with only the ARN typed in: no field or section in error, with the empty
   form nor with the ARN, descriptions rendered as Markdown; the run it creates has that conf, succeeds, and
   runs inference on the new images only;
3. turn 3, nothing new: every task after preflight is skipped and no model is started;
4. no plugin or DAG import error in the API or in any component's log.

Everything it started is stopped on the way out (also on Ctrl-C or SIGTERM). Exit code 0 only if all holds.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import sys
import time
from pathlib import Path

from deploy_stack import (DAG_ID, ROOT, Api, Failed, Stack, airflow_environment, free_port, http, run, start_postgres,
                          start_redis, wait_for)

DEFERRED_TASKS = ("model.start", "human_review.ground_truth_wait", "training.train_and_compare")
PLUGIN_ERRORS = ("Failed to import plugin", "attempted relative import", "Failed to load plugins")
# The emulator answers in seconds; the DAG polls every second (read by every component at parse time).
# Labeling jobs are held until the test has seen the review wait deferred (then it releases them).
EMULATOR_KNOBS = {"hold_labeling_jobs": "true", "training_seconds": 2, "start_seconds": 2, "stop_seconds": 1,
                  "labeling_seconds": 2, "dataset_seconds": 0.2, "capacity_per_unit": 50}


# ----------------------------------------------------------------------------------------------- checks

def check_turn(api: Api, run_id: str, state: str, label: str) -> dict[str, dict]:
    tis = {ti["task_id"] if ti.get("map_index", -1) < 0 else f"{ti['task_id']}[{ti['map_index']}]": ti
           for ti in api.task_instances(run_id)}
    if state != "success":
        bad = {k: ti["state"] for k, ti in tis.items() if ti["state"] not in ("success", "skipped")}
        raise Failed(f"{label}: run {run_id} ended {state}; tasks not successful: {bad}")
    return tis


def check_deferred_and_resumed(api: Api, run_id: str, tis: dict[str, dict]) -> None:
    """Each wait deferred (the worker said so) and the triggerer fired its event (its part of the same log)."""
    for task_id in DEFERRED_TASKS:
        ti = tis.get(task_id)
        if not ti or ti["state"] != "success":
            raise Failed(f"{task_id} did not succeed: {ti and ti['state']}")
        text = api.log(run_id, task_id, ti["try_number"])
        for marker, meaning in (("Pausing task as DEFERRED", "deferred"), ("Trigger fired event", "resumed by the triggerer")):
            if marker not in text:
                raise Failed(f"{task_id} was not {meaning}: no {marker!r} in its log:\n{text[-3000:]}")


def check_no_import_errors(api: Api, stack: Stack) -> None:
    plugin_errors = api.call("GET", "/plugins/importErrors")
    if plugin_errors.get("total_entries"):
        raise Failed(f"plugin import errors: {plugin_errors}")
    dag_errors = api.call("GET", "/importErrors")
    if dag_errors.get("total_entries"):
        raise Failed(f"DAG import errors: {dag_errors}")
    for name, _proc in stack.procs:
        text = stack.log_text(name)
        for marker in PLUGIN_ERRORS:
            if marker in text:
                line = next(l for l in text.splitlines() if marker in l)
                raise Failed(f"{name}'s log has a plugin import error: {line}")


def model_status(rekognition, version_arn: str) -> str:
    # arn:...:project/<project>/version/<version>/<created>; the project's own ARN ends in another timestamp.
    project_name, version_name = version_arn.split(":project/")[1].split("/version/")
    project = rekognition.describe_projects(ProjectNames=[project_name])["ProjectDescriptions"][0]
    versions = rekognition.describe_project_versions(ProjectArn=project["ProjectArn"],
                                                     VersionNames=[version_name.split("/")[0]])
    return versions["ProjectVersionDescriptions"][0]["Status"]


def emulator_calls(endpoint: str, operation: str) -> int:
    _status, stats = http("GET", f"{endpoint}/_rekfeedback/stats")
    return int(((stats or {}).get("calls") or {}).get(operation, 0))


# ----------------------------------------------------------------------------------------------- main

def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--airflow-venv", default=str(ROOT / ".deploy" / "venv"),
                        help="venv with the runtime set installed (make deploy-test builds it)")
    parser.add_argument("--work", default=str(ROOT / ".deploy" / "run"), help="working folder (emptied first)")
    # 16: the 3 unusable objects seed-local adds stay within each shard's max_failed_share (0.2).
    parser.add_argument("--images", type=int, default=16, help="images in the first batch")
    parser.add_argument("--new-images", type=int, default=4, help="images added before turn 2")
    parser.add_argument("--timeout", type=float, default=900,
                        help="seconds a turn may take before the test gives up (a hang guard, not a speed check)")
    parser.add_argument("--no-browser", dest="browser", action="store_false",
                        help="skip the Trigger form check in headless Chromium")
    args = parser.parse_args(argv)

    started = time.monotonic()
    work = Path(args.work)
    shutil.rmtree(work, ignore_errors=True)
    (work / "logs").mkdir(parents=True)
    airflow_bin = Path(args.airflow_venv) / "bin"
    if not (airflow_bin / "airflow").exists():
        print(f"deploy-test: no airflow in {airflow_bin}; run `make deploy-test`", file=sys.stderr)
        return 2
    stack = Stack(work / "logs")
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    try:
        _run(args, work, airflow_bin, stack)
    except Failed as exc:
        print(f"\ndeploy-test FAILED: {exc}\nlogs: {work / 'logs'}", file=sys.stderr)
        return 1
    finally:
        stack.stop()
    print(f"deploy-test passed in {time.monotonic() - started:.0f} s (logs: {work / 'logs'})")
    return 0


STARTED = time.monotonic()


def say(message: str) -> None:
    print(f"deploy-test [{time.monotonic() - STARTED:5.0f} s] {message}", flush=True)


def _run(args: argparse.Namespace, work: Path, airflow_bin: Path, stack: Stack) -> None:
    ports = {name: free_port() for name in ("postgres", "redis", "emulator", "api", "scheduler_health",
                                             "worker_logs", "trigger_logs")}
    endpoint = f"http://127.0.0.1:{ports['emulator']}"
    start_postgres(stack, work, ports["postgres"])
    start_redis(stack, ports["redis"])
    emulator_env = dict(os.environ, **{f"REKFEEDBACK_EMULATOR_{k.upper()}": str(v) for k, v in EMULATOR_KNOBS.items()})
    stack.start("emulator", [str(ROOT / ".venv" / "bin" / "rekfeedback-local"), "emulator", "--host", "127.0.0.1",
                             "--port", str(ports["emulator"])], emulator_env)
    say(f"PostgreSQL on {ports['postgres']}, Redis on {ports['redis']}, emulator on {endpoint}")

    env = airflow_environment(work, ports, airflow_bin)
    run(["airflow", "db", "migrate"], env)
    say("database migrated; starting api-server, scheduler, dag-processor, triggerer, celery worker")
    for component in (["api-server"], ["scheduler"], ["dag-processor"], ["triggerer"], ["celery", "worker"]):
        stack.start("-".join(component), ["airflow", *component], env)
    # The user's own set-up command: the emulator's resources, the connection and the Variables.
    seed = run([str(ROOT / ".venv" / "bin" / "rekfeedback-local"), "seed-local", "--endpoint-url", endpoint, "--airflow",
                "--images", str(args.images)], env)
    config = json.loads(seed[seed.index("\n{") + 1: seed.index("\n}") + 2])
    say(f"seeded: {config['project_version_arn']}")

    api = Api(f"http://127.0.0.1:{ports['api']}")
    wait_for("the api-server", lambda: http("GET", f"{api.base}/api/v2/version")[0] == 200, 300, stack)
    api.login("airflow", "airflow")
    wait_for(f"the DAG {DAG_ID} to be parsed",
             lambda: http("GET", f"{api.base}/api/v2/dags/{DAG_ID}", token=api.token)[0] == 200, 300, stack)
    api.call("PATCH", f"/dags/{DAG_ID}", {"is_paused": False})
    say("logged in; DAG parsed and unpaused")

    import boto3

    aws = dict(endpoint_url=endpoint, region_name="us-east-1", aws_access_key_id="testing",
               aws_secret_access_key="testing")
    rekognition, s3 = boto3.client("rekognition", **aws), boto3.client("s3", **aws)
    version = config["project_version_arn"]

    t0 = time.monotonic()
    run1 = api.trigger({})  # everything from the Variables seed-local stored
    wait_for("the review wait to be deferred", lambda: api.task_state(run1, "human_review.ground_truth_wait") == "deferred",
             args.timeout, stack)
    status, _ = http("POST", f"{endpoint}/_rekfeedback/config", {"hold_labeling_jobs": False})
    if status != 200:
        raise Failed(f"the emulator refused to release the labeling jobs ({status})")
    say("the review wait is deferred; labeling jobs released")
    state = api.wait_run(run1, stack, args.timeout)
    tis = check_turn(api, run1, state, "turn 1")
    check_deferred_and_resumed(api, run1, tis)
    if model_status(rekognition, version) != "STOPPED":
        raise Failed(f"turn 1 left the model {model_status(rekognition, version)}")
    first = api.xcom(run1, "summary")
    say(f"turn 1 succeeded in {time.monotonic() - t0:.0f} s: {first.get('images_seen')} images, predicted "
        f"{first.get('predicted')}, unusable {first.get('failed')}; model STOPPED")
    if first.get("served_by") != version or not first.get("champion") or not first.get("champion_reasons"):
        raise Failed(f"turn 1 (empty conf) should run the seeded champion {version} and record why: {first}")
    say(f"champion after turn 1: {first['champion']} ({first.get('champion_decision')})")

    from rekfeedback_local.demo import add_images

    add_images(s3, config["input_uri"].split("/")[2], config["input_uri"], args.new_images, turn=2)
    t0 = time.monotonic()
    if args.browser:  # turn 2 is triggered from the UI's Trigger form, with only the ARN typed in
        run2 = trigger_from_form(api, version, work, known={run1})
    else:
        run2 = api.trigger({"project_version_arn": version})  # what a user types in the form: the ARN only
    state = api.wait_run(run2, stack, args.timeout)
    check_turn(api, run2, state, "turn 2")
    second = api.xcom(run2, "summary")
    # What turn 2 sent to DetectCustomLabels (predicted, no prediction or failed) is exactly the new images;
    # every image of turn 1, labelled or known unusable, was skipped.
    sent = int(second.get("images_seen") or 0) - int(second.get("images_skipped") or 0)
    if sent != args.new_images:
        raise Failed(f"turn 2 ran inference on {sent} images, expected only the {args.new_images} new: {second}")
    if int(second.get("images_skipped") or 0) < args.images:
        raise Failed(f"turn 2 skipped {second.get('images_skipped')} earlier images, expected at least {args.images}")
    if model_status(rekognition, version) != "STOPPED":
        raise Failed("turn 2 left the model running")
    say(f"turn 2 succeeded in {time.monotonic() - t0:.0f} s: inference on the {sent} new images only, "
        f"skipped {second['images_skipped']}")

    starts_before = emulator_calls(endpoint, "Rekognition.StartProjectVersion")
    t0 = time.monotonic()
    run3 = api.trigger({"project_version_arn": version})
    state = api.wait_run(run3, stack, args.timeout)
    tis = check_turn(api, run3, state, "turn 3")
    not_skipped = sorted(k for k, ti in tis.items() if k != "preflight" and ti["state"] != "skipped")
    if not_skipped:
        raise Failed(f"turn 3 had nothing new, yet these tasks were not skipped: {not_skipped}")
    if emulator_calls(endpoint, "Rekognition.StartProjectVersion") != starts_before:
        raise Failed("turn 3 had nothing new, yet a model was started")
    say(f"turn 3 (nothing new) skipped everything in {time.monotonic() - t0:.0f} s; no model started")

    check_no_import_errors(api, stack)
    say("no plugin or DAG import error in the API or any component's log")


def trigger_from_form(api: Api, arn: str, work: Path, known: set[str]) -> str:
    """The Trigger form in headless Chromium: no error with the Variables holding the settings, nor with only
    the ARN typed in; submitting it creates a run with that conf (the caller waits for it and checks it)."""
    sys.path.insert(0, str(ROOT))
    from tests.deployment.trigger_form import SECTIONS, check_trigger_form

    seen = check_trigger_form(api.base, api.token, DAG_ID, arn, work / "logs")
    for label, state in (("empty form", seen["empty"]), ("only the ARN typed in", seen["arn"])):
        if state["invalid"]:
            raise Failed(f"Trigger form, {label}: fields in error: {state['invalid']}")
        if not state["submit_found"] or state["submit_disabled"]:
            raise Failed(f"Trigger form, {label}: the Trigger button is disabled")
        missing = sorted(set(SECTIONS) - set(state["sections"]))
        if missing:
            raise Failed(f"Trigger form, {label}: sections not shown: {missing}")
        if state["raw_backticks"] or "rekfeedback_project_version_arn" not in state["code_in_descriptions"]:
            raise Failed(f"Trigger form: descriptions are not rendered Markdown ({state['raw_backticks']} raw "
                         f"backticks; code elements {state['code_in_descriptions'][:5]})")
    if not seen["submitted"]:
        raise Failed("Trigger form: could not submit")
    runs = api.call("GET", f"/dags/{DAG_ID}/dagRuns?order_by=-run_after&limit=20")["dag_runs"]
    created = [r for r in runs if r["dag_run_id"] not in known]
    if len(created) != 1 or (created[0].get("conf") or {}).get("project_version_arn") != arn:
        raise Failed(f"Trigger form: expected one new run with conf project_version_arn={arn}, got "
                     f"{[(r['dag_run_id'], r.get('conf')) for r in created]}")
    conf = created[0]["conf"]
    blank = {k: conf.get(k) for k in ("input_uri", "output_uri", "workteam_arn", "role_arn")}
    if any(v not in (None, "") for v in blank.values()):
        raise Failed(f"Trigger form: blank settings were submitted with values {blank}")
    say("Trigger form: no section in error, empty or with only the ARN; Markdown descriptions; it created "
        f"{created[0]['dag_run_id']}")
    return created[0]["dag_run_id"]

if __name__ == "__main__":
    sys.exit(main())
