"""The `rekfeedback-local` console command: the local tooling, apart from the provider.

    rekfeedback-local emulator --port 4566
    rekfeedback-local synth --bucket my-bucket --prefix synthetic --n 200 --seed 7
    rekfeedback-local seed-local --endpoint-url http://127.0.0.1:4566 --airflow
    rekfeedback-local labelstudio-annotate --project 1 --truth s3://.../truth.jsonl
    rekfeedback-local demo --turns 3

Subcommands talk to AWS through boto3's normal configuration (AWS_ENDPOINT_URL, credentials, region),
so the same command works against the local emulator and a real account.
"""

from __future__ import annotations

import argparse
import json
import sys
from functools import partial

from rekfeedback import cli as provider_cli

SUBCOMMANDS: dict = {}
subcommand = partial(provider_cli.subcommand, registry=SUBCOMMANDS)


def _emulator_arguments(parser: argparse.ArgumentParser) -> None:
    from rekfeedback_local.emulator.cli import add_arguments

    add_arguments(parser)


@subcommand("emulator", "serve the local AWS stand-in (S3, IAM, STS, Lambda through moto; Rekognition Custom "
                        "Labels and Ground Truth of our own)", _emulator_arguments)
def _emulator(args: argparse.Namespace) -> int:
    from rekfeedback_local.emulator.cli import run

    return run(args)


def _synth_arguments(parser: argparse.ArgumentParser) -> None:
    from rekfeedback_local.synthetic import KINDS, LABELS

    parser.add_argument("--bucket", required=True, help="target S3 bucket (created when missing)")
    parser.add_argument("--prefix", default="synthetic", help="S3 key prefix (default: synthetic)")
    parser.add_argument("--n", type=int, default=60, help="unlabelled pool images (default: 60)")
    parser.add_argument("--seed", type=int, default=7, help="random seed; the same seed gives the same objects")
    parser.add_argument("--n-seed", type=int, default=8, help="images in the labelled seed manifest (default: 8)")
    parser.add_argument("--n-test", type=int, default=40, help="images in the held-out test manifest (default: 40)")
    parser.add_argument("--kind", choices=KINDS, default="detection", help="manifest format (default: detection)")
    parser.add_argument("--labels", default=",".join(LABELS), help=f"comma-separated subset of {','.join(LABELS)}")
    parser.add_argument("--no-bad-files", action="store_true", help="skip the corrupt and non-image objects")
    parser.add_argument("--endpoint-url", default=None, help="override AWS_ENDPOINT_URL")
    parser.add_argument("--region", default=None, help="override the AWS region")


@subcommand("synth", "generate synthetic images with known truth and a seed manifest in S3", _synth_arguments)
def _synth(args: argparse.Namespace) -> int:
    import boto3

    from rekfeedback_local import synthetic

    s3 = boto3.client("s3", endpoint_url=args.endpoint_url, region_name=args.region)
    labels = tuple(label.strip() for label in args.labels.split(",") if label.strip())
    try:
        summary = synthetic.generate(s3, args.bucket, args.prefix, n=args.n, seed=args.seed, n_seed=args.n_seed,
                                     n_test=args.n_test, kind=args.kind, labels=labels, bad_files=not args.no_bad_files)
    except ValueError as exc:
        print(f"rekfeedback-local synth: {exc}", file=sys.stderr)
        return 2
    summary.pop("image_keys")  # the keys are in S3 and in truth.jsonl; keep the console output short
    print(json.dumps(summary, indent=2))
    return 0


def _annotate_arguments(parser: argparse.ArgumentParser) -> None:
    from rekfeedback_local.annotator import add_arguments

    add_arguments(parser)


@subcommand("labelstudio-annotate", "answer a Label Studio project's tasks with a simulated annotator "
                                    "(oracle/accept-all/reject-all)", _annotate_arguments)
def _labelstudio_annotate(args: argparse.Namespace) -> int:
    from rekfeedback_local.annotator import run

    return run(args)


def _seed_local_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--endpoint-url", required=True, help="the emulator, e.g. http://emulator:4566")
    parser.add_argument("--region", default="us-east-1")
    parser.add_argument("--images", type=int, default=60, help="synthetic images in the input prefix")
    parser.add_argument("--airflow", action="store_true",
                        help="also store the aws_default connection (endpoint = the emulator) and the DAG's "
                             "default Variables in Airflow's database, through the airflow CLI")


@subcommand("seed-local", "provision a whole local setup on the emulator (bucket, images, role, Lambdas, work "
                          "team, model version 1) and print the DAG settings", _seed_local_arguments)
def _seed_local(args: argparse.Namespace) -> int:
    import os
    import time

    from rekfeedback_local.local_setup import provision

    os.environ.setdefault("AWS_ACCESS_KEY_ID", "testing")
    os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "testing")
    for attempt in range(60):  # the emulator container may still be starting
        try:
            setup = provision(args.endpoint_url, region=args.region, n_images=args.images, log=print)
            break
        except Exception as exc:  # noqa: BLE001 - connection errors of any kind while it starts
            if attempt == 59:
                print(f"rekfeedback-local seed-local: {exc}", file=sys.stderr)
                return 1
            time.sleep(2)
    print(json.dumps(setup["config"], indent=2))
    if args.airflow:
        store_in_airflow(args.endpoint_url, args.region, setup["config"])
        print("stored connection aws_default and Variables rekfeedback_* in Airflow")
    return 0


def store_in_airflow(endpoint_url: str, region: str, settings: dict) -> None:
    """The aws_default connection and the Variables rekfeedback_*, in two `airflow ... import` calls."""
    import subprocess
    import tempfile
    from pathlib import Path

    # The emulator's dummy credentials go into the connection itself: a real deployment's workers have no
    # AWS_ACCESS_KEY_ID in their environment, and without them every preflight check fails to sign.
    connection = {"conn_type": "aws", "login": "testing", "password": "testing",
                  "extra": {"endpoint_url": endpoint_url, "region_name": region}}
    with tempfile.TemporaryDirectory(prefix="rekfeedback-seed-") as tmp:
        connections, variables = Path(tmp) / "connections.json", Path(tmp) / "variables.json"
        connections.write_text(json.dumps({"aws_default": connection}))
        variables.write_text(json.dumps({f"rekfeedback_{name}": str(value) for name, value in settings.items()}))
        subprocess.run(["airflow", "connections", "import", "--overwrite", str(connections)], check=True)
        subprocess.run(["airflow", "variables", "import", str(variables)], check=True)


def _demo_arguments(parser: argparse.ArgumentParser) -> None:
    from rekfeedback_local.demo import add_arguments

    add_arguments(parser)


@subcommand("demo", "run turns of the loop on the emulator with dag.test() (what `make demo` runs)", _demo_arguments)
def _demo(args: argparse.Namespace) -> int:
    from rekfeedback_local.demo import run

    return run(args)


def main(argv: list[str] | None = None) -> int:
    return provider_cli.main(argv, SUBCOMMANDS, "rekfeedback-local",
                             "Local tooling for rekfeedback: emulator, synthetic data, local set-up, demo.")


if __name__ == "__main__":
    sys.exit(main())
