"""The embedded benchmark: a fictitious world, its MUSE-layout corpus and tiny Llama models
trained on it offline (see docs/benchmark.md). Importing this package is torch-free; training
imports torch when it runs."""
from __future__ import annotations

from .build import ensure_data, ensure_model, preset_dir
from .names import BUILTIN_MODELS, MODEL_KINDS, PRESETS
from .presets import BENCH_VERSION, get_preset

__all__ = ["BENCH_VERSION", "BUILTIN_MODELS", "MODEL_KINDS", "PRESETS", "ensure_data",
           "ensure_model", "get_preset", "preset_dir"]
