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


def split_model_name(name: str) -> tuple[str, str]:
    """'tiny/target-qat' -> ('tiny', 'target-qat'); anything else raises ValueError with a
    sentence that lists the valid names (callers wrap it in their own error type)."""
    preset, _, kind = name.partition("/")
    if preset not in PRESETS or kind not in MODEL_KINDS:
        import difflib

        close = difflib.get_close_matches(name, BUILTIN_MODELS, n=1, cutoff=0.6)
        hint = f"; did you mean '{close[0]}'?" if close else ""
        raise ValueError(f"unknown benchmark model '{name}': built-in models are "
                         f"'<preset>/<model>' with preset in {', '.join(PRESETS)} and model in "
                         f"{', '.join(MODEL_KINDS)}{hint}")
    return preset, kind
