"""`make demo`: three turns of the loop, locally, with the real DAG in a real Airflow.

Starts the emulator in this process, provisions a local setup (bucket, synthetic images, role,
Lambdas, work team, project and version 1 trained on a small seed set), then runs the DAG with
`dag.test()` on a SQLite metadata database in a temporary AIRFLOW_HOME, once per turn. Before each
later turn a new batch of images lands in the same input prefix: each turn only pays for the new ones.
Every turn runs with no project_version_arn in its conf: the first one seeds the champion from the
local setup's version 1 (the environment), later ones run the champion the DAG promoted. Prints
each turn's summary (including F1 of each version), the champion after each turn, and where the
manifests and reports are.
Leaves nothing running.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import sys
import tempfile
import time
from pathlib import Path


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--turns", type=int, default=3)
    p.add_argument("--images", type=int, default=16, help="images in the first batch")
    p.add_argument("--images-per-turn", type=int, default=16, help="new images before each later turn")
    p.add_argument("--backend", choices=["ground-truth", "label-studio"], default="ground-truth")
    p.add_argument("--human", action="store_true",
                   help="with --backend label-studio: leave the tasks to a person in the browser and wait")
    p.add_argument("--review-budget", type=int, default=12,
                   help="images humans review per turn (0 or less: no cap); the others are deferred to later turns")
    p.add_argument("--error-rate", type=float, default=0.05, help="simulated workers' share of wrong answers")
    p.add_argument("--dags-folder", default=str(Path.cwd() / "dags"))
    p.add_argument("--out", default=str(Path.cwd() / "out" / "demo"), help="local folder for the reports")


def _airflow_environment(home: str, dags_folder: str) -> None:
    # Airflow reads its settings when first imported: set them before anything imports it.
    os.environ.update({
        "AIRFLOW_HOME": home,
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__DAGS_FOLDER": dags_folder,
        "AIRFLOW__LOGGING__LOGGING_LEVEL": os.environ.get("REKFEEDBACK_DEMO_LOG_LEVEL", "WARNING"),
    })


def add_images(s3, bucket: str, images_prefix_uri: str, n: int, turn: int) -> int:
    """A new batch of images lands in the input prefix, as it would overnight."""
    from rekfeedback_local import synthetic

    prefix = images_prefix_uri.split(f"s3://{bucket}/", 1)[1]
    rng = random.Random(1000 + turn)
    for i in range(1, n + 1):
        img = synthetic.make_image(rng, f"{prefix.rstrip('/')}/turn{turn}-{i:05d}")
        s3.put_object(Bucket=bucket, Key=img.key, Body=img.body, ContentType=f"image/{img.fmt}",
                      Metadata={"truth": json.dumps(img.truth, separators=(",", ":"))})
    return n


def _xcom(dag_run, task_id: str):
    from airflow.models.xcom import XComModel
    from airflow.utils.session import create_session

    with create_session() as session:
        row = session.query(XComModel).filter(
            XComModel.dag_id == dag_run.dag_id, XComModel.run_id == dag_run.run_id,
            XComModel.task_id == task_id, XComModel.key == "return_value",
        ).first()
        if row is None:
            return None
        value = row.value
    return json.loads(value) if isinstance(value, str) else value


def _print_turn(turn: int, state: str, summary: dict | None) -> None:
    print(f"\n=== turn {turn}: {state}")
    if not summary:
        print("    (no summary: see the task logs above)")
        return
    order = ["images_seen", "images_skipped", "predicted", "failed", "no_prediction", "selection", "selected",
             "deferred", "sent_to_humans", "audited",
             "auto_accepted", "confirmed", "rejected", "added", "adjusted", "manifest_images",
             "f1_before", "f1_after", "improved", "served_by", "champion_decision", "model_hours"]
    for key in order:
        if key in summary:
            print(f"    {key:<16} {summary[key]}")
    for key, value in sorted(summary.get("outputs", {}).items()):
        print(f"    {key:<16} {value}")
    for reason in summary.get("champion_reasons") or []:
        print(f"    why              {reason}")
    print(f"    champion now     {summary.get('champion')}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m rekfeedback_local.demo", description=__doc__.splitlines()[0])
    add_arguments(parser)
    return run(parser.parse_args(argv))


def run(args: argparse.Namespace) -> int:
    home = tempfile.mkdtemp(prefix="rekfeedback-demo-airflow-")
    _airflow_environment(home, args.dags_folder)
    os.environ.setdefault("REKFEEDBACK_POLL_SECONDS", "1")  # the emulator answers in seconds, not hours
    os.environ.setdefault("REKFEEDBACK_RETRY_DELAY_SECONDS", "1")
    started = time.monotonic()

    from rekfeedback_local.emulator.cli import start_in_thread
    from rekfeedback_local.local_setup import provision

    emulator = start_in_thread(training_seconds=2.0, start_seconds=1.0, stop_seconds=0.5,
                               labeling_seconds=2.0, error_rate=args.error_rate, capacity_per_unit=50.0)
    labelstudio = None
    try:
        os.environ.update(emulator.client_environment())
        os.environ["AIRFLOW_CONN_AWS_DEFAULT"] = json.dumps({
            "conn_type": "aws",
            "extra": {"endpoint_url": emulator.endpoint_url, "region_name": emulator.region},
        })
        print(f"emulator on {emulator.endpoint_url}; Airflow home {home}")
        setup = provision(emulator.endpoint_url, n_images=args.images, log=lambda m: print(f"  setup: {m}"))
        settings = dict(setup["config"], review_backend=args.backend, shard_count=2,
                        review_timeout_hours=1 if not args.human else 72)
        if args.review_budget > 0:  # the others wait for a later turn: the summary counts them as deferred
            settings["review_budget"] = args.review_budget
        if args.backend == "label-studio":
            labelstudio = _start_label_studio(args.human, emulator)
        for name, value in settings.items():
            os.environ[f"REKFEEDBACK_{name.upper()}"] = str(value)

        from airflow.utils import db

        db.initdb()
        from airflow.dag_processing.dagbag import BundleDagBag

        bag = BundleDagBag(dag_folder=args.dags_folder, bundle_path=args.dags_folder)
        if bag.import_errors:
            for path, err in bag.import_errors.items():
                print(f"DAG import error in {path}:\n{err}", file=sys.stderr)
            return 1
        dag = bag.get_dag("rekognition_feedback_loop")

        import boto3

        s3 = boto3.client("s3")
        champion = setup["project_version_arn"]
        reports = []
        for turn in range(1, args.turns + 1):
            if turn > 1:
                add_images(s3, setup["bucket"], setup["input_uri"], args.images_per_turn, turn)
            # No ARN in the conf: the DAG runs its champion (seeded from REKFEEDBACK_PROJECT_VERSION_ARN).
            dag_run = dag.test(run_conf={})
            summary = _xcom(dag_run, "summary")
            _print_turn(turn, str(dag_run.state), summary)
            if summary:
                if summary.get("report_local_path"):
                    reports.append(summary["report_local_path"])
                champion = summary.get("champion") or champion
            if str(dag_run.state) != "success":
                print(f"turn {turn} did not succeed; stopping the demo", file=sys.stderr)
                return 1
        print(f"\nDone in {time.monotonic() - started:.0f} s. Champion after the demo: {champion}")
        print(f"Champion record: {setup['output_uri']}rekognition_feedback_loop/dataset/champion.json")
        print(f"Cumulative manifest: {setup['output_uri']}rekognition_feedback_loop/dataset/cumulative.manifest "
              f"(in the emulator's S3; gone when it stops)")
        out = _download_reports(s3, setup, Path(args.out))
        if out:
            print(f"Reports and manifests copied to {out}")
        return 0
    finally:
        if labelstudio:
            labelstudio()
        emulator.stop()
        shutil.rmtree(home, ignore_errors=True)


def _download_reports(s3, setup: dict, out: Path) -> Path | None:
    """Copy every turn's report and manifest out of the emulator before it stops."""
    bucket = setup["bucket"]
    prefix = setup["output_uri"].split(f"s3://{bucket}/", 1)[1]
    found = False
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        for obj in page.get("Contents", []):
            key = obj["Key"]
            if key.endswith(("report/index.html", "report/figures.json", "output.manifest", "summary.json",
                             "cumulative.manifest", "champion.json")):
                target = out / key[len(prefix):]
                target.parent.mkdir(parents=True, exist_ok=True)
                s3.download_file(bucket, key, str(target))
                if key.endswith("report/index.html"):
                    print(f"  report: {target}")
                found = True
    return out if found else None


def _start_label_studio(human: bool, emulator):
    """Start the local Label Studio (scripts/labelstudio.sh) and, unless a person answers, a simulated annotator."""
    import subprocess

    script = Path.cwd() / "scripts" / "labelstudio.sh"
    subprocess.run(["bash", str(script), "install"], check=True)
    subprocess.run(["bash", str(script), "start"], check=True)
    env_file = Path.cwd() / ".labelstudio" / "env"
    values = dict(line.split("=", 1) for line in env_file.read_text().split() if "=" in line)
    url = values.get("LABEL_STUDIO_URL") or f"http://127.0.0.1:{values['LABEL_STUDIO_PORT']}"
    token = values.get("LABEL_STUDIO_TOKEN") or values.get("LABEL_STUDIO_USER_TOKEN")
    os.environ["AIRFLOW_CONN_LABEL_STUDIO_DEFAULT"] = json.dumps(
        {"conn_type": "labelstudio", "host": url, "password": token})
    print(f"Label Studio on {url}")
    stop_annotator = None
    if not human:
        from rekfeedback_local.annotator import run_in_background

        stop_annotator = run_in_background(url, token, policy="oracle", error_rate=0.05)
    else:
        print(f"Open {url} in a browser and answer the tasks of each turn; the DAG waits for you.")

    def stop() -> None:
        if stop_annotator:
            stop_annotator()
        subprocess.run(["bash", str(script), "stop"], check=False)

    return stop


if __name__ == "__main__":
    sys.exit(main())
