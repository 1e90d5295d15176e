"""What every part of a run shares: the spec, the cache, the device, and the work counters.

The run's parts (sources.py, transforms.py, loaded.py, measuring.py, tokenizers.py) each take
this and the parts they build on, never the `Run` itself, so none of them imports run.py.
"""
from __future__ import annotations

import dataclasses
from collections import Counter
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ..spec.tree import Spec
    from .cache import Cache


class RunContext:
    def __init__(self, spec: "Spec", cache: "Cache", *, device: str, progress: bool) -> None:
        self.spec = spec
        self.cache = cache
        self.progress = progress
        # trained, unlearned, relearned, transformed, measured, loaded
        self.stats: Counter[str] = Counter()
        self._device = device

    @property
    def device(self) -> str:
        if self._device == "auto":
            from ..lazy import cuda_available

            self._device = "cuda" if cuda_available() else "cpu"
        return self._device

    @property
    def device_type(self) -> str:
        return self.device.split(":")[0]


def config_dict(config: Any) -> Any:
    """A spec entry's config as cache keys and reports see it: a dataclass as its dict."""
    return dataclasses.asdict(config) if dataclasses.is_dataclass(config) else config
