"""Templated operator arguments read back as the type the operator needs, with one rule for all.

A templated field arrives as the native object (the DAG renders with `render_template_as_native_obj`),
or as text when a DAG renders templates as strings: "True", "3", "0.5", "None", a JSON object or a
Python repr of a dict or list (what `{{ ti.xcom_pull(...) }}` renders to). Blank, "None" and None mean
"not given". A value of the wrong kind raises ValueError naming the argument and what it must be.
"""

from __future__ import annotations

import ast
import json
from collections.abc import Mapping
from typing import Any

_TRUE = frozenset({"true", "1", "yes", "on"})
_FALSE = frozenset({"false", "0", "no", "off", "none"})


def is_blank(value: Any) -> bool:
    """Not given: None, blank text or the text "None" (a template that rendered None)."""
    return value is None or (isinstance(value, str) and value.strip() in ("", "None"))


def as_bool(value: Any, name: str, default: bool | None = None) -> bool | None:
    if isinstance(value, bool):
        return value
    if value is None or (isinstance(value, str) and not value.strip()):
        return default
    text = str(value).strip().lower()
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    raise ValueError(f"{name} must be a boolean (or a template rendering to True/False), got {value!r}")


def _number(value: Any, name: str, kind: type, default, minimum, maximum):
    if is_blank(value):
        return default
    if isinstance(value, bool):
        raise ValueError(f"{name} must be a number, got {value!r}")
    try:
        number = kind(value.strip() if isinstance(value, str) else value)
    except (TypeError, ValueError) as err:
        raise ValueError(f"{name} must be {'an integer' if kind is int else 'a number'}, got {value!r}") from err
    if (minimum is not None and number < minimum) or (maximum is not None and number > maximum):
        bounds = f"at least {minimum}" if maximum is None else (
            f"at most {maximum}" if minimum is None else f"from {minimum} to {maximum}")
        raise ValueError(f"{name} must be {bounds}, got {value!r}")
    return number


def as_int(value: Any, name: str, default: int | None = None, *, minimum: int | None = None,
           maximum: int | None = None) -> int | None:
    return _number(value, name, int, default, minimum, maximum)


def as_float(value: Any, name: str, default: float | None = None, *, minimum: float | None = None,
             maximum: float | None = None) -> float | None:
    return _number(value, name, float, default, minimum, maximum)


def _parse_text(text: str, name: str, what: str):
    try:
        return json.loads(text)
    except ValueError:
        try:
            return ast.literal_eval(text)  # a dict or list rendered as its Python repr
        except (ValueError, SyntaxError) as err:
            raise ValueError(f"{name} must be {what} or its JSON text, got {text[:200]!r}") from err


def as_dict(value: Any, name: str) -> dict | None:
    """A dict (or ParamsDict, or its JSON / Python-repr text); None when not given."""
    if is_blank(value):
        return None
    if hasattr(value, "dump"):  # ParamsDict
        value = value.dump()
    if isinstance(value, str):
        value = _parse_text(value.strip(), name, "a dict")
    if not isinstance(value, Mapping):
        raise ValueError(f"{name} must be a dict or its JSON text, got {type(value).__name__}")
    return dict(value)


def _items(value: Any, name: str) -> list:
    """The items of a list argument: a list, a list rendered to text ("['a', 'b']"), or one text."""
    if is_blank(value):
        return []
    if isinstance(value, str):
        text = value.strip()
        if not text.startswith("["):
            return [text]
        value = _parse_text(text, name, "a list")
        if not isinstance(value, list):
            raise ValueError(f"{name} must be a list or one text, got {text[:200]!r}")
    if isinstance(value, Mapping) or not hasattr(value, "__iter__"):
        raise ValueError(f"{name} must be a list or one text, got {type(value).__name__}")
    return list(value)


def as_list(value: Any, name: str) -> list:
    """A list of texts (see `_items`); [] when not given."""
    return [str(v) for v in _items(value, name) if not is_blank(v)]


# Where an upstream task's whole XCom (a sensor's or review operator's dict) names its file.
URI_KEYS = ("answers_uri", "auto_accepted_uri", "unlabelled_uri", "uri")


def as_uri_list(value: Any, name: str) -> list[str]:
    """S3 URIs as `as_list` reads them; an item may also be an upstream task's whole XCom (its file is the first
    of URI_KEYS it has) or a nested list (a lazy XCom sequence). Blank items (a skipped branch) are dropped."""
    uris: list[str] = []
    for item in _items(value, name):
        if is_blank(item):
            continue
        if isinstance(item, Mapping):
            found = [item[k] for k in URI_KEYS if item.get(k)]
            if not found:
                raise ValueError(f"{name} item {dict(item)!r} has no {'/'.join(URI_KEYS)} key")
            uris.append(str(found[0]))
        elif isinstance(item, (list, tuple)):
            uris.extend(as_uri_list(list(item), name))
        else:
            uris.append(str(item).strip())
    return uris
