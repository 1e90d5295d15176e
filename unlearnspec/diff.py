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
sharpness) must decide (docs/theory.md gives the thresholds and why; `diff_text` words them).
The numbers are the ones `transforms.weightspace.code_flip_rate` and `update_retention`
compute (tests check equality), but one pass serves every transform, and memory stays
bounded on multi-GB checkpoints:

- tensors are read through `transforms.stream` (memory maps whose pages are dropped once a
  block is tallied), so two 2 GB checkpoints do not make a 4 GB process;
- transforms whose scales never span two rows (RTN per channel or per group, LLM.int8,
  NF4/FP4 in 64-weight blocks) get the tensors in blocks of rows, so peak memory is a few
  blocks, not a few tensors; a per-tensor scale (`group_size: 0`) reads whole tensors;
- tensors no transform quantizes (embeddings, norms, the head) are never read;
- each block is tallied by `transforms.tally` (one fused pass for RTN, bit-identical to the
  per-transform definition), on `threads` threads; the sums are added in block order, so the
  numbers do not depend on the thread count.
"""
from __future__ import annotations

import math
import os
import re
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

from .diff_text import regime, verdict
from .errors import RunError, UnlearnSpecError, did_you_mean
from .transforms import stream
from .transforms.stream import DTYPES, Entry, RowReader
from .transforms.tally import (CHUNK_ELEMENTS, BlockResult, Tally, row_blocks, row_local,
                                tally_block)

DEFAULT_TRANSFORMS = ("rtn4", "rtn8")

_SHORTHAND = re.compile(r"^rtn(?P<bits>\d+)(?:-g(?P<group>\d+))?(?P<grid>-paper|-clamped|-zp)?$")
_BNB = ("nf4", "fp4", "int8")


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


def checkpoint_layout(checkpoint: Path) -> dict[str, Entry]:
    """`stream.checkpoint_layout`, its errors as DiffErrors (exit status 2 in the CLI)."""
    try:
        return stream.checkpoint_layout(checkpoint)
    except RunError as exc:
        raise DiffError(str(exc)) from exc


@dataclass
class TensorDiff:
    """One tensor: its size, ‖δ‖², ‖w‖², and a Tally per transform that quantizes it."""

    name: str
    layer: str
    numel: int
    dd: float = 0.0
    ww: float = 0.0
    by_transform: dict[str, Tally] = field(default_factory=dict)


def _layer_of(name: str) -> str:
    from .transforms.roles import decoder_block

    return decoder_block(name) or name


def _tensor_jobs(info: Any, et: Entry, es: Entry, transforms: dict[str, Any],
                 reader: RowReader, chunk_elements: int
                 ) -> tuple[TensorDiff, list[Callable[[], BlockResult]]] | None:
    """The tensor's (empty) TensorDiff and one job per block of rows, or None when no
    transform quantizes it or it is not a float tensor."""
    name = info.name
    chosen = {k: t for k, t in transforms.items() if t.selects(info)}
    if not chosen or et.dtype not in DTYPES or es.dtype not in DTYPES:
        return None
    # a Conv1D weight's rows are its inputs: a scale spans all of them, so read it whole
    whole = info.layout != "linear" or not all(row_local(t) for t in chosen.values())
    td = TensorDiff(name, _layer_of(name), math.prod(et.shape))
    jobs = [lambda r0=r0, r1=r1: tally_block(info, et, es, chosen, reader, r0, r1)
            for r0, r1 in row_blocks(et.shape, chunk_elements, whole)]
    return td, jobs


def _add_block(td: TensorDiff, block: BlockResult) -> None:
    td.dd += block.dd
    td.ww += block.ww
    for label, tally in block.tallies.items():
        td.by_transform.setdefault(label, Tally()).add(tally)


def _run_in_order(jobs: Iterator[tuple[TensorDiff, Callable[[], BlockResult]]],
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


def _check_layout(lt: dict[str, Entry], ls: dict[str, Entry], target: Path,
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


def _covered_roles(target: Path, layout: dict[str, Entry], built: dict[str, Any]
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
    allow) and tally every transform in one pass, on `threads` threads (default: every CPU
    this process may use), each block's sums on one intra-op thread, so any thread count
    gives the same numbers. Raises DiffError for an unknown transform, a directory
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
        reader = RowReader(stack)

        def jobs() -> Iterator[tuple[TensorDiff, Callable[[], BlockResult]]]:
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
            _run_in_order(jobs(), threads or default_threads())
        finally:
            torch.set_num_threads(intra)
    return DiffReport(str(target), str(subject), list(built), tensors, skipped)

