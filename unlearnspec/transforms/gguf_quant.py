"""llama.cpp's block quantization (`kind: gguf`) through the `gguf` package's numpy codecs.

Each selected weight is quantized with `gguf.quants.quantize` exactly as `llama-quantize`
stores it (blocks of 32 consecutive inputs of one output row, ggml's reference rounding, an
fp16 scale per block — an e8m0 exponent for MXFP4 — and a min for the `_1` types), then
dequantized with `gguf.quants.dequantize`: the model computes with the values llama.cpp's
kernels would read.

Which tensors (what `llama-quantize` does for these types on a dense model without an
importance matrix, from its `llama_tensor_get_type`): every 2-D decoder weight (attn_q/k/v,
attn_output, ffn_gate/up/down) gets the chosen type; norms and biases stay F32; an MoE
router (`ffn_gate_inp`) stays F32 (not selected here either). What differs: llama.cpp puts
`output.weight` in Q6_K (Q8_0 for a Q8_0 file), which the `gguf` package cannot encode, so
the head is not quantized by default (`modules: all` quantizes the embedding and the head with
the chosen type, as `llama-quantize --pure` does). llama.cpp's only MXFP4 file type
(MXFP4_MOE) quantizes only 3-D expert tensors to MXFP4 and the rest to Q8_0; `type: MXFP4`
here puts MXFP4 on every selected weight. 8-expert models' attn_v/attn_k bump to Q8_0 in
llama.cpp, not here.

A row length that is not a multiple of 32 is an error: llama.cpp has no fallback for these
types either (`llama-quantize` stops with "no tensor type fallback is defined").
"""
from __future__ import annotations

from functools import cached_property
from typing import Any

import numpy as np
import torch

from ..errors import RunError
from .base import InPlaceTransform, Quantized, TransformContext
from .roles import DECODER_ROLES, ROLES, WeightInfo, iter_parameters
from .rtn import from_rows, to_rows

# where each type's per-block scale (and min) sit, and the bytes that make them 1 and 0:
# dequantizing a block with unit scale and zero min gives its integer codes
_UNIT = {
    "Q4_0": {0: b"\x00\x3c"}, "Q5_0": {0: b"\x00\x3c"}, "Q8_0": {0: b"\x00\x3c"},
    "Q4_1": {0: b"\x00\x3c", 2: b"\x00\x00"}, "Q5_1": {0: b"\x00\x3c", 2: b"\x00\x00"},
    "MXFP4": {0: bytes([128])},  # e8m0 128 -> 1.0 (MXFP4 codes are doubled e2m1 values)
}
_ROLES = {"decoder": set(DECODER_ROLES) - {"router"},
          "all": set(ROLES) - {"router"}}


def _qtype(name: str) -> Any:
    try:
        from gguf import GGMLQuantizationType
    except ImportError as exc:
        raise RunError("kind: gguf needs the gguf package (llama.cpp's own Python codecs): "
                       "pip install 'unlearnspec[gguf]'") from exc

    return GGMLQuantizationType[name]


def block_size(type_name: str) -> int:
    """Weights per block of a ggml type (32 for every type `kind: gguf` offers)."""
    from gguf import GGML_QUANT_SIZES

    return GGML_QUANT_SIZES[_qtype(type_name)][0]


def gguf_quantize(rows: np.ndarray, type_name: str) -> np.ndarray:
    """The ggml blocks (uint8, [rows, row_bytes]) of a float32 [rows, k] array."""
    from gguf import quants

    # ggml's C reference overflows silently on subnormal blocks; so does its numpy port
    with np.errstate(over="ignore", invalid="ignore"):
        return quants.quantize(np.ascontiguousarray(rows, dtype=np.float32), _qtype(type_name))


def gguf_dequantize(blocks: np.ndarray, type_name: str) -> np.ndarray:
    from gguf import quants

    return quants.dequantize(blocks, _qtype(type_name))


def gguf_codes(blocks: np.ndarray, type_name: str) -> np.ndarray:
    """Each weight's integer level (int16, [rows, k]): the blocks dequantized with their scale
    set to 1 and their min to 0, so the package's own unpacking decides the layout."""
    from gguf import GGML_QUANT_SIZES

    size = GGML_QUANT_SIZES[_qtype(type_name)][1]
    unit = blocks.reshape(-1, size).copy()
    for at, raw in _UNIT[type_name].items():
        unit[:, at:at + len(raw)] = np.frombuffer(raw, dtype=np.uint8)
    return gguf_dequantize(unit.reshape(blocks.shape), type_name).astype(np.int16)


class GgufTransform(InPlaceTransform):
    """`kind: gguf`. Fake-quantizes the selected weights in place: nn.Linear along its input
    axis, Conv1D along its transpose, MoE expert tensors per expert row."""

    @cached_property
    def VERSION(self) -> str:  # type: ignore[override]
        # the package's codecs decide every number, so its version is part of the key
        from importlib.metadata import version

        return f"gguf-1+{version('gguf')}"

    def __init__(self, config: Any) -> None:
        super().__init__(config)
        self._roles = _ROLES[config.modules]

    def selects(self, info: WeightInfo) -> bool:
        return info.role in self._roles and info.layout != "other"

    def _quantize(self, info: WeightInfo, w: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        t = self.config.type
        rows = to_rows(w.detach(), info.layout)
        k = rows.shape[-1]
        bs = block_size(t)
        if k % bs:
            raise RunError(
                f"gguf {t} cannot quantize {info.name}: its rows have {k} inputs, not a "
                f"multiple of the {bs}-weight {t} block (shape {tuple(w.shape)}); llama.cpp "
                f"has no fallback type for {t} either. Use a model whose dimensions are "
                f"multiples of {bs}, or kind: rtn with a group_size that divides {k}")
        blocks = gguf_quantize(rows.float().cpu().numpy(), t)
        values = torch.from_numpy(gguf_dequantize(blocks, t).reshape(rows.shape))
        codes = torch.from_numpy(gguf_codes(blocks, t).reshape(rows.shape))
        shape = tuple(w.shape)
        return (from_rows(values, info.layout, shape).to(w.dtype),
                from_rows(codes, info.layout, shape))

    def quantize_tensor(self, info: WeightInfo, w: torch.Tensor) -> Quantized | None:
        if not self.selects(info):
            return None
        values, codes = self._quantize(info, w)
        return Quantized(values=values.contiguous(), codes=codes.contiguous())

    @torch.no_grad()
    def apply(self, model: Any, ctx: TransformContext) -> Any:
        for info, p in iter_parameters(model):  # a tied head is listed once
            if self.selects(info):
                values, _ = self._quantize(info, p.data)
                p.data.copy_(values.to(p.device))
        return model

