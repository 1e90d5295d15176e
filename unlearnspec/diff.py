"""`unlearnspec diff TARGET SUBJECT`: will quantization undo this unlearning? Answered from the
weights alone, before any generation.

For each transform (`rtn4`, `rtn8`, `rtn4-g128`, `nf4`, `fp4`, `int8`) and each tensor the
transform quantizes, with w the target's weight and δ = subject − target:

- relative update size ‖δ‖ / ‖w‖ (over the tensors any of the transforms quantizes);
- code-flip rate: the fraction of weights whose quantization code differs;
- update retention γ = ⟨Q(w+δ) − Q(w), δ⟩ / ‖δ‖² (≈ 0: Q undoes the update, ≈ 1: it survives);
- error ratio ‖Q(w+δ) − (w+δ)‖ / ‖δ‖: the quantizer's perturbation of the subject against the
  update's size (what a matched-noise control would add);

aggregated per decoder layer and overall, with a verdict per transform that names the regime
the numbers point to — (a) rounding snaps the update back (low γ), or, with γ ≈ 1, that only a
fragile state (b) could still bring knowledge back and a behavioural check (matched noise,
sharpness) must decide (docs/theory.md gives the thresholds and why). The numbers are the ones `transforms.weightspace.code_flip_rate` and
`update_retention` compute (tests check equality), but one pass serves every transform, and
memory stays bounded on multi-GB checkpoints:

- tensors are read through a memory map of each safetensors file, and the pages of each
  block are dropped from the process (`madvise(MADV_DONTNEED)`) once it is tallied: a plain
  map's touched pages would stay resident while the file is open, so mapping two sharded
  2 GB checkpoints would make the process about 4 GB large however little it keeps;
- transforms whose scales never span two rows (RTN per channel or per group, LLM.int8,
  NF4/FP4 in 64-weight blocks) get the tensors in blocks of rows, so peak memory is a few
  blocks, not a few tensors; a per-tensor scale (`group_size: 0`) reads whole tensors.
- tensors no transform quantizes (embeddings, norms, the head) are never read;
- an RTN transform on a row-blocked tensor is tallied in one fused pass per block (codes of
  both tensors into reused buffers, flips, both dequantizations in place, the float64 sums),
  and blocks are tallied on `threads` threads; the sums are added in block order, so the
  numbers do not depend on the thread count, and they equal the per-transform definition
  (`_block_tally`) bit for bit (tests).
"""
from __future__ import annotations

import json
import math
import mmap
import os
import re
import struct
import threading
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

from .errors import RunError, UnlearnSpecError, did_you_mean
from .numbers import format_number

DEFAULT_TRANSFORMS = ("rtn4", "rtn8")
CHUNK_ELEMENTS = 1 << 18  # weights per block of rows: 1 MiB per float32 block (a fused pass
# keeps ~10 block-sized buffers; at 4M weights they no longer fit the cache: 2.7x slower)
# Verdict thresholds on γ (reasoning in docs/theory.md)
UNDOES_BELOW = 0.3
SURVIVES_ABOVE = 0.8

_SHORTHAND = re.compile(r"^rtn(?P<bits>\d+)(?:-g(?P<group>\d+))?(?P<grid>-paper|-clamped|-zp)?$")
_BNB = ("nf4", "fp4", "int8")
_LAYER = re.compile(r"^(?P<layer>.*?(?:^|\.)(?:layers|h|blocks|block|layer)\.\d+)\.")


class DiffError(UnlearnSpecError):
    """`unlearnspec diff` was given something it cannot compare (a bad transform name, a
    directory without safetensors, checkpoints with different tensors)."""


# ---------------------------------------------------------------- transforms by shorthand


def parse_transform(text: str) -> Any:
    """The transform object for a shorthand: `rtn<bits>[-g<group>][-paper|-clamped|-zp]`
    (`rtn4`, `rtn8`, `rtn4-g128`: symmetric grid, one scale per output channel unless `-g`;
    `-g0` is one scale per tensor) or a bitsandbytes mode `nf4`, `fp4`, `int8`."""
    from .registry import ConfigError
    from .transforms.registry import GGUF_TYPES, BnbConfig, GgufConfig, RtnConfig, TorchaoConfig

    m = _SHORTHAND.match(text)
    try:
        if m:
            from .transforms.rtn import RtnTransform

            grid = {None: "symmetric", "-paper": "paper", "-clamped": "paper_clamped",
                    "-zp": "symmetric"}[m["grid"]]
            group = int(m["group"]) if m["group"] is not None else None
            return RtnTransform(RtnConfig(bits=int(m["bits"]), group_size=group, grid=grid,
                                          zero_point=m["grid"] == "-zp"))
        if text in _BNB:
            from .transforms.bnb import BnbTransform

            return BnbTransform(BnbConfig(mode=text))
        if text.upper() in GGUF_TYPES:
            from .transforms.gguf_quant import GgufTransform

            return GgufTransform(GgufConfig(type=text))
        if text == "torchao-int8":
            from .transforms.torchao_quant import TorchaoTransform

            return TorchaoTransform(TorchaoConfig(mode="int8"))
    except ConfigError as exc:
        raise DiffError(f"--transform {text}: {exc}") from exc
    gguf = [t.lower() for t in GGUF_TYPES]
    hint = did_you_mean(text, ["rtn4", "rtn8", "rtn4-g128", *_BNB, *gguf, "torchao-int8"])
    raise DiffError(
        f"unknown transform '{text}': use rtn<bits> (e.g. rtn4, rtn8), rtn<bits>-g<group> "
        f"(e.g. rtn4-g128), optionally ending in -paper, -clamped or -zp, one of "
        f"{', '.join(_BNB)}, a llama.cpp type ({', '.join(gguf)}) or torchao-int8"
        + (f"; {hint}" if hint else "")
    )


def _row_local(transform: Any) -> bool:
    """True when quantizing a block of whole rows gives the same result as quantizing the
    tensor and cutting the block out: every scale covers part of one row, or (NF4/FP4) a
    64-weight block, which row blocks of a multiple of 64 rows never split."""
    from .transforms.bnb import BnbTransform
    from .transforms.rtn import RtnTransform

    c = transform.config
    if isinstance(transform, RtnTransform):
        return c.group_size != 0
    if isinstance(transform, BnbTransform):
        return c.mode == "int8" or not c.double_quant
    # llama.cpp blocks are 32 inputs of one row; torchao int8 has one scale per row
    return type(transform).__name__ in ("GgufTransform", "TorchaoTransform")


# ---------------------------------------------------------------- safetensors without mmap

_DTYPES = {"F32": ("float32", 4), "F16": ("float16", 2), "BF16": ("bfloat16", 2),
           "F64": ("float64", 8)}


@dataclass(frozen=True)
class _Entry:
    file: Path
    dtype: str
    shape: tuple[int, ...]
    start: int  # absolute byte offset of the tensor's data in the file


def _read_header(path: Path) -> dict[str, _Entry]:
    with open(path, "rb") as f:
        head = f.read(8)
        if len(head) < 8:
            raise DiffError(f"{path} is not a safetensors file (shorter than its header)")
        (n,) = struct.unpack("<Q", head)
        try:
            meta = json.loads(f.read(n))
        except ValueError as exc:
            raise DiffError(f"{path} is not a safetensors file: its header is not JSON "
                            f"({exc})") from exc
    return {name: _Entry(path, v["dtype"], tuple(v["shape"]), 8 + n + v["data_offsets"][0])
            for name, v in meta.items() if name != "__metadata__"}


def checkpoint_layout(checkpoint: Path) -> dict[str, _Entry]:
    """Every tensor of a checkpoint directory (sharded or not) by name, from the headers only."""
    from .transforms.weightspace import tensor_index

    checkpoint = Path(checkpoint)
    if not checkpoint.is_dir():
        raise DiffError(f"{checkpoint} is not a directory; give the folder of a Hugging Face "
                        f"checkpoint saved with safetensors")
    try:
        files = sorted(set(tensor_index(checkpoint).values()))
    except RunError as exc:
        raise DiffError(str(exc)) from exc
    out: dict[str, _Entry] = {}
    for f in files:
        out.update(_read_header(f))
    return out


class _Scratch(threading.local):
    """Per-thread buffers reused block after block: allocating a fresh multi-MB tensor per
    pass costs more than the pass (the pages are faulted in each time)."""

    def get(self, key: str, n: int, dtype: Any) -> Any:
        import torch

        buf = self.__dict__.get(key)
        if buf is None or buf.numel() < n or buf.dtype != dtype:
            buf = self.__dict__[key] = torch.empty(max(n, 1), dtype=dtype)
        return buf[:n]


_SCRATCH = _Scratch()


class _RowReader:
    """Blocks of rows of float tensors from memory maps of the safetensors files (each file
    mapped once). `rows` gives float32 copied out of the map; `release` drops a block's
    pages from the process once it is no longer needed."""

    def __init__(self, stack: ExitStack) -> None:
        self._stack = stack
        self._maps: dict[Path, mmap.mmap] = {}
        self._lock = threading.Lock()
        stack.callback(self._close)

    def _map(self, path: Path) -> mmap.mmap:
        with self._lock:
            m = self._maps.get(path)
            if m is None:
                with open(path, "rb") as f:
                    # a private mapping is writable (torch.frombuffer wants that) and nothing
                    # is ever written to it, so the file is never touched
                    m = self._maps[path] = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_COPY)
            return m

    def _close(self) -> None:
        for m in self._maps.values():
            try:
                m.close()
            except BufferError:  # a tensor still views it (an error unwinding): GC closes it
                pass

    def _span(self, e: _Entry, r0: int, r1: int) -> tuple[int, int]:
        size = _DTYPES[e.dtype][1]
        row = math.prod(e.shape[1:]) if len(e.shape) > 1 else 1
        return e.start + r0 * row * size, (r1 - r0) * row * size

    def rows(self, e: _Entry, r0: int, r1: int, key: str = "rows") -> Any:
        """Rows r0:r1 as float32, copied (converted) into this thread's scratch buffer `key`
        (valid until the next call with that key)."""
        import torch

        dtype = getattr(torch, _DTYPES[e.dtype][0])
        start, length = self._span(e, r0, r1)
        m = self._map(e.file)
        if start + length > len(m):
            raise DiffError(f"{e.file} is truncated: tensor data ends before its header says")
        shape = (r1 - r0, *e.shape[1:]) if e.shape else ()
        if length == 0:
            return torch.empty(shape, dtype=torch.float32)
        t = torch.frombuffer(m, dtype=dtype, count=length // _DTYPES[e.dtype][1],
                             offset=start).reshape(shape)
        # always a copy: a block never aliases the map, so dropping its pages (release) while
        # another thread still reads a neighbouring block cannot touch what it computes with
        return _SCRATCH.get(key, t.numel(), torch.float32).view(shape).copy_(t)

    def release(self, e: _Entry, r0: int, r1: int) -> None:
        if not hasattr(mmap, "MADV_DONTNEED"):
            return
        start, length = self._span(e, r0, r1)
        a0 = start - start % mmap.PAGESIZE
        m = self._maps.get(e.file)
        if m is not None and length:
            # a page shared with a neighbouring block is simply read again if still needed
            m.madvise(mmap.MADV_DONTNEED, a0, min(len(m), start + length) - a0)


# ---------------------------------------------------------------- sums, per tensor


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


@dataclass
class TensorDiff:
    """One tensor: its size, ‖δ‖², ‖w‖², and a Tally per transform that quantizes it."""

    name: str
    layer: str
    numel: int
    dd: float = 0.0
    ww: float = 0.0
    by_transform: dict[str, Tally] = field(default_factory=dict)


_SUM_STEP = 1 << 20


def _sum_products(a: Any, b: Any) -> float:
    """Σ a·b in float64 over blocks of 1M values (bounded extra memory, deterministic)."""
    a, b = a.reshape(-1), b.reshape(-1)
    step = _SUM_STEP
    return math.fsum(float(a[i:i + step].double().dot(b[i:i + step].double()))
                     for i in range(0, a.numel(), step))


def _sum_double(a: Any, b: Any) -> float:
    """`_sum_products` of operands already in float64: the same dots over the same slices,
    so the same number bit for bit, without converting twice."""
    step = _SUM_STEP
    return math.fsum(float(a[i:i + step].dot(b[i:i + step])) for i in range(0, a.numel(), step))




def _block_tally(transform: Any, info: Any, w: Any, s: Any, delta: Any) -> Tally | None:
    """The definition, for any transform: quantize both, compare codes, sum in float64."""
    q_w = transform.quantize_tensor(info, w)
    if q_w is None:
        return None
    q_s = transform.quantize_tensor(info, s)
    dq = q_s.values.float() - q_w.values.float()
    err = q_s.values.float() - s
    return Tally(n=w.numel(), flips=int((q_w.codes != q_s.codes).sum()),
                 dot=_sum_products(dq, delta), dd=_sum_products(delta, delta),
                 ee=_sum_products(err, err))


def _fusable(transform: Any, info: Any) -> bool:
    """RTN on rows that are the kernels' rows (nn.Linear, or MoE experts stacked) with a scale
    per row or group: the codes are rtn_codes of the block as it lies."""
    from .transforms.rtn import RtnTransform

    return (isinstance(transform, RtnTransform) and transform.config.group_size != 0
            and info.layout in ("linear", "experts"))


def _fused_rtn_tally(transform: Any, w: Any, s: Any, delta64: Any, dd: float) -> Tally:
    """`_block_tally` for RTN in one pass over the block: both codes into reused buffers,
    flips as nonzero code differences, both dequantizations in place, then
    Q(s) − Q(w) and Q(s) − s written over them. Every value is the definition's, computed by
    the same operations in the same order, so the sums are too."""
    import torch

    from .transforms.rtn import rtn_codes

    c, n = transform.config, w.numel()
    args = (c.bits, c.group_size, c.grid, c.zero_point)
    try:
        cw = rtn_codes(w, *args, out=_SCRATCH.get("cw", n, torch.float32))
        cs = rtn_codes(s, *args, out=_SCRATCH.get("cs", n, torch.float32))
    except ValueError as exc:
        raise RunError(f"rtn cannot quantize a tensor of shape {tuple(w.shape)}: {exc}") from exc
    flips = int(torch.count_nonzero(torch.sub(cw.codes, cs.codes,
                                              out=_SCRATCH.get("x", n, torch.float32)
                                              .view(cw.codes.shape))))
    q_w, q_s = cw.dequantize_().view(-1), cs.dequantize_().view(-1)
    dq = torch.sub(q_s, q_w, out=q_w)
    err = q_s.sub_(s.reshape(-1))
    x64 = _SCRATCH.get("x64", n, torch.float64)
    dot = _sum_double(x64.copy_(dq), delta64)
    ee = _sum_double(x64.copy_(err), x64)
    return Tally(n=n, flips=flips, dot=dot, dd=dd, ee=ee)


@dataclass
class _BlockResult:
    dd: float
    ww: float
    tallies: dict[str, Tally]


def _tally_block(info: Any, et: _Entry, es: _Entry, chosen: dict[str, Any],
                 reader: _RowReader, r0: int, r1: int) -> _BlockResult:
    import torch

    w, s = reader.rows(et, r0, r1, "w"), reader.rows(es, r0, r1, "s")
    try:
        n = w.numel()
        delta = torch.sub(s, w, out=_SCRATCH.get("delta", n, torch.float32).view(w.shape))
        d64 = _SCRATCH.get("d64", n, torch.float64).copy_(delta.reshape(-1))
        dd = _sum_double(d64, d64)
        w64 = _SCRATCH.get("x64", n, torch.float64).copy_(w.reshape(-1))
        ww = _sum_double(w64, w64)
        tallies: dict[str, Tally] = {}
        for label, t in chosen.items():
            if _fusable(t, info) and w.dim() == 2:
                tally: Tally | None = _fused_rtn_tally(t, w, s, d64, dd)
            else:
                tally = _block_tally(t, info, w, s, delta)
            if tally is not None:
                tallies[label] = tally
    finally:
        del w, s
        reader.release(et, r0, r1)
        reader.release(es, r0, r1)
    return _BlockResult(dd, ww, tallies)


def _layer_of(name: str) -> str:
    m = _LAYER.match(name)
    return m["layer"] if m else name


def _row_blocks(shape: tuple[int, ...], chunk_elements: int, whole: bool) -> Iterator[tuple[int, int]]:
    rows = shape[0] if shape else 1
    if whole or len(shape) < 2:
        yield 0, rows
        return
    per = max(1, chunk_elements // max(1, math.prod(shape[1:])))
    per = max(64, per - per % 64) if per >= 64 else 64  # NF4/FP4 blocks never split
    for r0 in range(0, rows, per):
        yield r0, min(rows, r0 + per)


def _tensor_jobs(info: Any, et: _Entry, es: _Entry, transforms: dict[str, Any],
                 reader: _RowReader, chunk_elements: int
                 ) -> tuple[TensorDiff, list[Callable[[], _BlockResult]]] | None:
    """The tensor's (empty) TensorDiff and one job per block of rows, or None when no
    transform quantizes it or it is not a float tensor."""
    name = info.name
    chosen = {k: t for k, t in transforms.items() if t.selects(info)}
    if not chosen or et.dtype not in _DTYPES or es.dtype not in _DTYPES:
        return None
    # a Conv1D weight's rows are its inputs: a scale spans all of them, so read it whole
    whole = info.layout != "linear" or not all(_row_local(t) for t in chosen.values())
    td = TensorDiff(name, _layer_of(name), math.prod(et.shape))
    jobs = [lambda r0=r0, r1=r1: _tally_block(info, et, es, chosen, reader, r0, r1)
            for r0, r1 in _row_blocks(et.shape, chunk_elements, whole)]
    return td, jobs


def _add_block(td: TensorDiff, block: _BlockResult) -> None:
    td.dd += block.dd
    td.ww += block.ww
    for label, tally in block.tallies.items():
        td.by_transform.setdefault(label, Tally()).add(tally)


def _run_in_order(jobs: Iterator[tuple[TensorDiff, Callable[[], _BlockResult]]],
                  threads: int) -> None:
    """Run the block jobs on `threads` threads with a bounded window in flight (memory stays
    a few blocks per thread) and add each result to its tensor in job order."""
    if threads <= 1:
        for td, job in jobs:
            _add_block(td, job())
        return
    import torch

    # every worker pins its own intra-op threads to one: torch.set_num_threads in the caller
    # reaches OpenMP but not MKL in other threads (mkl_set_num_threads_local is per thread),
    # so a worker's float64 dot ran on MKL's default threads, summed in another order, and
    # gave other last bits than the same dot on the calling thread
    with ThreadPoolExecutor(threads, thread_name_prefix="unlearnspec-diff",
                            initializer=torch.set_num_threads, initargs=(1,)) as pool:
        window: deque = deque()
        for td, job in jobs:
            window.append((td, pool.submit(job)))
            if len(window) >= 2 * threads:
                done_td, fut = window.popleft()
                _add_block(done_td, fut.result())
        while window:
            done_td, fut = window.popleft()
            _add_block(done_td, fut.result())


def default_threads() -> int:
    """The CPUs this process may run on."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not Linux
        return max(1, os.cpu_count() or 1)


# ---------------------------------------------------------------- the report


def regime(gamma: float) -> str:
    """Which explanation of knowledge coming back the weights point to (docs/theory.md):
    `a` rounding snaps the update back onto the target's codes (γ < 0.3), `a-partial`
    (0.3 ≤ γ ≤ 0.8), `not-a` the update survives rounding, so only a fragile state (b)
    could still bring knowledge back, which weights alone cannot tell; `none` for δ = 0."""
    if math.isnan(gamma):
        return "none"
    if gamma < UNDOES_BELOW:
        return "a"
    return "a-partial" if gamma <= SURVIVES_ABOVE else "not-a"


def verdict(gamma: float, label: str, error_ratio: float = math.nan) -> str:
    """What a release engineer should do about a `label` build, from the overall γ and the
    quantizer's error relative to the update (thresholds in docs/theory.md). Never says the
    unlearning survives: γ rules regime (a) in or out; regime (b), a fragile unlearned state
    that any perturbation of the quantizer's size undoes, needs a behavioural check."""
    r = regime(gamma)
    if r == "none":
        return (f"{label}: no verdict: the subject's quantized weights equal the target's "
                f"before quantization (a zero update), so there is nothing to keep or undo")
    size = (f"; its error is {error_ratio:.1f}× the update's norm"
            if math.isfinite(error_ratio) else "")
    if r == "a":
        return (f"{label} will undo most of this unlearning (γ = {gamma:.2f}): regime (a), "
                f"rounding snaps the update back onto the target's codes{size}. Do not "
                f"release a {label} build of this model as unlearned; unlearn until the "
                f"update crosses {label}'s grid (larger steps, or SURE on the salient "
                f"modules) and diff again.")
    if r == "a-partial":
        return (f"{label} will partly undo this unlearning (γ = {gamma:.2f}): regime (a) in "
                f"part{size}. Before releasing a {label} build, check knowmem_forget @ "
                f"{label} against the target in a spec.")
    return (f"{label} keeps the unlearning update in the weights (γ = {gamma:.2f}): rounding "
            f"does not snap it back, so regime (a) does not apply{size}. The weights cannot "
            f"tell whether the unlearned state is fragile (regime (b)): before releasing a "
            f"{label} build, measure knowmem_forget @ {label} beside a matched-noise control "
            f"({{kind: noise, matched_to: {label}}}) and sharpness on subject vs target.")


@dataclass(frozen=True)
class Row:
    """Numbers for one layer (or overall) under one transform."""

    n: int
    relative_update: float
    flip_rate: float
    gamma: float
    error_ratio: float = math.nan  # ‖Q(s) − s‖ / ‖δ‖


@dataclass
class DiffReport:
    target: str
    subject: str
    transforms: list[str]
    tensors: list[TensorDiff]
    skipped: list[str]  # quantized-looking tensors that were not float (never silently)

    def _rows(self, tensors: Sequence[TensorDiff]) -> dict[str, Row]:
        out: dict[str, Row] = {}
        for label in self.transforms:
            total, dd, ww = Tally(), 0.0, 0.0
            for td in tensors:
                if label in td.by_transform:
                    total.add(td.by_transform[label])
                    dd, ww = dd + td.dd, ww + td.ww
            rel = math.sqrt(dd / ww) if ww > 0 else math.nan
            out[label] = Row(total.n, rel, total.flip_rate, total.gamma, total.error_ratio)
        return out

    def layers(self) -> dict[str, dict[str, Row]]:
        groups: dict[str, list[TensorDiff]] = {}
        for td in self.tensors:
            groups.setdefault(td.layer, []).append(td)
        return {layer: self._rows(tds) for layer, tds in groups.items()}

    def overall(self) -> dict[str, Row]:
        return self._rows(self.tensors)

    def verdicts(self) -> dict[str, str]:
        return {label: verdict(row.gamma, label, row.error_ratio) if row.n else
                f"{label}: no verdict: it quantizes none of the checkpoint's tensors"
                for label, row in self.overall().items()}

    def relative_update(self) -> float:
        dd = sum(td.dd for td in self.tensors)
        ww = sum(td.ww for td in self.tensors)
        return math.sqrt(dd / ww) if ww > 0 else math.nan

    def to_json(self) -> dict[str, Any]:
        """Plain JSON; NaN becomes null (a number that could not be computed)."""
        def clean(x: Any) -> Any:
            if isinstance(x, float) and not math.isfinite(x):
                return None
            if isinstance(x, dict):
                return {k: clean(v) for k, v in x.items()}
            if isinstance(x, list):
                return [clean(v) for v in x]
            return x

        per_tensor = {td.name: {"layer": td.layer, "numel": td.numel,
                                "relative_update": math.sqrt(td.dd / td.ww) if td.ww else None,
                                **{k: {"n": t.n, "flip_rate": t.flip_rate, "gamma": t.gamma,
                                       "error_ratio": t.error_ratio}
                                   for k, t in td.by_transform.items()}}
                      for td in self.tensors}
        return clean({
            "target": self.target, "subject": self.subject, "transforms": self.transforms,
            "relative_update": self.relative_update(),
            "overall": {k: asdict(r) for k, r in self.overall().items()},
            "verdicts": self.verdicts(),
            "regimes": {k: regime(r.gamma) if r.n else "none"
                        for k, r in self.overall().items()},
            "layers": {layer: {k: asdict(r) for k, r in rows.items()}
                       for layer, rows in self.layers().items()},
            "tensors": per_tensor, "skipped": self.skipped,
        })


def _check_layout(lt: dict[str, _Entry], ls: dict[str, _Entry], target: Path,
                  subject: Path) -> None:
    only_t, only_s = sorted(set(lt) - set(ls)), sorted(set(ls) - set(lt))
    if only_t or only_s:
        raise DiffError(
            f"cannot compare {subject} with {target}: their tensor names differ (only in the "
            f"target: {', '.join(only_t[:5]) or 'none'}{' …' if len(only_t) > 5 else ''}; only "
            f"in the subject: {', '.join(only_s[:5]) or 'none'}{' …' if len(only_s) > 5 else ''}"
            f"). diff needs a subject unlearned from this target, saved with the same "
            f"architecture")
    for name in sorted(lt):
        if lt[name].shape != ls[name].shape:
            raise DiffError(
                f"cannot compare {subject} with {target}: tensor {name} has shape "
                f"{list(ls[name].shape)} in the subject but {list(lt[name].shape)} in the "
                f"target; diff needs a subject unlearned from this target")


def _covered_roles(target: Path, layout: dict[str, _Entry], built: dict[str, Any]
                   ) -> dict[str, Any]:
    """The target's weight tensors by the roles rule, after checking that every transform
    covers its decoder (a DiffError naming what it leaves out, never a partial number)."""
    from .transforms.coverage import streamed
    from .transforms.config_roles import decoder_roles

    try:
        roles, params = decoder_roles(target)
        infos = {n: i for n, i in roles.items() if n in layout}
        for label, t in built.items():
            streamed([(i, t.selects(i)) for i in infos.values()], params).check(
                f"--transform {label} on {target}", t)
    except RunError as exc:
        raise DiffError(str(exc)) from exc
    return infos


def diff_checkpoints(target: Path, subject: Path, transforms: Sequence[str] = DEFAULT_TRANSFORMS,
                     *, chunk_elements: int = CHUNK_ELEMENTS,
                     threads: int | None = None) -> DiffReport:
    """Stream both checkpoints tensor by tensor (in blocks of rows where the transforms
    allow) and tally every transform in one pass, on `threads` threads (default 1), each
    block's sums on one intra-op thread, so any thread count gives the same numbers. Raises DiffError for an unknown transform, a directory
    without safetensors, or tensor names / shapes that differ."""
    import torch

    if not transforms:
        raise DiffError("no transform to compare under; give at least one --transform")
    if threads is not None and threads < 1:
        raise DiffError(f"--threads must be at least 1, got {threads}")
    built = {label: parse_transform(label) for label in dict.fromkeys(transforms)}
    lt, ls = checkpoint_layout(Path(target)), checkpoint_layout(Path(subject))
    _check_layout(lt, ls, Path(target), Path(subject))
    infos = _covered_roles(Path(target), lt, built)
    tensors: list[TensorDiff] = []
    skipped: list[str] = []
    intra = torch.get_num_threads()
    with ExitStack() as stack:
        reader = _RowReader(stack)

        def jobs() -> Iterator[tuple[TensorDiff, Callable[[], _BlockResult]]]:
            for name in sorted(infos):
                got = _tensor_jobs(infos[name], lt[name], ls[name], built, reader,
                                   chunk_elements)
                if got is None:
                    if any(t.selects(infos[name]) for t in built.values()):
                        skipped.append(f"{name} ({lt[name].dtype}/{ls[name].dtype}: not a "
                                       f"float tensor)")
                    continue
                td, blocks = got
                tensors.append(td)
                for job in blocks:
                    yield td, job

        torch.set_num_threads(1)  # one thread per block: the same dots for any `threads`
        try:
            _run_in_order(jobs(), threads or 1)
        finally:
            torch.set_num_threads(intra)
    return DiffReport(str(target), str(subject), list(built), tensors, skipped)


# ---------------------------------------------------------------- text


def render_text(report: DiffReport, *, per_tensor: bool = False) -> str:
    """A table: one row per layer (or tensor) × transform, then overall and the verdicts."""
    lines = [f"target:  {report.target}", f"subject: {report.subject}", ""]
    head = (f"{'layer':<32} {'transform':<10} {'weights':>10} {'‖δ‖/‖w‖':>10} {'flips':>9} "
            f"{'γ':>7} {'‖err‖/‖δ‖':>10}")
    lines += [head, "-" * len(head)]
    if per_tensor:
        groups = {td.name: report._rows([td]) for td in report.tensors}
    else:
        groups = report.layers()
    groups = {**groups, "overall": report.overall()}
    for key, rows in groups.items():
        if key == "overall":
            lines.append("-" * len(head))
        for label, r in rows.items():
            if r.n == 0:
                continue
            lines.append(f"{key[-32:]:<32} {label:<10} {r.n:>10} "
                         f"{format_number(r.relative_update, spec='.2e', nan='—'):>10} "
                         f"{format_number(r.flip_rate, spec='.4f', nan='—'):>9} "
                         f"{format_number(r.gamma, spec='.3f', nan='—'):>7} "
                         f"{format_number(r.error_ratio, spec='.2f', nan='—'):>10}")
    lines.append("")
    lines += list(report.verdicts().values())
    for s in report.skipped:
        lines.append(f"not compared: {s}")
    return "\n".join(lines)
