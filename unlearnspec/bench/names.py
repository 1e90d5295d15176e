"""Names of the embedded benchmark's models and corpora, usable as `builtin:` in a spec.

Torch-free so the spec loader can check names at collection time. `<preset>/<model>`:
presets are `tiny` (the README's benchmark) and `micro` (a smaller world and model for fast
tests); models are `target` and `retrain` (trained normally) and `target-qat` /
`retrain-qat` (decoder linear weights on the 4-bit grid, see `unlearnspec.bench`).
"""
from __future__ import annotations

PRESETS = ("tiny", "micro")
MODEL_KINDS = ("target", "retrain", "target-qat", "retrain-qat")
BUILTIN_DATA = PRESETS
BUILTIN_MODELS = tuple(f"{p}/{m}" for p in PRESETS for m in MODEL_KINDS)
