"""`{chain: [a, b, ...]}`: transforms applied in order, one name in a claim.

The engine applies a chain member by member (engine/loaded.py): relearning members first
(each a cached checkpoint trained from the previous one), then the rest on the loaded model, each
with its own calibration and its own coverage check, and an error names the member that
failed. A chain's cache key is composed from its members' keys, in order, so it changes
whenever a member's would. `apply` here does the same in memory, for callers without an
engine (weight metrics quantizing a whole model).
"""
from __future__ import annotations

from typing import Any, Iterator, Mapping

from ..errors import RunError
from .base import Readback, Transform, TransformContext


class ChainTransform(Transform):
    VERSION = "chain-1"

    def __init__(self, config: Any) -> None:
        super().__init__(config)
        self.steps: list[Transform] = []

    @property
    def uses(self) -> tuple[str, ...]:
        return tuple(self.config.chain)

    def bind(self, others: Mapping[str, Transform]) -> ChainTransform:
        self.steps = [others[u] for u in self.uses]
        return self

    def apply(self, model: Any, ctx: TransformContext) -> Any:
        if not self.steps:
            raise RunError(f"chain {list(self.uses)} was never bound to its members")
        for name, step in zip(self.uses, self.steps):
            try:
                model = step.apply(model, ctx)
            except RunError as exc:
                raise RunError(f"chain member '{name}': {exc}") from exc
        return model

    def readback(self, model: Any) -> Iterator[Readback]:
        return self.steps[-1].readback(model)
