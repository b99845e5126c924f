"""Lazy public exports for the provider's packages (hooks, operators, ...)."""

from __future__ import annotations

import importlib
from typing import Callable


def lazy_exports(package: str, modules: dict[str, str]) -> Callable[[str], object]:
    """A module `__getattr__` that imports `package.<module>` only when one of its classes is asked for,
    so importing one operator does not pull in every service's dependencies."""

    def __getattr__(name: str):
        if name in modules:
            return getattr(importlib.import_module(f"{package}.{modules[name]}"), name)
        raise AttributeError(f"module {package!r} has no attribute {name!r}")

    return __getattr__
