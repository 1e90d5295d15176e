"""Dequantized readback of any quantized model, and the check that it is faithful.

`readback_model` reads back a model whatever quantized it: a bnb/GPTQ/AWQ transform here, or
an already-quantized checkpoint the user ships, loaded through transformers. `rebuild_float`
loads those float weights into a plain float model of the same checkpoint, and `logits_gap`
measures how far the two models' logits are apart: near zero (up to the quantized kernel's
activation dtype) means the readback is what the quantized model computes with, so comparing
readbacks compares the models.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Iterable, Iterator

import torch

from ..errors import RunError
from .base import Readback


def readback_model(model: Any) -> Iterator[Readback]:
    """Readback by module type: bitsandbytes layers, GPTQModel layers, else plain parameters
    (quantized=False: nothing recognisably quantized)."""
    kinds = {type(m).__module__.split(".")[0] for m in model.modules()}
    if "bitsandbytes" in kinds:
        from .bnb import BnbTransform

        yield from BnbTransform.readback(BnbTransform(None), model)
    elif "gptqmodel" in kinds:
        from .gptq import gptqmodel_readback

        yield from gptqmodel_readback(model)
    else:
        for name, p in model.named_parameters():
            if p.is_floating_point():
                yield Readback(name, p.detach().float(), False)


def rebuild_float(checkpoint: Path, readback: Iterable[Readback], *,
                  dtype: torch.dtype = torch.float32) -> Any:
    """A float model of `checkpoint` carrying the readback's weights (all of them: AWQ's
    rescaled norms matter as much as its quantized linears)."""
    from ..models.loading import load_causal_lm

    model, _ = load_causal_lm(checkpoint, dtype=dtype)
    state = {r.name: r.value.to(dtype) for r in readback}
    result = model.load_state_dict(state, strict=False)
    if result.unexpected_keys:
        raise RunError(
            f"the readback has weights that {checkpoint} does not: "
            f"{', '.join(result.unexpected_keys[:5])}; rebuild from the checkpoint that was "
            f"quantized"
        )
    return model


@torch.no_grad()
def logits_gap(a: Any, b: Any, input_ids: torch.Tensor) -> float:
    """max |logits_a − logits_b| / max |logits_b| on `input_ids` (relative, so one tolerance
    fits models of any scale)."""
    la = a(input_ids.to(a.device)).logits.float().cpu()
    lb = b(input_ids.to(b.device)).logits.float().cpu()
    return float((la - lb).abs().max() / lb.abs().max().clamp_min(1e-12))
