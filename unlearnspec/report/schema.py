"""The JSON Schema (draft 2020-12) of a run report, `schema_version` 1.

Published so dashboards can validate what they read; docs/report.md describes every field.
Objects that carry user or component configuration (model configs, metric details) are open;
the report's own structure is closed, so a renamed field fails validation instead of going
unnoticed.
"""
from __future__ import annotations

from typing import Any

_NUMBER = {"oneOf": [{"type": "number"}, {"enum": ["nan", "inf", "-inf"]}],
           "description": "a number; non-finite values are the strings nan, inf, -inf"}
_OPEN = {"type": "object"}
_STR_OR_NULL = {"type": ["string", "null"]}

_RESULT = {
    "type": "object",
    "required": ["value", "n", "per_sample", "details"],
    "additionalProperties": False,
    "properties": {
        "value": _NUMBER,
        "n": {"type": "integer", "minimum": 0},
        "per_sample": {"type": "array", "items": _NUMBER},
        "details": _OPEN,
    },
}

_MEASUREMENT = {
    "type": "object",
    "required": ["metric", "kind", "model", "transform", "key", "result"],
    "additionalProperties": False,
    "properties": {
        "metric": {"type": "string"}, "kind": {"type": "string"},
        "model": {"type": "string"}, "transform": {"type": "string"},
        "key": {"type": "string"}, "result": _RESULT,
        # what makes two runs' values comparable (kind, options, data): see engine/measuring.py
        "identity": {"type": "string"},
        # relearning transforms (data: forget_holdout) whose held-out QA pairs were left out
        "without_holdout_of": {"type": "array", "items": {"type": "string"}},
        # weights per role the transform selected and changed; null at full precision
        "coverage": {"type": ["object", "null"],
                     "required": ["source", "decoder", "roles", "untouched"],
                     "properties": {
                         "source": {"enum": ["model", "stream"]},
                         "decoder": {"type": "object",
                                     "required": ["weights", "selected", "changed", "on_grid",
                                                  "share"]},
                         "roles": {"type": "object", "additionalProperties": {
                             "type": "object",
                             "required": ["weights", "selected", "changed", "on_grid"]}},
                         "untouched": {"type": "array", "items": {"type": "string"}}}},
    },
}

_MODEL = {
    "type": "object",
    "required": ["key", "source"],
    "properties": {
        "key": {"type": "string"},
        "source": {"type": "string"},
        "builtin": _STR_OR_NULL, "path": _STR_OR_NULL, "revision": _STR_OR_NULL,
        "resolved_revision": _STR_OR_NULL,  # the hub commit a `path:` model was loaded at
        "method": _STR_OR_NULL, "from": _STR_OR_NULL,
        "config": {"type": ["object", "null"]},
        "log": {"type": ["object", "null"]},
    },
}

_TRANSFORM = {
    "type": "object",
    "required": ["kind", "config", "bits"],
    "additionalProperties": False,
    "properties": {
        "kind": {"type": "string"},
        "config": {"type": ["object", "null"]},
        "bits": {"type": ["integer", "null"]},
        # the backend's full settings (bnb: its BitsAndBytesConfig), null where it has none
        "settings": {"type": ["object", "null"]},
    },
}

_VERDICT = {
    "type": ["object", "null"],
    "required": ["passed", "lhs", "rhs", "margin", "explanation"],
    "properties": {
        "passed": {"type": "boolean"},
        # pass / fail / inconclusive; decided on `interval` when the claim has `confidence:`
        "outcome": {"enum": ["pass", "fail", "inconclusive"]},
        "lhs": _NUMBER, "rhs": _NUMBER, "margin": _NUMBER,
        "explanation": {"type": "string"},
        "interval": {"type": ["object", "null"],
                     "required": ["low", "high", "confidence", "replicates", "samples"],
                     "properties": {"low": _NUMBER, "high": _NUMBER,
                                    "confidence": {"type": "number"},
                                    "replicates": {"type": "integer"},
                                    "samples": {"type": "string"}}},
        # a seeded subject: each seed's verdict (same fields, plus `seed` and `model`)
        "seeds": {"type": ["array", "null"], "items": {"type": "object"}},
        "aggregate": {"type": ["string", "null"]},
    },
}

_COUNTS = {"type": "object", "additionalProperties": {"type": "integer", "minimum": 0}}

_CLAIM = {
    "type": "object",
    "required": ["nodeid", "outcome", "status", "claim", "subject", "assert", "spec", "line",
                 "xfail", "verdict", "cells", "terms", "counts"],
    "additionalProperties": False,
    "properties": {
        "nodeid": {"type": "string"},
        "outcome": {"enum": ["passed", "failed", "xfailed", "xpassed", None]},
        "status": {"enum": ["pass", "fail", "inconclusive", "error", "xfail", "xpass"]},
        "claim": {"type": "string"}, "subject": {"type": "string"},
        "assert": {"type": "string"}, "spec": {"type": "string"},
        "line": {"type": ["integer", "null"]},
        "xfail": _STR_OR_NULL,
        "verdict": _VERDICT,
        "cells": {"type": "array", "items": {"type": "string"}},
        "terms": {"type": "array", "items": {"type": "string"}},
        "counts": _COUNTS,
    },
}

_PACKAGES = {
    "type": "object",
    "required": ["unlearnspec", "torch", "transformers", "tokenizers", "bitsandbytes", "python"],
    "additionalProperties": _STR_OR_NULL,
}

_ENVIRONMENT = {
    "type": "object",
    "required": ["platform", "cpu_count", "cuda_devices"],
    "properties": {
        "platform": {"type": "string"}, "machine": {"type": "string"},
        "python_implementation": {"type": "string"},
        "cpu_count": {"type": ["integer", "null"]},
        "cuda_devices": {"type": ["array", "null"], "items": {"type": "string"}},
        "cpu": _STR_OR_NULL, "cpu_kernels": _STR_OR_NULL,
    },
}

_SHARD = {
    "type": "object",
    "required": ["source", "started", "finished"],
    "properties": {
        "source": {"type": "string"}, "started": _STR_OR_NULL, "finished": _STR_OR_NULL,
        "packages": {"type": ["object", "null"]}, "environment": {"type": ["object", "null"]},
        "extra": _OPEN,
    },
}

REPORT_SCHEMA: dict[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "$id": "https://unlearnspec.dev/schemas/run-report-1.json",
    "title": "unlearnspec run report",
    "type": "object",
    "required": ["schema_version", "tool", "started", "finished", "specs", "packages",
                 "environment", "models", "transforms", "measurements", "claims", "summary",
                 "extra"],
    "additionalProperties": False,
    "properties": {
        "schema_version": {"const": 1},
        "tool": {"const": "unlearnspec"},
        "started": {"type": "string", "description": "ISO 8601, UTC"},
        "finished": {"type": "string", "description": "ISO 8601, UTC"},
        "specs": {"type": "array", "items": {
            "type": "object", "required": ["path", "sha256"], "additionalProperties": False,
            "properties": {"path": {"type": "string"},
                           "sha256": {"type": ["string", "null"],
                                      "pattern": "^[0-9a-f]{64}$"}}}},
        "packages": _PACKAGES,
        "environment": _ENVIRONMENT,
        "models": {"type": "object", "additionalProperties": _MODEL},
        "transforms": {"type": "object", "additionalProperties": _TRANSFORM},
        "measurements": {"type": "object", "additionalProperties": _MEASUREMENT},
        "claims": {"type": "array", "items": _CLAIM},
        "summary": {
            "type": "object", "required": ["claims", "outcomes", "statuses", "work"],
            "additionalProperties": False,
            "properties": {
                "claims": {"type": "integer", "minimum": 0},
                "outcomes": _COUNTS, "statuses": _COUNTS, "work": _COUNTS,
            },
        },
        "extra": _OPEN,
        "shards": {"type": "array", "items": _SHARD},
    },
}
