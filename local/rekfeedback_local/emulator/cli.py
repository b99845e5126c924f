"""`rekfeedback-local emulator`: serve the local AWS stand-in, and `start_in_thread` for tests, demos and benchmarks.

Knobs come from, in increasing priority: EmulatorConfig defaults, REKFEEDBACK_EMULATOR_<KNOB> environment
variables, command-line flags (`--training-seconds 0.5`), and at run time POST /_rekfeedback/config.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import threading
from dataclasses import fields
from typing import Any

from .base import EmulatorConfig
from .server import EmulatorServer

ENV_PREFIX = "REKFEEDBACK_EMULATOR_"
DUMMY_KEY = "testing"


class EmulatorHandle:
    """A running in-process emulator: what the pytest fixture, the demo and the benchmarks hold."""

    def __init__(self, server: EmulatorServer) -> None:
        self._server = server
        self.endpoint_url = server.endpoint_url
        self.host, self.port = server.host, server.port
        self.env = server.env
        self.config: EmulatorConfig = server.env.config
        self.calls = server.env.calls  # Counter "Service.Operation" -> count
        self.errors = server.env.errors  # Counter "Service.Operation.ErrorCode" -> count
        self.answered = server.env.answered  # Counter image -> DetectCustomLabels answers (billed calls)
        self.region = server.env.region

    def reset_stats(self) -> None:
        self.env.reset_stats()

    def advance_clock(self, seconds: float) -> None:
        """Move the emulator's time on: a 30 s start finishes at once, with no test waiting for it."""
        self.env.advance_clock(seconds)

    def client_environment(self) -> dict[str, str]:
        return client_environment(self.endpoint_url, self.region)

    def stop(self) -> None:
        self._server.stop()

    def __enter__(self) -> "EmulatorHandle":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.stop()


def client_environment(endpoint_url: str, region: str = "us-east-1") -> dict[str, str]:
    return {
        "AWS_ENDPOINT_URL": endpoint_url,
        "AWS_ACCESS_KEY_ID": DUMMY_KEY,
        "AWS_SECRET_ACCESS_KEY": DUMMY_KEY,
        "AWS_DEFAULT_REGION": region,
    }


def config_from_environment(environ: dict[str, str] | None = None) -> EmulatorConfig:
    environ = os.environ if environ is None else environ
    config = EmulatorConfig()
    config.update({f.name: environ[ENV_PREFIX + f.name.upper()] for f in fields(EmulatorConfig)
                   if ENV_PREFIX + f.name.upper() in environ})
    return config


def start_in_thread(host: str = "127.0.0.1", port: int = 0, verbose: bool = False, **knobs: Any) -> EmulatorHandle:
    """Start the emulator on a background thread (port 0 picks a free port) and return its handle."""
    config = config_from_environment()
    config.update(knobs)
    server = EmulatorServer(host, port, config, verbose=verbose)
    server.start()
    return EmulatorHandle(server)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=5005, help="0 picks a free port (printed at start)")
    parser.add_argument("--verbose", action="store_true", help="log every request")
    knobs = parser.add_argument_group("knobs", f"also settable as {ENV_PREFIX}<KNOB> environment variables")
    for f in fields(EmulatorConfig):
        # Strings on the command line; EmulatorConfig.update casts them to the knob's type.
        knobs.add_argument(f"--{f.name.replace('_', '-')}", dest=f.name, default=None, metavar=type(f.default).__name__.upper()
                           if f.default is not None else "INT", help=f"default {f.default!r}")


def run(args: argparse.Namespace) -> int:
    try:
        config = config_from_environment()
        config.update({f.name: getattr(args, f.name) for f in fields(EmulatorConfig) if getattr(args, f.name) is not None})
    except (KeyError, ValueError) as exc:
        print(f"rekfeedback-local emulator: {exc}", file=sys.stderr)
        return 2
    try:
        server = EmulatorServer(args.host, args.port, config, verbose=args.verbose)
    except OSError as exc:
        print(f"rekfeedback-local emulator: cannot listen on {args.host}:{args.port}: {exc}", file=sys.stderr)
        return 1
    print("# rekfeedback emulator is serving; point clients at it with:")
    for key, value in client_environment(server.endpoint_url, server.env.region).items():
        print(f"export {key}={value}")
    print(f"# knobs: {server.endpoint_url}/_rekfeedback/config   stats: {server.endpoint_url}/_rekfeedback/stats")
    print("# Ctrl-C stops it.", flush=True)

    stopping = threading.Event()

    def stop(_signum, _frame):
        if not stopping.is_set():
            stopping.set()
            # shutdown() blocks until serve_forever returns, so it can't run on the serving thread.
            threading.Thread(target=server.stop, daemon=True).start()

    # SIGINT too, explicitly: a process started with SIGINT ignored (by a test runner's worker, nohup) gets
    # no KeyboardInterrupt from Python, and Ctrl-C must still stop it.
    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
