"""Precision casts (`float16`, `bfloat16`) as transforms: the cheapest thing a deployer does to
a checkpoint, and a control for the quantizers (a bf16 cast keeps ~3 significant digits, so
an unlearning update smaller than that is rounded away too)."""
from __future__ import annotations

from typing import Any, Iterator

import torch

from .base import Quantized, Readback, Transform, TransformContext
from .roles import WeightInfo

_INT_VIEW = {torch.float16: torch.int16, torch.bfloat16: torch.int16}


class DtypeTransform(Transform):
    """`kind: dtype`. Casts every floating-point parameter and buffer; the model then computes
    in that dtype (logits come out in it too)."""

    VERSION = "dtype-1"

    @property
    def dtype(self) -> torch.dtype:
        return getattr(torch, self.config.dtype)

    def apply(self, model: Any, ctx: TransformContext) -> Any:
        return model.to(self.dtype)

    def readback(self, model: Any) -> Iterator[Readback]:
        for name, p in model.named_parameters():
            if p.is_floating_point():
                yield Readback(name, p.detach().float(), p.dtype == self.dtype)

    @torch.no_grad()
    def quantize_tensor(self, info: WeightInfo, w: torch.Tensor) -> Quantized | None:
        if not w.is_floating_point():
            return None
        low = w.to(self.dtype)
        # a cast value's code is its bit pattern: equal codes <=> equal values (±0 aside)
        return Quantized(values=low.to(w.dtype), codes=low.view(_INT_VIEW[self.dtype]))
