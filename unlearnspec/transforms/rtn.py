"""Round-to-nearest (RTN) weight quantization in pure torch (the paper's Eq. 2 and the usual
symmetric int-N grid). Fake-quantizes in place: weights are replaced by their dequantized
values Q(w) = Δ · clamp(round(w / Δ), lo, hi)."""
from __future__ import annotations

import torch


def _levels(bits: int, grid: str) -> tuple[int, int, int]:
    """(denominator of Δ, lowest code, highest code) for a symmetric grid."""
    half = 2 ** (bits - 1)
    if grid == "paper":  # Δ = max|w| / 2^(N-1); codes clamped to the N-bit range
        return half, -half, half - 1
    return half - 1, -(half - 1), half - 1  # Δ = max|w| / (2^(N-1) - 1)


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
    w's dtype and shape."""
    out_features = w.shape[0]
    x = w.detach().float().reshape(out_features, -1)
    if group_size == 0:
        g = x.reshape(1, -1)
    elif group_size is None:
        g = x
    else:
        if x.shape[1] % group_size:
            raise ValueError(f"group_size {group_size} does not divide {x.shape[1]} inputs")
        g = x.reshape(-1, group_size)
    if zero_point:
        lo_v, hi_v = g.amin(dim=1, keepdim=True), g.amax(dim=1, keepdim=True)
        qmax = 2**bits - 1
        scale = ((hi_v - lo_v) / qmax).clamp_min(torch.finfo(torch.float32).tiny)
        zero = torch.round(-lo_v / scale)
        q = (torch.clamp(torch.round(g / scale) + zero, 0, qmax) - zero) * scale
    else:
        denom, lo, hi = _levels(bits, grid)
        scale = (g.abs().amax(dim=1, keepdim=True) / denom).clamp_min(
            torch.finfo(torch.float32).tiny
        )
        q = torch.clamp(torch.round(g / scale), lo, hi) * scale
    return q.reshape(w.shape).to(w.dtype)
