"""Option values checked against a component's config dataclass field types.

The registries' config classes check ranges in `__post_init__` but not types: `lr: fast`
would reach `self.lr > 0` and fail with a TypeError about `str` and `float`. Checking the
declared type first lets the loader say "option 'lr' must be a number" at the right line.
The same type reading drives the JSON Schema (`spec.schema`).

Numbers must be finite: no option means infinity or NaN, and `lr: .inf` would train into NaN
weights. One deliberate leniency: PyYAML reads `1e-5` (no dot) as a *string* (YAML 1.1), while every
user means a number; a string that parses as a float is accepted where a float is declared.
"""
from __future__ import annotations

import dataclasses
import math
import re
import types
import typing
from functools import lru_cache
from typing import Any, Literal, Union

_FLOAT_TEXT = re.compile(r"[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?")
_MISSING = object()


@lru_cache(maxsize=None)
def field_hints(cls: type) -> dict[str, Any]:
    """{field name: resolved type} for the init fields of a config dataclass. Hints that
    cannot be resolved become Any (checked by the class itself)."""
    try:
        hints = typing.get_type_hints(cls)
    except Exception:  # a third-party config with unresolvable annotations
        hints = {}
    return {f.name: hints.get(f.name, Any) for f in dataclasses.fields(cls) if f.init}


def field_default(cls: type, name: str) -> Any:
    """The field's default, or `_MISSING` (use `is_missing`)."""
    for f in dataclasses.fields(cls):
        if f.name == name:
            if f.default is not dataclasses.MISSING:
                return f.default
            if f.default_factory is not dataclasses.MISSING:
                return f.default_factory()
    return _MISSING


def is_missing(value: Any) -> bool:
    return value is _MISSING


def _members(hint: Any) -> tuple[Any, ...] | None:
    if typing.get_origin(hint) in (Union, types.UnionType):
        return typing.get_args(hint)
    return None


def coerce(value: Any, hint: Any) -> tuple[bool, Any]:
    """(conforms, value) for a YAML value against a type hint; bool is not an int here."""
    if hint is Any or hint is object:
        return True, value
    if hint is type(None) or hint is None:
        return value is None, value
    if (members := _members(hint)) is not None:
        for member in members:
            ok, out = coerce(value, member)
            if ok:
                return True, out
        return False, value
    if typing.get_origin(hint) is Literal:
        return any(type(value) is type(a) and value == a for a in typing.get_args(hint)), value
    if hint is bool:
        return isinstance(value, bool), value
    if hint is int:
        return isinstance(value, int) and not isinstance(value, bool), value
    if hint is float:  # finite only: `1e999` reads as inf and `10**400` overflows
        if isinstance(value, bool) or not isinstance(value, (int, float, str)):
            return False, value
        if isinstance(value, str) and not _FLOAT_TEXT.fullmatch(value.strip()):
            return False, value
        try:
            number = float(value)
        except OverflowError:
            return False, value
        return math.isfinite(number), number if math.isfinite(number) else value
    if hint is str:
        return isinstance(value, str), value
    return True, value  # a type we do not know: the config class checks it


def describe(hint: Any) -> str:
    """The type in words, for error messages: 'a number', "one of 'a', 'b'"."""
    if (members := _members(hint)) is not None:
        return " or ".join(describe(m) for m in members)
    if typing.get_origin(hint) is Literal:
        return "one of " + ", ".join(repr(a) for a in typing.get_args(hint))
    return {bool: "true or false", int: "an integer", float: "a number", str: "a string",
            type(None): "null"}.get(hint, "a value")


def literal_choices(hint: Any) -> list[str]:
    """Every string a Literal (possibly inside a Union) allows, for did-you-mean."""
    out: list[str] = []
    for member in _members(hint) or (hint,):
        if typing.get_origin(member) is Literal:
            out += [a for a in typing.get_args(member) if isinstance(a, str)]
    return out


def json_schema(hint: Any) -> dict[str, Any]:
    """The JSON Schema of one field type (Literal -> enum, X | None -> anyOf with null)."""
    if hint is Any or hint is object:
        return {}
    if (members := _members(hint)) is not None:
        return {"anyOf": [json_schema(m) for m in members]}
    if typing.get_origin(hint) is Literal:
        return {"enum": list(typing.get_args(hint))}
    simple = {bool: "boolean", int: "integer", float: "number", str: "string",
              type(None): "null"}
    return {"type": simple[hint]} if hint in simple else {}
