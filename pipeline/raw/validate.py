"""Checks shared by the readers: value types, text that cannot be stored, and the profile's row limits.

Each check returns None for a good value or the quarantine reason ("<kind>: <details>"); the kinds
are the ones the stats count: bad type, bad text, too long, missing field.
"""
from __future__ import annotations

import re
from typing import Any

_SURROGATE = re.compile("[\ud800-\udfff]")
_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F][0-9a-fA-F]{2}")

_TYPE_NAMES = {dict: "object", list: "list", str: "string", bool: "bool", int: "int", float: "float",
               type(None): "null", bytes: "bytes"}


def type_name(value: Any) -> str:
    return _TYPE_NAMES.get(type(value), type(value).__name__)


def has_surrogate(text: str) -> bool:
    return _SURROGATE.search(text) is not None


def may_hold_surrogate(json_text: str) -> bool:
    """Whether JSON text has an escape that decodes to a surrogate ("\\ud800"): only then can its
    parsed value hold a lone one (the text itself was decoded strictly)."""
    return _SURROGATE_ESCAPE.search(json_text) is not None


def text_problem(row: Any) -> str | None:
    """Where a row holds text that cannot be written as UTF-8 (a lone surrogate, which JSON's "\\ud800"
    escape can produce), or None; walked without recursion, keys included."""
    stack: list[tuple[Any, str]] = [(row, "")]
    while stack:
        value, where = stack.pop()
        if isinstance(value, str):
            if has_surrogate(value):
                return f"bad text: lone surrogate in {where or 'the row'} (not storable as UTF-8)"
        elif isinstance(value, dict):
            for k, v in value.items():
                key = k if isinstance(k, str) else str(k)
                if has_surrogate(key):
                    return f"bad text: lone surrogate in a key of {where or 'the row'} (not storable as UTF-8)"
                stack.append((v, f"{where}.{key}" if where else key))
        elif isinstance(value, list):
            stack.extend((v, f"{where}[{i}]") for i, v in enumerate(value))
    return None


def string_field(row: dict, name: str, *, required: bool = True, limit: int | None = None,
                 limit_key: str = "raw_limits.max_field_chars") -> str | None:
    """A field that must be a string (absent or null counts as missing when `required`), at most
    `limit` characters."""
    value = row.get(name)
    if value is None or value == "":
        return f"missing field: {name!r} is empty or absent" if required else None
    if not isinstance(value, str):
        return f"bad type: {name!r} must be a string, got {type_name(value)}"
    if limit is not None and len(value) > limit:
        return f"too long: {name!r} has {len(value)} characters (limit {limit}, {limit_key})"
    return None
