"""The weight-pair kernel `unlearnspec diff` and the streamed weight metrics share: for one
block of rows of a target w and a subject s = w + δ, under one transform Q, the sums that add
up to the code-flip rate, update retention γ and the error ratio (`Tally`).

- `block_tally` is the definition, for any transform: quantize both blocks with the
  transform's `quantize_tensor`, compare the codes, and sum in float64 (`sum_products`: dots
  over slices of 1M values, added with `math.fsum`, so the order is fixed).
- `fused_rtn_tally` is the same for RTN per channel / per group in one pass over the block:
  both tensors' codes in one call over w and s stacked ([2, rows, cols], as `tally_block`
  reads them) into a reused per-thread buffer, flips as differing codes, both
  dequantizations in one pass, then Q(s) − Q(w) and Q(s) − s written over them. Every value is
  the definition's, computed by the same operations in the same order, so the sums are too
  (bit for bit: hypothesis, tests/theory/test_diff_fused.py).
- `tally_block` reads one block of both tensors (`stream.RowReader`) and tallies every
  transform that quantizes it, with the fused pass wherever `fusable` says it applies.

Blocks are rows r0:r1 of the tensor as stored (`row_blocks`); `row_local` says whether a
transform's scales stay within rows, so that a block's codes are the whole tensor's.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Iterator

from ..errors import RunError
from .stream import SCRATCH, Entry, RowReader

# The kernel's version, in the cache key of every number computed with it (the weight
# metrics): kernel-1 is the first whose sums are diff's (update_retention's γ moved in its
# last bits, from one float64 sum over the tensor to these block sums)
KERNEL_VERSION = "kernel-1"
CHUNK_ELEMENTS = 1 << 18  # weights per block of rows: 1 MiB per float32 block (a fused pass
# keeps ~10 block-sized buffers; at 4M weights they no longer fit the cache: 2.7x slower)


def row_local(transform: Any) -> bool:
    """True when quantizing a block of whole rows gives the same result as quantizing the
    tensor and cutting the block out: every scale covers part of one row, or (NF4/FP4) a
    64-weight block, which row blocks of a multiple of 64 rows never split."""
    from .bnb import BnbTransform
    from .rtn import RtnTransform

    c = transform.config
    if isinstance(transform, RtnTransform):
        return c.group_size != 0
    if isinstance(transform, BnbTransform):
        return c.mode == "int8" or not c.double_quant
    # llama.cpp blocks are 32 inputs of one row; torchao int8 has one scale per row
    return type(transform).__name__ in ("GgufTransform", "TorchaoTransform")


def row_blocks(shape: tuple[int, ...], chunk_elements: int, whole: bool
               ) -> Iterator[tuple[int, int]]:
    """(r0, r1) blocks of about `chunk_elements` weights, a multiple of 64 rows each, or the
    whole tensor (`whole`, or a tensor of fewer than two dimensions)."""
    rows = shape[0] if shape else 1
    if whole or len(shape) < 2:
        yield 0, rows
        return
    per = max(1, chunk_elements // max(1, math.prod(shape[1:])))
    per = max(64, per - per % 64) if per >= 64 else 64  # NF4/FP4 blocks never split
    for r0 in range(0, rows, per):
        yield r0, min(rows, r0 + per)


@dataclass
class Tally:
    """Sums that add up across blocks, tensors and layers (float64, in a fixed order, so the
    same inputs give the same numbers)."""

    n: int = 0
    flips: int = 0
    dot: float = 0.0  # ⟨Q(w+δ) − Q(w), δ⟩
    dd: float = 0.0   # ‖δ‖²
    ee: float = 0.0   # ‖Q(w+δ) − (w+δ)‖²: the quantizer's own error on the subject

    def add(self, other: Tally) -> None:
        self.n += other.n
        self.flips += other.flips
        self.dot += other.dot
        self.dd += other.dd
        self.ee += other.ee

    @property
    def flip_rate(self) -> float:
        return self.flips / self.n if self.n else math.nan

    @property
    def gamma(self) -> float:
        """NaN for a zero update: retention of nothing is undefined, never 1."""
        return self.dot / self.dd if self.dd > 0 else math.nan

    @property
    def error_ratio(self) -> float:
        """‖Q(s) − s‖ / ‖δ‖: how much larger the quantizer's perturbation is than the update."""
        return math.sqrt(self.ee / self.dd) if self.dd > 0 else math.nan


_SUM_STEP = 1 << 20


def sum_products(a: Any, b: Any) -> float:
    """Σ a·b in float64 over blocks of 1M values (bounded extra memory, deterministic)."""
    a, b = a.reshape(-1), b.reshape(-1)
    step = _SUM_STEP
    return math.fsum(float(a[i:i + step].double().dot(b[i:i + step].double()))
                     for i in range(0, a.numel(), step))


def sum_double(a: Any, b: Any) -> float:
    """`sum_products` of operands already in float64: the same dots over the same slices,
    so the same number bit for bit, without converting twice."""
    step = _SUM_STEP
    return math.fsum(float(a[i:i + step].dot(b[i:i + step])) for i in range(0, a.numel(), step))




def block_tally(transform: Any, info: Any, w: Any, s: Any, delta: Any) -> Tally | None:
    """The definition, for any transform: quantize both, compare codes, sum in float64."""
    q_w = transform.quantize_tensor(info, w)
    if q_w is None:
        return None
    return quantized_tally(s, delta, q_w, transform.quantize_tensor(info, s))


def quantized_tally(s: Any, delta: Any, q_w: Any, q_s: Any) -> Tally:
    """The sums from both quantized blocks (`Quantized`: values and codes): flips where the
    codes differ, ⟨Q(s) − Q(w), δ⟩, ‖δ‖², ‖Q(s) − s‖², in float64."""
    dq = q_s.values.float() - q_w.values.float()
    err = q_s.values.float() - s
    return Tally(n=delta.numel(), flips=int((q_w.codes != q_s.codes).sum()),
                 dot=sum_products(dq, delta), dd=sum_products(delta, delta),
                 ee=sum_products(err, err))


def tensor_tally(info: Any, et: Entry, es: Entry, transform: Any, reader: RowReader,
                 chunk_elements: int) -> Tally | None:
    """One tensor pair under one transform, block by block where its scales allow (the
    tensor's rows as the kernels read them), the blocks' sums added in order; None when the
    transform leaves the tensor as it is."""
    whole = info.layout != "linear" or not row_local(transform)
    total: Tally | None = None
    for r0, r1 in row_blocks(et.shape, chunk_elements, whole):
        got = tally_block(info, et, es, {"t": transform}, reader, r0, r1).tallies.get("t")
        if got is None:
            return None
        if total is None:
            total = Tally()
        total.add(got)
    return total


def fusable(transform: Any, info: Any) -> bool:
    """RTN on rows that are the kernels' rows (nn.Linear, or MoE experts stacked) with a scale
    per row or group: the codes are rtn_codes of the block as it lies."""
    from .rtn import RtnTransform

    return (isinstance(transform, RtnTransform) and transform.config.group_size != 0
            and info.layout in ("linear", "experts"))


def _flips(a: Any, b: Any, x: Any) -> int:
    """How many codes differ between a and b (integer-valued float32 codes), using x (float32,
    a's shape) as scratch: a != b written as 1.0 / 0.0 and summed in float32, exact below 2^24
    values (every partial sum is an integer), one pass where |a − b| clamped to 1 took three
    and count_nonzero or a bool sum take 2.5-4x as long. It is count_nonzero(a − b): a
    difference of two finite codes is nonzero exactly where they differ, and a NaN code (a
    NaN weight) differs from every code, itself included, under both (codes are never ±inf:
    |w / Δ| stays within the grid, and an inf weight's Δ is inf, so its codes are NaN or 0)."""
    import torch

    if a.numel() < 1 << 24:
        return int(torch.ne(a, b, out=x).sum())
    return int(torch.count_nonzero(torch.ne(a, b)))


def fused_rtn_tally(transform: Any, ws: Any, delta64: Any, dd: float, *,
                    scratch: Any = None) -> Tally:
    """`block_tally` for RTN in one pass over the block, given w and s stacked as ws
    ([2, rows, cols]: w, then s, as `tally_block` reads them): the codes of both in one call
    (each row's scales are its own, so the codes of the stack are the stack of the codes; a
    zero-point grid clamps both halves when either needs it, a clamp that changes nothing
    where it was not needed), flips as differing codes, both dequantized in one pass, then
    Q(s) − Q(w) and Q(s) − s written over them. Every value is the definition's, computed by
    the same operations in the same order, so the sums are too. `scratch`: n float32 values
    it may overwrite (a per-thread buffer when not given)."""
    import torch

    from .rtn import rtn_codes

    c, n = transform.config, ws[0].numel()
    try:
        codes = rtn_codes(ws.reshape(-1, ws.shape[-1]), c.bits, c.group_size, c.grid,
                          c.zero_point, out=SCRATCH.get("codes", 2 * n, torch.float32))
    except ValueError as exc:
        raise RunError(f"rtn cannot quantize a tensor of shape {tuple(ws.shape[1:])}: "
                       f"{exc}") from exc
    both = codes.codes.view(2, n)
    flips = _flips(both[0], both[1],
                   SCRATCH.get("x", n, torch.float32) if scratch is None else scratch)
    q = codes.dequantize_().view(2, n)
    dq = torch.sub(q[1], q[0], out=q[0])
    err = q[1].sub_(ws[1].reshape(-1))
    x64 = SCRATCH.get("x64", n, torch.float64)
    dot = sum_double(x64.copy_(dq), delta64)
    ee = sum_double(x64.copy_(err), x64)
    return Tally(n=n, flips=flips, dot=dot, dd=dd, ee=ee)


@dataclass
class BlockResult:
    """One block's ‖δ‖², ‖w‖² and tallies by transform label."""

    dd: float
    ww: float
    tallies: dict[str, Tally]


def tally_block(info: Any, et: Entry, es: Entry, chosen: dict[str, Any],
                reader: RowReader, r0: int, r1: int) -> BlockResult:
    """Rows r0:r1 of target tensor `et` and subject tensor `es`: ‖δ‖², ‖w‖² and a Tally for
    every transform in `chosen` that quantizes it (`info` says how the kernels read it). The
    rows' pages are released afterwards."""
    import torch

    shape = (r1 - r0, *et.shape[1:]) if et.shape else ()
    n = math.prod(shape)
    # both blocks in one buffer, w then s: the fused RTN pass quantizes them in one call
    ws = SCRATCH.get("ws", 2 * n, torch.float32).view(2, *shape)
    w = reader.rows(et, r0, r1, out=ws[0])
    s = reader.rows(es, r0, r1, out=ws[1])
    try:
        delta = torch.sub(s, w, out=SCRATCH.get("delta", n, torch.float32).view(w.shape))
        d64 = SCRATCH.get("d64", n, torch.float64).copy_(delta.reshape(-1))
        dd = sum_double(d64, d64)
        w64 = SCRATCH.get("x64", n, torch.float64).copy_(w.reshape(-1))
        ww = sum_double(w64, w64)
        fused = {k for k, t in chosen.items() if fusable(t, info) and w.dim() == 2}
        got = {k: block_tally(t, info, w, s, delta) for k, t in chosen.items() if k not in fused}
        # the fused passes last: they use delta's buffer as scratch (one buffer less in cache)
        got.update({k: fused_rtn_tally(chosen[k], ws, d64, dd, scratch=delta.view(-1))
                    for k in chosen if k in fused})
        tallies = {k: got[k] for k in chosen if got[k] is not None}
    finally:
        del w, s, ws
        reader.release(et, r0, r1)
        reader.release(es, r0, r1)
    return BlockResult(dd, ww, tallies)
