"""torch imported on first use (or not at all), for the modules a fully cached run imports
only to read a version: the engine's cache keys load each unlearning method and transform
for its `VERSION` (and a transform's `uses`), and a warm main job that imported torch for
that spent most of its time (3.2 s of 5.4 s, measured with -X importtime) on the import.

`from ..lazy import torch` gives a stand-in whose first attribute access imports torch;
`@no_grad` is `@torch.no_grad()` without touching torch at definition time.
"""
from __future__ import annotations

import functools
import importlib
from typing import Any, Callable


class LazyModule:
    """The module `name`, imported when an attribute is first read (then cached here)."""

    def __init__(self, name: str) -> None:
        object.__setattr__(self, "_name", name)

    def __getattr__(self, attr: str) -> Any:
        value = getattr(importlib.import_module(object.__getattribute__(self, "_name")), attr)
        object.__setattr__(self, attr, value)
        return value

    def __repr__(self) -> str:
        return f"<lazily imported module {object.__getattribute__(self, '_name')!r}>"


torch: Any = LazyModule("torch")


def no_grad(fn: Callable[..., Any]) -> Callable[..., Any]:
    """`fn` run under torch.no_grad(), torch imported at the first call."""
    @functools.wraps(fn)
    def run(*args: Any, **kwargs: Any) -> Any:
        import torch as real

        with real.no_grad():
            return fn(*args, **kwargs)
    return run


def cuda_available() -> bool:
    """torch.cuda.is_available(), without importing torch when the installed wheel is a CPU
    build (its version ends in '+cpu', as the one this project pins): such a build cannot
    see a GPU, and `device: auto` on a fully cached run should not cost torch's import."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        if version("torch").endswith("+cpu"):
            return False
    except PackageNotFoundError:
        pass
    import torch as real

    return bool(real.cuda.is_available())
