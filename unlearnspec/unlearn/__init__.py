"""Unlearning: the methods a spec can name, one shared training loop, and SURE.

Importing this package stays torch-free (the registry and configs are read at collection
time); `run_unlearning`, `Method` and the losses are loaded on first attribute access.
"""
from __future__ import annotations

from typing import Any

from .registry import METHODS, KLRConfig, SureConfig, UnlearnConfig

_LAZY = {
    "run_unlearning": "unlearnspec.unlearn.train",
    "Method": "unlearnspec.unlearn.methods",
    "Batch": "unlearnspec.unlearn.data",
}

__all__ = ["METHODS", "KLRConfig", "SureConfig", "UnlearnConfig", *_LAZY]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'unlearnspec.unlearn' has no attribute {name!r}")
