"""A JSON Schema (draft 2020-12) for spec files, generated from the registries.

For editors: point yaml-language-server at it (`# yaml-language-server: $schema=...`) to get
completion and checks while typing. It is generated from the same config dataclasses the
loader uses, so third-party methods, transforms and metrics appear once installed. The
loader stays the authority: it also checks references between entries, cycles and claims,
which a schema cannot express.
"""
from __future__ import annotations

import dataclasses
from typing import Any

from ..bench.names import BUILTIN_DATA, BUILTIN_MODELS
from .claim_entries import AGGREGATES
from .claim_syntax import NAME_RE
from .claims import RESERVED
from .sources import DEVICE_MAPS, MODEL_DTYPES
from .tree import SPEC_VERSION, Settings
from .options import field_default, field_hints, is_missing, json_schema

DIALECT = "https://json-schema.org/draft/2020-12/schema"


def spec_json_schema() -> dict[str, Any]:
    """The schema as a JSON-able dict."""
    from ..metrics.registry import METRICS
    from ..transforms.registry import TRANSFORMS
    from ..unlearn.registry import METHODS

    return {
        "$schema": DIALECT,
        "title": "unlearnspec spec",
        "type": "object",
        "additionalProperties": False,
        "required": ["version"],
        "properties": {
            "version": {"const": SPEC_VERSION, "description": "spec format version"},
            "seed": {"type": "integer", "minimum": 0, "default": 0},
            "settings": _options_object(Settings),
            "data": _named("#/$defs/data"),
            "models": _named("#/$defs/model"),
            "transforms": _named("#/$defs/transform", reserved=("fp",),
                                 alternative="#/$defs/chain"),
            "metrics": _named("#/$defs/metric"),
            "claims": {"type": "array", "items": {"$ref": "#/$defs/claim"}},
        },
        "$defs": {
            "data": _data(),
            "model": _model(METHODS),
            "transform": _by_kind(TRANSFORMS, "kind"),
            "chain": _CHAIN,
            "metric": _by_kind(METRICS, "kind", extra=_metric_data),
            "claim": _claim(),
        },
    }


# `{chain: [rel50, rtn4]}`: other transforms of the spec, applied in order
_CHAIN = {"type": "object", "required": ["chain"], "additionalProperties": False,
          "description": "transforms of this spec applied in order, one name in a claim",
          "properties": {"chain": {"type": "array", "minItems": 1,
                                   "items": {"type": "string"}}}}


def _named(ref: str, reserved: tuple[str, ...] = (), alternative: str | None = None
           ) -> dict[str, Any]:
    names: dict[str, Any] = {"pattern": f"^{NAME_RE.pattern}$"}
    names["not"] = {"enum": sorted(set(RESERVED) | set(reserved))}
    entry: dict[str, Any] = {"$ref": ref}
    if alternative:
        entry = {"oneOf": [entry, {"$ref": alternative}]}
    return {"type": "object", "propertyNames": names, "additionalProperties": entry}


def _doc(cls: type) -> str:
    doc = cls.__doc__ or ""
    if doc.startswith(f"{cls.__name__}("):  # dataclass's generated signature, not a doc
        return ""
    return " ".join(doc.split("\n\n")[0].split())


def _properties(cls: type) -> dict[str, Any]:
    props = {}
    for name, hint in field_hints(cls).items():
        prop = json_schema(hint)
        default = field_default(cls, name)
        if not is_missing(default) and _jsonable(default):
            prop["default"] = default
        props[name] = prop
    return props


def _jsonable(value: Any) -> bool:
    return value is None or isinstance(value, (bool, int, float, str))


def _options_object(cls: type, **extra_props: Any) -> dict[str, Any]:
    out: dict[str, Any] = {
        "type": "object",
        "properties": {**extra_props, **_properties(cls)},
        "additionalProperties": False,
    }
    required = [f.name for f in dataclasses.fields(cls) if f.init and is_missing(
        field_default(cls, f.name))]
    if required:
        out["required"] = required
    if doc := _doc(cls):
        out["description"] = doc
    return out


def _by_kind(registry: Any, key: str, extra: Any = None, required: tuple[str, ...] = ()
             ) -> dict[str, Any]:
    """`{key: <enum>}` plus, for each component, `if key == name then its options`."""
    branches = []
    for comp in registry:
        props = {key: {"const": comp.name}, **(extra(comp) if extra else {})}
        then = _options_object(comp.config, **props)
        if comp.doc and "description" not in then:
            then["description"] = comp.doc
        branches.append({"if": {"properties": {key: {"const": comp.name}}, "required": [key]},
                         "then": then})
    return {
        "type": "object",
        "required": [key, *required],
        "properties": {key: {"enum": registry.names()}},
        "allOf": branches,
    }


def _metric_data(comp: Any) -> dict[str, Any]:
    if "data" in comp.tags:
        return {"data": {"type": "string", "description": "a data entry (default: the only one)"}}
    return {}


def _data() -> dict[str, Any]:
    return {"oneOf": [
        {"type": "object", "additionalProperties": False, "required": ["builtin"],
         "properties": {"builtin": {"enum": list(BUILTIN_DATA)}}},
        {"type": "object", "additionalProperties": False, "required": ["path"],
         "properties": {"path": {"type": "string", "minLength": 1},
                        "revision": {"type": "string"}}},
    ]}


def _model(methods: Any) -> dict[str, Any]:
    unlearn = _by_kind(methods, "unlearn", required=("from",),
                       extra=lambda comp: {"from": {"type": "string"},
                                           "data": {"type": "string"},
                                           "seeds": {"type": "array", "minItems": 1,
                                                     "uniqueItems": True,
                                                     "items": {"type": "integer",
                                                               "minimum": 0}}})
    return {"oneOf": [
        {"type": "object", "additionalProperties": False, "required": ["builtin"],
         "properties": {"builtin": {"enum": list(BUILTIN_MODELS)}}},
        {"type": "object", "additionalProperties": False, "required": ["path"],
         "properties": {"path": {"type": "string", "minLength": 1},
                        "revision": {"type": "string"},
                        "allow_pickle": {"type": "boolean", "default": False},
                        "trust_remote_code": {"type": "boolean", "default": False},
                        "dtype": {"enum": list(MODEL_DTYPES)},
                        "device_map": {"enum": list(DEVICE_MAPS)},
                        "tokenizer": {"type": "string", "minLength": 1}}},
        unlearn,
    ]}


def _claim() -> dict[str, Any]:
    return {
        "type": "object",
        "additionalProperties": False,
        "required": ["name", "subjects", "assert"],
        "properties": {
            "name": {"type": "string", "minLength": 1},
            "subjects": {"type": "array", "minItems": 1, "uniqueItems": True,
                         "items": {"type": "string"}},
            "assert": {"type": "string", "minLength": 1,
                       "description": "e.g. knowmem_forget @ rtn4 <= retrain + 5"},
            "xfail": {"type": "string", "minLength": 1},
            "aggregate": {"enum": list(AGGREGATES),
                          "description": "over a seeded subject: every seed must hold, or "
                                         "the claim on the seeds' mean/median"},
            "confidence": {"anyOf": [
                {"type": "number", "minimum": 0.5, "exclusiveMaximum": 1},
                {"enum": [False, None]}],
                "description": "decide on a paired-bootstrap interval at this level "
                               "(pass / fail / inconclusive); false: on the point estimate"},
        },
    }
