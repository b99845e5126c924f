"""The `rekfeedback` console command: what a deployment runs (today `preflight`).

    rekfeedback preflight --config turn.yaml

The local tooling (emulator, synthetic data, local set-up, demo, simulated annotator) has its own command,
`rekfeedback-local`, in the separate `rekfeedback-local` distribution; it reuses `subcommand`/`main` below.

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


def subcommand(name: str, help_text: str, configure: Callable[[argparse.ArgumentParser], None],
               registry: dict | None = None):
    def register(run: Callable[[argparse.Namespace], int]):
        (SUBCOMMANDS if registry is None else registry)[name] = (help_text, configure, run)
        return run
    return register


# preflight: implemented in rekfeedback.preflight_cli (imported lazily to keep other subcommands quick).
def _preflight_arguments(parser: argparse.ArgumentParser) -> None:
    from rekfeedback.preflight_cli import add_arguments

    add_arguments(parser)


@subcommand("preflight", "check every resource a turn needs (model, S3, CORS, work team, role, Lambdas, "
                         "Label Studio) and list every problem; exit 1 on problems", _preflight_arguments)
def _preflight(args: argparse.Namespace) -> int:
    from rekfeedback.preflight_cli import run

    return run(args)


def build_parser(subcommands: dict = SUBCOMMANDS, prog: str = "rekfeedback",
                 description: str = "Rekognition Custom Labels feedback loop: production commands.") -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=prog, description=description)
    sub = parser.add_subparsers(dest="command", required=True)
    for name, (help_text, configure, _run) in subcommands.items():
        configure(sub.add_parser(name, help=help_text, description=help_text))
    return parser


def main(argv: list[str] | None = None, subcommands: dict = SUBCOMMANDS, prog: str = "rekfeedback",
         description: str = "Rekognition Custom Labels feedback loop: production commands.") -> int:
    args = build_parser(subcommands, prog, description).parse_args(argv)
    return subcommands[args.command][2](args)


if __name__ == "__main__":
    sys.exit(main())
