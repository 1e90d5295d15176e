"""Spec files: schema, claim language, loader with line numbers.

Torch-free: the plugin imports this at collection time.
"""
from __future__ import annotations

from .claims import ClaimScope, parse_claim
from .evaluate import ClaimNotComputable, Verdict, evaluate_claim, format_ref
from .loader import load_spec, load_spec_text
from .schema import spec_json_schema

__all__ = [
    "ClaimNotComputable",
    "ClaimScope",
    "Verdict",
    "evaluate_claim",
    "format_ref",
    "load_spec",
    "load_spec_text",
    "parse_claim",
    "spec_json_schema",
]
