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

import dataclasses
from dataclasses import dataclass
from typing import Any

from ..lazy import no_grad, torch

from ..errors import RunError
from .base import InPlaceTransform, Quantized, TransformContext
from .roles import DECODER_ROLES, ROLES, WeightInfo, iter_parameters

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
    symmetric: bool = False  # zero is all +0.0

    def dequantize_(self) -> torch.Tensor:
        """Δ·(code − z), computed in place over `codes` (which it consumes). A symmetric
        grid's zero point (+0.0 everywhere) is not subtracted: c − (+0.0) is c bit for bit,
        −0.0 included, so that pass over memory is skipped with no number changed."""
        if not self.symmetric:
            self.codes.sub_(self.zero)
        return self.codes.mul_(self.scale)


_TINY = 1.1754943508222875e-38  # torch.finfo(torch.float32).tiny, without importing torch


def _zero_point_grid(g: torch.Tensor, bits: int) -> tuple[torch.Tensor, torch.Tensor, bool]:
    """(scale, zero point, whether the clamp to [0, 2^N − 1] can change a code) of a
    zero-point grid over the rows of g. The range always holds 0, so zero is exact and a
    constant group stays representable. Division and rounding are monotonic, so every code
    round(w / s) + z of a row lies between those of its own min and max: when both of those
    are in range, the clamp is a pass that changes nothing and is skipped (bit-identity
    against the clamp: tests); rounding can push the max one code over (−min/s = 3.5,
    max/s = 11.5 at 4 bits: 4 + 12 = 16), and then it runs. The [groups, 1] steps run in
    place (the same operations as s = ((max − min) / (2^N − 1)).clamp_min(tiny),
    z = round(−min / s), top = round(max / s) + z): a block of rows calls this once."""
    hi = 2**bits - 1
    lo_v = g.amin(dim=1, keepdim=True).clamp_max_(0)
    hi_v = g.amax(dim=1, keepdim=True).clamp_min_(0)
    scale = torch.sub(hi_v, lo_v).div_(hi).clamp_min_(_TINY)
    zero = lo_v.neg_().div_(scale).round_()
    # the min's code is round(lo/s) + round(−lo/s) = 0 (division and half-to-even rounding
    # are symmetric in sign), so only the max's can leave the range; NaN compares false: a
    # NaN row keeps its NaN with or without the clamp
    top = hi_v.div_(scale).round_().add_(zero)
    return scale, zero, bool(top.gt(hi).any())


def _symmetric_scale(g: torch.Tensor, bits: int, grid: str) -> torch.Tensor:
    """Δ per row of g on a symmetric grid: max|w| / d, at least the smallest positive float
    (a group of zeros gets codes 0, never NaN). max|w| is max(max w, −min w): no |w| copy,
    and faster than abs().amax(), torch.aminmax or vector_norm(inf) (measured on a CPU:
    aminmax and vector_norm are 15-40x slower than the two reductions together)."""
    absmax = torch.maximum(g.amax(dim=1, keepdim=True), g.amin(dim=1, keepdim=True).neg_())
    return absmax.div_(_denominator(bits, grid)).clamp_min_(_TINY)


# Weights per block of rows that `_values` quantizes at a time (2 MiB of float32): the block
# is read from memory once and its later passes (min, divide, round, rescale) find it in
# cache. Measured in benchmarks/rtn_throughput.py: a 2048 x 2048 weight out of place ~15%
# faster than whole-tensor passes; 128K-weight blocks gain less (torch's ~3 µs per call on
# ~8 calls per block) and 2M-weight blocks spill.
BLOCK_ELEMENTS = 1 << 19


def _values(g: torch.Tensor, out: torch.Tensor, bits: int, grid: str,
            zero_point: bool) -> torch.Tensor:
    """Q(g) = Δ·(code − z) written into `out` (float32 of g's shape: g itself for in place),
    a block of rows at a time: its scales, then divide, round, (clamp,) rescale. Rows are
    independent, so every value gets the operations it gets from `rtn_codes` +
    `dequantize_` on the whole tensor; one scale for the tensor ([1, n]) is computed over
    all of it first and the blocks are of columns. Passes that cannot change a number are
    skipped (bit-identity: tests/transforms/test_rtn_fast_paths.py):

    - symmetric grids: no clamp except `paper_clamped` (see `rtn_codes`), no zero subtracted;
    - zero point, N ≤ 16, no code of the block clamped (`_zero_point_grid`): (round(w/s) +
      z − z)·s is round(w/s)·s exactly (integers below 2^24), except that a code
      round(w/s) = −0.0 comes back +0.0, which adding +0.0 reproduces (as a 0-dim tensor:
      a third faster than the Python scalar, whose add goes through alpha; addcmul into a
      zero would fuse the add into the rescale exactly but runs 9x slower on a CPU)."""
    groups, k = g.shape
    if groups == 1 and g.numel() > BLOCK_ELEMENTS:
        grid_of_all = _grid(g, bits, grid, zero_point)
        for a in range(0, k, BLOCK_ELEMENTS):
            _quantize_block(g[:, a:a + BLOCK_ELEMENTS], out[:, a:a + BLOCK_ELEMENTS],
                            grid_of_all, bits, grid, zero_point)
        return out
    step = max(1, BLOCK_ELEMENTS // k)
    if step >= groups:
        _quantize_block(g, out, _grid(g, bits, grid, zero_point), bits, grid, zero_point)
        return out
    for r in range(0, groups, step):
        x = g[r:r + step]
        _quantize_block(x, out[r:r + step], _grid(x, bits, grid, zero_point), bits, grid,
                        zero_point)
    return out


def _grid(g: torch.Tensor, bits: int, grid: str, zero_point: bool
          ) -> tuple[torch.Tensor, torch.Tensor | None, bool]:
    """(scale, zero point or None, whether a clamp can change a code) for the rows of g."""
    if zero_point:
        return _zero_point_grid(g, bits)
    return _symmetric_scale(g, bits, grid), None, grid == "paper_clamped"


def _quantize_block(x: torch.Tensor, y: torch.Tensor,
                    params: tuple[torch.Tensor, torch.Tensor | None, bool], bits: int,
                    grid: str, zero_point: bool) -> None:
    """Q(x) into y, x's rows on the grid `params` (`_grid`)."""
    scale, zero, clamp = params
    lo, hi = code_range(bits, grid, zero_point)
    codes = torch.div(x, scale, out=y).round_()
    if zero is None:
        if clamp:
            codes.clamp_(lo, hi)
    elif bits <= 16 and not clamp:
        codes.add_(torch.zeros((), dtype=codes.dtype, device=codes.device))
    else:
        codes.add_(zero)
        if clamp:
            codes.clamp_(lo, hi)
        codes.sub_(zero)
    codes.mul_(scale)


@no_grad
def rtn_codes(
    w: torch.Tensor,
    bits: int = 4,
    group_size: int | None = None,
    grid: str = "symmetric",
    zero_point: bool = False,
    *,
    out: torch.Tensor | None = None,
) -> RtnCodes:
    """The codes of w on the RTN grid. Allocates one tensor of w's size (the codes), or
    writes them into `out` (float32, w.numel() elements) when given; a group of all zeros
    gets the smallest positive scale, so its codes are 0, never NaN."""
    g = _groups(w, group_size)
    lo, hi = code_range(bits, grid, zero_point)
    dest = None if out is None else out.view(g.shape)
    if zero_point:
        scale, zero, clamp = _zero_point_grid(g, bits)
        codes = torch.div(g, scale, out=dest).round_().add_(zero)
        if clamp:
            codes.clamp_(lo, hi)
        return RtnCodes(codes, scale, zero)
    scale = _symmetric_scale(g, bits, grid)
    codes = torch.div(g, scale, out=dest).round_()
    if grid == "paper_clamped":
        # the other grids need no clamp: |w| <= m and Δ = fl(m / d) give |w / Δ| <= d(1 +
        # 2^-23) < d + 1/2, so the rounded code is already within ±d (d <= 128); a pass
        # that changes nothing is skipped (bit-identity against the clamp: tests)
        codes.clamp_(lo, hi)
    return RtnCodes(codes, scale, torch.zeros_like(scale), symmetric=True)


@no_grad
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
    g = _groups(w, group_size)
    # a float32 copy made by _groups (another dtype, a reshape that could not view) is ours
    # to overwrite; a view of w gets a new tensor
    ours = g.untyped_storage().data_ptr() != w.untyped_storage().data_ptr()
    q = _values(g, g if ours else torch.empty_like(g), bits, grid, zero_point)
    return q.reshape(w.shape).to(w.dtype)


@no_grad
def rtn_quantize_(
    w: torch.Tensor,
    bits: int = 4,
    group_size: int | None = None,
    grid: str = "symmetric",
    zero_point: bool = False,
) -> torch.Tensor:
    """`rtn_quantize` written into w itself (returns w), bit-identical: a contiguous float32
    w is divided, rounded, clamped and rescaled where it lies, with no copy of it allocated
    (measured in benchmarks/rtn_throughput.py). Other weights (a Conv1D's transposed view,
    other dtypes) are quantized into a new tensor and copied back."""
    if w.dtype != torch.float32 or not w.is_contiguous():
        return w.copy_(rtn_quantize(w, bits, group_size, grid, zero_point))
    g = _groups(w, group_size)
    _values(g, g, bits, grid, zero_point)
    return w


def to_rows(w: torch.Tensor, layout: str) -> torch.Tensor:
    """w as the [output channels, inputs] matrix the kernels multiply by: Conv1D's [in, out]
    transposed, MoE experts' [experts, out, in] stacked to [experts * out, in]."""
    if layout == "conv1d":
        return w.t()
    if layout == "experts":
        return w.reshape(-1, w.shape[-1])
    return w


def from_rows(rows: torch.Tensor, layout: str, shape: tuple[int, ...]) -> torch.Tensor:
    """The inverse of `to_rows`."""
    if layout == "conv1d":
        return rows.reshape(shape[1], shape[0]).t()
    return rows.reshape(shape)


_ROLES = {"decoder": set(DECODER_ROLES), "decoder+head": {*DECODER_ROLES, "head"},
          "all": set(ROLES)}

class RtnTransform(InPlaceTransform):
    """`kind: rtn`. Fake-quantizes the selected weights in place on the model's device:
    nn.Linear (and subclasses), Conv1D along its transpose, MoE expert tensors with one scale
    per expert × output channel (per expert matrix for `group_size: 0`), the tied head once."""

    VERSION = "rtn-3"  # rtn-2 left Conv1D weights and 3-D MoE experts unquantized

    def __init__(self, config: Any) -> None:
        super().__init__(config)
        self._roles = _ROLES[config.modules]

    def selects(self, info: WeightInfo) -> bool:
        return info.role in self._roles and info.layout != "other"

    def _codes(self, name: str, rows: torch.Tensor) -> RtnCodes:
        c = self.config
        try:
            return rtn_codes(rows, c.bits, c.group_size, c.grid, c.zero_point)
        except ValueError as exc:
            raise RunError(f"rtn cannot quantize {name}: {exc}") from exc

    def _quantize(self, info: WeightInfo, w: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(values, codes) in w's own shape and orientation."""
        if info.layout == "experts" and self.config.group_size == 0:
            parts = [self._quantize(dataclasses.replace(info, layout="linear",
                                                        shape=tuple(w.shape[1:])), w[e])
                     for e in range(w.shape[0])]
            return torch.stack([v for v, _ in parts]), torch.stack([c for _, c in parts])
        if info.fused and self.config.group_size == 0:
            raise RunError(
                f"rtn with group_size 0 gives each MoE expert matrix of {info.source} one "
                f"scale, and the checkpoint stores that matrix split across tensors like "
                f"{info.name}, so it cannot be quantized tensor by tensor; use group_size "
                f"null (per output channel) or a group size for weight metrics on this model")
        rows = to_rows(w, info.layout)
        c = self._codes(info.name, rows)
        codes = from_rows(c.codes.reshape(rows.shape), info.layout, tuple(w.shape))
        codes = codes.to(torch.int16)
        values = from_rows(c.dequantize_().reshape(rows.shape), info.layout, tuple(w.shape))
        return values.to(w.dtype), codes

    def quantize_tensor(self, info: WeightInfo, w: torch.Tensor) -> Quantized | None:
        if not self.selects(info):
            return None
        values, codes = self._quantize(info, w)
        return Quantized(values=values.contiguous(), codes=codes.contiguous())

    @no_grad
    def apply(self, model: Any, ctx: TransformContext) -> Any:
        c = self.config
        for info, p in iter_parameters(model):  # a tied head is listed once
            if not self.selects(info):
                continue
            if info.layout in ("linear", "conv1d"):
                rows = to_rows(p.data, info.layout)
                try:  # in place: the same numbers as _quantize, without a copy of the weight
                    rtn_quantize_(rows, c.bits, c.group_size, c.grid, c.zero_point)
                except ValueError as exc:
                    raise RunError(f"rtn cannot quantize {info.name}: {exc}") from exc
                continue
            values, _ = self._quantize(info, p.data)
            p.data.copy_(values)
        return model

