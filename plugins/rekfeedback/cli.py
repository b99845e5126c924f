"""The `rekfeedback` console command. Each subcommand registers itself in `SUBCOMMANDS`.

    rekfeedback synth --bucket my-bucket --prefix synthetic --n 200 --seed 7

Subcommands talk to AWS through boto3's normal configuration (AWS_ENDPOINT_URL, credentials, region),
so the same command works against the local emulator and a real account.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Callable

# name -> (add its arguments to a subparser, run it with the parsed args and return an exit code)
SUBCOMMANDS: dict[str, tuple[str, Callable[[argparse.ArgumentParser], None], Callable[[argparse.Namespace], int]]] = {}


def subcommand(name: str, help_text: str, configure: Callable[[argparse.ArgumentParser], None]):
    def register(run: Callable[[argparse.Namespace], int]):
        SUBCOMMANDS[name] = (help_text, configure, run)
        return run
    return register


def _synth_arguments(parser: argparse.ArgumentParser) -> None:
    from rekfeedback.synthetic import KINDS, LABELS

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

    from rekfeedback import synthetic

    s3 = boto3.client("s3", endpoint_url=args.endpoint_url, region_name=args.region)
    labels = tuple(label.strip() for label in args.labels.split(",") if label.strip())
    try:
        summary = synthetic.generate(s3, args.bucket, args.prefix, n=args.n, seed=args.seed, n_seed=args.n_seed,
                                     n_test=args.n_test, kind=args.kind, labels=labels, bad_files=not args.no_bad_files)
    except ValueError as exc:
        print(f"rekfeedback synth: {exc}", file=sys.stderr)
        return 2
    summary.pop("image_keys")  # the keys are in S3 and in truth.jsonl; keep the console output short
    print(json.dumps(summary, indent=2))
    return 0


# preflight: implemented in rekfeedback.preflight_cli (imported lazily to keep other subcommands quick).
def _preflight_arguments(parser: argparse.ArgumentParser) -> None:
    from rekfeedback.preflight_cli import add_arguments

    add_arguments(parser)


@subcommand("preflight", "check every resource a turn needs (model, S3, CORS, work team, role, Lambdas, "
                         "Label Studio) and list every problem; exit 1 on problems", _preflight_arguments)
def _preflight(args: argparse.Namespace) -> int:
    from rekfeedback.preflight_cli import run

    return run(args)


def _annotate_arguments(parser: argparse.ArgumentParser) -> None:
    from rekfeedback.labelstudio_annotator import add_arguments

    add_arguments(parser)


@subcommand("labelstudio-annotate", "answer a Label Studio project's tasks with a simulated annotator "
                                    "(oracle/accept-all/reject-all)", _annotate_arguments)
def _labelstudio_annotate(args: argparse.Namespace) -> int:
    from rekfeedback.labelstudio_annotator import run

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
    import subprocess
    import time

    from rekfeedback.local_setup import provision

    os.environ.setdefault("AWS_ACCESS_KEY_ID", "testing")
    os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "testing")
    for attempt in range(60):  # the emulator container may still be starting
        try:
            setup = provision(args.endpoint_url, region=args.region, n_images=args.images, log=print)
            break
        except Exception as exc:  # noqa: BLE001 - connection errors of any kind while it starts
            if attempt == 59:
                print(f"rekfeedback seed-local: {exc}", file=sys.stderr)
                return 1
            time.sleep(2)
    print(json.dumps(setup["config"], indent=2))
    if args.airflow:
        conn = json.dumps({"conn_type": "aws", "extra": {"endpoint_url": args.endpoint_url,
                                                          "region_name": args.region}})
        subprocess.run(["airflow", "connections", "delete", "aws_default"], check=False, capture_output=True)
        subprocess.run(["airflow", "connections", "add", "aws_default", "--conn-json", conn], check=True)
        for name, value in setup["config"].items():
            subprocess.run(["airflow", "variables", "set", f"rekfeedback_{name}", str(value)], check=True)
        print("stored connection aws_default and Variables rekfeedback_* in Airflow")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="rekfeedback", description="Rekognition Custom Labels feedback-loop tools.")
    sub = parser.add_subparsers(dest="command", required=True)
    for name, (help_text, configure, _run) in SUBCOMMANDS.items():
        configure(sub.add_parser(name, help=help_text, description=help_text))
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return SUBCOMMANDS[args.command][2](args)


if __name__ == "__main__":
    sys.exit(main())
