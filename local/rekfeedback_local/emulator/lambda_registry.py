"""Which Python callable answers for a Lambda ARN of a labeling job (pre-annotation, annotation consolidation).

The emulator runs Lambda code in its own process. By default any ARN whose function name is
``rekfeedback-pre-annotation`` or ``rekfeedback-annotation-consolidation`` (any region, account or
qualifier) runs the project's handlers; tests and users register others by full ARN or function name.
Targets are callables, dotted paths ("package.module.function") or a handler file by path
("path/to/lambda_function.py:lambda_handler", so anyone's published Lambda code runs unchanged), imported on
first use so the emulator starts even when a handler module is missing. The `lambdas` knob routes function
names to such targets for a running server:

    rekfeedback-local emulator --lambdas "a2i-pre=samples/pre/lambda_function.py:lambda_handler;a2i-post=..."
"""

from __future__ import annotations

import importlib
import importlib.util
import threading
import uuid
from dataclasses import dataclass, field
from typing import Any, Callable, Union

from rekfeedback_local.emulator.gt_builtin import function_name

Handler = Callable[[dict, Any], Any]
Target = Union[Handler, str]

DEFAULTS: dict[str, str] = {
    "rekfeedback-pre-annotation": "rekfeedback.lambdas.pre_annotation.handler",
    "rekfeedback-annotation-consolidation": "rekfeedback.lambdas.consolidation.handler",
}


@dataclass
class LambdaContext:
    """The attributes of Lambda's context object that handlers commonly read."""

    function_name: str
    invoked_function_arn: str
    aws_request_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    function_version: str = "$LATEST"
    memory_limit_in_mb: int = 128

    def get_remaining_time_in_millis(self) -> int:
        return 300_000


class LambdaRegistry:
    def __init__(self, defaults: dict[str, Target] | None = None):
        self._lock = threading.Lock()
        self._targets: dict[str, Target] = dict(DEFAULTS if defaults is None else defaults)

    def register(self, arn_or_name: str, target: Target) -> None:
        """Route a full ARN, or every ARN with this function name, to ``target``."""
        with self._lock:
            self._targets[arn_or_name] = target

    def unregister(self, arn_or_name: str) -> None:
        with self._lock:
            self._targets.pop(arn_or_name, None)

    def resolve(self, arn: str) -> Handler:
        name = function_name(arn)
        with self._lock:
            target = self._targets.get(arn, self._targets.get(name))
        if target is None:
            raise LookupError(
                f"no handler registered for Lambda {arn}; register one with "
                f"rekfeedback_local.emulator.lambda_registry.REGISTRY.register({name!r}, callable)")
        if isinstance(target, str):
            try:
                target = _load(target)
            except (ImportError, AttributeError, OSError) as err:
                raise LookupError(f"handler {target} for Lambda {arn} cannot be imported: {err}") from err
        return target

    def invoke(self, arn: str, event: dict, routes: str = "") -> Any:
        """Call the handler for `arn`; `routes` (the `lambdas` knob) wins over what is registered."""
        name = function_name(arn)
        routed = parse_routes(routes)
        handler = _load(routed[name]) if name in routed else self.resolve(arn)
        return handler(event, LambdaContext(name, arn))


def parse_routes(text: str) -> dict[str, str]:
    """`name=target;name=target` -> {name: target}; a malformed entry is named in the error."""
    routes = {}
    for item in filter(None, (part.strip() for part in (text or "").split(";"))):
        name, sep, target = item.partition("=")
        if not sep or not name.strip() or not target.strip():
            raise ValueError(f"lambdas knob entry {item!r} must be function-name=target")
        routes[name.strip()] = target.strip()
    return routes


def _load(target: str) -> Handler:
    """A dotted path `package.module.function`, or a file `path/to/file.py:function` loaded as its own module."""
    if ":" in target and target.split(":", 1)[0].endswith(".py"):
        path, attr = target.rsplit(":", 1)
        spec = importlib.util.spec_from_file_location(f"_lambda_{uuid.uuid5(uuid.NAMESPACE_URL, path).hex}", path)
        if spec is None or spec.loader is None:
            raise ImportError(f"{path} is not a Python file")
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        return getattr(module, attr)
    module, _, attr = target.rpartition(".")
    return getattr(importlib.import_module(module), attr)


# The registry the emulator's server uses; tests register their own handlers here.
REGISTRY = LambdaRegistry()
