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
