"""Round-to-nearest (RTN) weight quantization in pure torch: the grids people deploy and the
paper's Eq. 2, per tensor / per output channel / per group, symmetric or with a zero point.

The transform fake-quantizes in place: each selected weight is replaced by Q(w) = Δ·(code − z),
so the model runs in its usual float kernels and reads back exactly what it computes with.

Grids (`grid=`), N bits, m = max|w| over one scale group:

- `symmetric` (default): Δ = m / (2^(N−1) − 1), codes in ±(2^(N−1) − 1): 2^N − 1 levels, the
  form int-N kernels ship (±7 for int4, ±127 for int8).
- `paper`: Eq. 2 exactly, Δ = m / 2^(N−1), codes round(w/Δ) in [−2^(N−1), 2^(N−1)]: 2^N + 1
  levels, so the top code needs N + 1 bits. Use it to reproduce the paper's analysis.
- `paper_clamped`: Eq. 2's Δ with codes clamped to the N-bit range [−2^(N−1), 2^(N−1) − 1] (the
  range section 5 quotes); the largest positive weights are clipped to m − Δ. Not idempotent.

`zero_point=True` ignores `grid`: an asymmetric min/max grid over [min(w, 0), max(w, 0)],
s = (max − min)/(2^N − 1), z = round(−min/s), codes in [0, 2^N − 1].
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Iterator

import torch

from ..errors import RunError
from .base import Quantized, Readback, Transform, TransformContext

GRIDS = ("symmetric", "paper", "paper_clamped")


def code_range(bits: int, grid: str = "symmetric", zero_point: bool = False) -> tuple[int, int]:
    """(lowest code, highest code) of a grid."""
    if zero_point:
        return 0, 2**bits - 1
    half = 2 ** (bits - 1)
    if grid == "paper":
        return -half, half
    if grid == "paper_clamped":
        return -half, half - 1
    if grid == "symmetric":
        return -(half - 1), half - 1
    raise ValueError(f"unknown RTN grid {grid!r} (grids: {', '.join(GRIDS)})")


def _denominator(bits: int, grid: str) -> int:
    """m / Δ for a symmetric grid."""
    half = 2 ** (bits - 1)
    return half - 1 if grid == "symmetric" else half


def _groups(w: torch.Tensor, group_size: int | None) -> torch.Tensor:
    """A float32 [groups, k] view (a copy only when w is not float32) with one scale per row."""
    x = w.detach()
    x = x.float() if x.dtype != torch.float32 else x
    x = x.reshape(w.shape[0], -1)
    if group_size == 0:
        return x.reshape(1, -1)
    if group_size is None:
        return x
    if x.shape[1] % group_size:
        raise ValueError(
            f"group_size {group_size} does not divide the {x.shape[1]} inputs of a "
            f"{tuple(w.shape)} weight; choose a group_size that divides it, or None for one "
            f"scale per output channel"
        )
    return x.reshape(-1, group_size)


@dataclass(frozen=True)
class RtnCodes:
    """Integer codes (float32 holding integers, grouped shape [groups, k]) with their scale Δ
    ([groups, 1]) and zero point z ([groups, 1], zeros for symmetric grids)."""

    codes: torch.Tensor
    scale: torch.Tensor
    zero: torch.Tensor

    def dequantize_(self) -> torch.Tensor:
        """Δ·(code − z), computed in place over `codes` (which it consumes)."""
        return self.codes.sub_(self.zero).mul_(self.scale)


@torch.no_grad()
def rtn_codes(
    w: torch.Tensor,
    bits: int = 4,
    group_size: int | None = None,
    grid: str = "symmetric",
    zero_point: bool = False,
) -> RtnCodes:
    """The codes of w on the RTN grid. Allocates one tensor of w's size (the codes); a group of
    all zeros gets the smallest positive scale, so its codes are 0, never NaN."""
    g = _groups(w, group_size)
    tiny = torch.finfo(torch.float32).tiny
    lo, hi = code_range(bits, grid, zero_point)
    if zero_point:
        # the range always holds 0, so zero is exact and a constant group stays representable
        lo_v = g.amin(dim=1, keepdim=True).clamp_max(0)
        hi_v = g.amax(dim=1, keepdim=True).clamp_min(0)
        scale = ((hi_v - lo_v) / hi).clamp_min(tiny)
        zero = torch.round(-lo_v / scale)
        codes = torch.div(g, scale).round_().add_(zero).clamp_(lo, hi)
    else:
        # max|w| as max(max w, -min w): no |w| copy, and faster than abs().amax() or aminmax
        absmax = torch.maximum(g.amax(dim=1, keepdim=True), -g.amin(dim=1, keepdim=True))
        scale = (absmax / _denominator(bits, grid)).clamp_min(tiny)
        zero = torch.zeros_like(scale)
        codes = torch.div(g, scale).round_().clamp_(lo, hi)
    return RtnCodes(codes, scale, zero)


@torch.no_grad()
def rtn_quantize(
    w: torch.Tensor,
    bits: int = 4,
    group_size: int | None = None,
    grid: str = "symmetric",
    zero_point: bool = False,
) -> torch.Tensor:
    """Q(w) for a 2-D weight [out, in]: one scale per output channel (`group_size=None`), per
    tensor (`0`) or per group of `group_size` consecutive inputs. Returns a new tensor of
    w's dtype and shape; at most one extra float32 copy of w is alive at a time (two when w
    is not float32: its float32 view, then the result)."""
    c = rtn_codes(w, bits, group_size, grid, zero_point)
    return c.dequantize_().reshape(w.shape).to(w.dtype)


# Names of decoder blocks across Hugging Face architectures (Llama `layers.3.`, GPT-2 `h.3.`,
# T5/BLOOM style `block.3.` / `blocks.3.`).
_DECODER = re.compile(r"(^|\.)(layers|h|blocks|block|layer)\.\d+\.")
_HEADS = ("lm_head.weight", "embed_out.weight", "output.weight")


def weight_role(name: str, ndim: int) -> str | None:
    """'decoder', 'head' or 'embedding' for a 2-D weight by its checkpoint name; None for
    anything else (norms, biases, 1-D tensors), which RTN never touches. Name-based so that
    streaming a safetensors file and quantizing a loaded model select the same tensors."""
    if ndim != 2 or not name.endswith(".weight"):
        return None
    if name in _HEADS or name.endswith(tuple("." + h for h in _HEADS)):
        return "head"
    if _DECODER.search(name):
        return "decoder"
    if "embed" in name or name.split(".")[-2] in ("wte", "wpe"):
        return "embedding"
    return None


_ROLES = {"decoder": {"decoder"}, "decoder+head": {"decoder", "head"},
          "all": {"decoder", "head", "embedding"}}


class RtnTransform(Transform):
    """`kind: rtn`. Fake-quantizes the selected weights in place on the model's device."""

    VERSION = "rtn-2"

    def __init__(self, config: Any) -> None:
        super().__init__(config)
        self._roles = _ROLES[config.modules]

    def selects(self, name: str, ndim: int) -> bool:
        role = weight_role(name, ndim)
        return role is not None and role in self._roles

    def _codes(self, name: str, w: torch.Tensor) -> RtnCodes:
        c = self.config
        try:
            return rtn_codes(w, c.bits, c.group_size, c.grid, c.zero_point)
        except ValueError as exc:
            raise RunError(f"rtn cannot quantize {name}: {exc}") from exc

    def quantize_tensor(self, name: str, w: torch.Tensor) -> Quantized | None:
        if not self.selects(name, w.ndim):
            return None
        c = self._codes(name, w)
        codes = c.codes.reshape(w.shape).to(torch.int16)
        return Quantized(values=c.dequantize_().reshape(w.shape).to(w.dtype), codes=codes)

    @torch.no_grad()
    def apply(self, model: Any, ctx: TransformContext) -> Any:
        seen: set[int] = set()
        for name, p in _linear_and_embedding_weights(model):
            if id(p) in seen or not self.selects(name, p.ndim):
                continue
            seen.add(id(p))  # a tied head and embedding share one tensor: quantize it once
            c = self._codes(name, p)
            p.data.copy_(c.dequantize_().reshape(p.shape))
        return model

    def readback(self, model: Any) -> Iterator[Readback]:
        for name, p in model.named_parameters():
            yield Readback(name, p.detach(), self.selects(name, p.ndim))


def _linear_and_embedding_weights(model: Any) -> Iterator[tuple[str, torch.nn.Parameter]]:
    for mod_name, mod in model.named_modules():
        if isinstance(mod, (torch.nn.Linear, torch.nn.Embedding)):
            yield f"{mod_name}.weight", mod.weight
