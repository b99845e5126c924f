"""Validate a JSON-protocol request against botocore's service model, the way AWS's front end does.

boto3's client-side ParamValidator already checks required members, types and minimums, but it skips
maximum lengths and regex patterns, and a client may disable it (`parameter_validation=False`) or not be
boto3 at all. AWS checks everything server side and answers `ValidationException` with a
"N validation error(s) detected: ..." message; we do the same so callers see the same ClientError.

`validate_request` also turns the wire form into Python values: blobs arrive base64-encoded and are
returned as bytes, so handlers never deal with the encoding.
"""

from __future__ import annotations

import base64
import binascii
import functools
import re
from typing import Any

import botocore.session

from .errors import ApiError

# AWS stops listing after a handful of problems; so do we (the count stays exact).
_MAX_LISTED = 10

# Java regex classes used in the models that Python's `re` lacks. The translations are deliberately
# a little permissive: an emulator that rejects what AWS accepts is worse than the reverse.
_CLASS_TRANSLATIONS = [
    (r"\p{Alnum}", r"a-zA-Z0-9"),
    (r"\p{L}", r"\w"),
    (r"\p{N}", r"\d"),
    (r"\p{Z}", r"\s"),
    (r"\p{M}", "\u0300-\u036f\u1ab0-\u1aff\u20d0-\u20ff\ufe20-\ufe2f"),
    (r"\p{P}", r"!-/:-@\[-`{-~\u00a1-\u00bf\u2010-\u2027\u3000-\u303f"),
    (r"\p{S}", r"$+<->^`|~\u00a2-\u00a9\u00ac-\u00b1\u2100-\u2bff"),
    # A Java surrogate-pair range means "any supplementary character".
    (r"\uD800\uDC00-\uDBFF\uDFFF", r"\U00010000-\U0010FFFF"),
]


@functools.lru_cache(maxsize=None)
def service_model(service: str):
    return botocore.session.get_session().get_service_model(service)


@functools.lru_cache(maxsize=4096)
def _compile(pattern: str) -> re.Pattern | None:
    translated = pattern
    for java, python in _CLASS_TRANSLATIONS:
        translated = translated.replace(java, python)
    try:
        return re.compile(translated)
    except re.error:
        # A pattern we cannot translate is skipped rather than guessed: better lenient than wrong.
        return None


def _camel(name: str) -> str:
    # AWS names members in lowerCamelCase in its validation messages ("at 'labelingJobName'").
    return name[:1].lower() + name[1:]


class _Checker:
    def __init__(self) -> None:
        self.problems: list[str] = []

    def fail(self, value: Any, path: str, constraint: str) -> None:
        shown = "null" if value is None else repr(value) if not isinstance(value, (bytes, bytearray)) else "<blob>"
        if isinstance(value, str):
            shown = f"'{value}'"
        self.problems.append(f"Value {shown} at '{path}' failed to satisfy constraint: {constraint}")

    def check(self, shape, value: Any, path: str) -> Any:
        kind = shape.type_name
        meta = shape.metadata
        if kind == "structure":
            return self._structure(shape, value, path)
        if kind == "list":
            if not isinstance(value, list):
                self.fail(value, path, "Member must be a list")
                return value
            self._length(value, path, meta, len(value), "length")
            return [self.check(shape.member, item, f"{path}.{i + 1}.member") for i, item in enumerate(value)]
        if kind == "map":
            if not isinstance(value, dict):
                self.fail(value, path, "Member must be a map")
                return value
            self._length(value, path, meta, len(value), "length")
            return {self.check(shape.key, k, f"{path}.key"): self.check(shape.value, v, f"{path}.value") for k, v in value.items()}
        if kind == "string":
            if not isinstance(value, str):
                self.fail(value, path, "Member must be a string")
                return value
            self._length(value, path, meta, len(value), "length")
            if shape.enum and value not in shape.enum:
                self.fail(value, path, f"Member must satisfy enum value set: [{', '.join(shape.enum)}]")
            pattern = meta.get("pattern")
            if pattern:
                compiled = _compile(pattern)
                if compiled is not None and not compiled.fullmatch(value):
                    self.fail(value, path, f"Member must satisfy regular expression pattern: {pattern}")
            return value
        if kind in ("integer", "long"):
            if isinstance(value, bool) or not isinstance(value, int):
                self.fail(value, path, "Member must be an integer")
                return value
            self._range(value, path, meta)
            return value
        if kind in ("float", "double"):
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                self.fail(value, path, "Member must be a number")
                return value
            self._range(value, path, meta)
            return float(value)
        if kind == "boolean":
            if not isinstance(value, bool):
                self.fail(value, path, "Member must be a boolean")
            return value
        if kind == "blob":
            if not isinstance(value, str):
                self.fail(value, path, "Member must be a base64-encoded blob")
                return value
            try:
                raw = base64.b64decode(value, validate=True)
            except (binascii.Error, ValueError):
                self.fail(value[:20], path, "Member must be valid base64")
                return value
            self._length(raw, path, meta, len(raw), "length")
            return raw
        if kind == "timestamp":
            if isinstance(value, bool) or not isinstance(value, (int, float, str)):
                self.fail(value, path, "Member must be a timestamp")
            return value
        return value

    def _structure(self, shape, value: Any, path: str) -> Any:
        if not isinstance(value, dict):
            self.fail(value, path, "Member must be a structure")
            return value
        out: dict[str, Any] = {}
        for name in shape.required_members:
            if value.get(name) is None:
                self.fail(None, f"{path}.{_camel(name)}" if path else _camel(name), "Member must not be null")
        for name, item in value.items():
            member = shape.members.get(name)
            if member is None:
                # AWS's JSON front end ignores unknown members (newer SDKs may send fields we don't model).
                out[name] = item
                continue
            if item is None:
                continue
            out[name] = self.check(member, item, f"{path}.{_camel(name)}" if path else _camel(name))
        if shape.metadata.get("union") and len([v for v in value.values() if v is not None]) != 1:
            self.fail(None, path or "input", "Member must have exactly one member set")
        return out

    def _length(self, value: Any, path: str, meta: dict, size: int, what: str) -> None:
        if "min" in meta and size < meta["min"]:
            self.fail(value, path, f"Member must have {what} greater than or equal to {meta['min']}")
        if "max" in meta and size > meta["max"]:
            self.fail(value, path, f"Member must have {what} less than or equal to {meta['max']}")

    def _range(self, value: Any, path: str, meta: dict) -> None:
        if "min" in meta and value < meta["min"]:
            self.fail(value, path, f"Member must have value greater than or equal to {meta['min']}")
        if "max" in meta and value > meta["max"]:
            self.fail(value, path, f"Member must have value less than or equal to {meta['max']}")


def validate_request(service: str, operation: str, params: Any) -> dict:
    """Return the params with blobs decoded, or raise ApiError(ValidationException) listing every violation."""
    op = service_model(service).operation_model(operation)
    if op.input_shape is None:
        return params or {}
    checker = _Checker()
    result = checker.check(op.input_shape, params if params is not None else {}, "")
    if checker.problems:
        count = len(checker.problems)
        noun = "error" if count == 1 else "errors"
        listed = "; ".join(checker.problems[:_MAX_LISTED])
        raise ApiError("ValidationException", f"{count} validation {noun} detected: {listed}")
    return result
