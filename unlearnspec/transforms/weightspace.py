"""Weight-space metrics: does a transform keep the unlearning update, or snap it back?

Both compare a `reference` checkpoint (usually the target before unlearning) with a `subject`
(the unlearned model) under one transform Q, tensor by tensor, over the tensors Q changes:

- `code_flip_rate`: the fraction of weights whose quantization code differs between Q(subject)
  and Q(reference) — section 5's argument measured: an update smaller than Δ/2 rarely flips.
- `update_retention` γ = ⟨Q(w+δ) − Q(w), δ⟩ / ‖δ‖², w the reference, w+δ the subject: ≈0 means
  Q undoes the update (the forgotten knowledge comes back), ≈1 means it survives.

Transforms that quantize tensor by tensor (rtn, bnb, dtype) are streamed from the safetensors
files (`stream`) and tallied by the kernel `unlearnspec diff` uses (`tally`: blocks of rows
where the transform's scales allow, one fused pass for RTN), so both give the same numbers bit
for bit; at most a block (or, for per-tensor scales, a tensor) of each checkpoint and its Q
are in memory. Whole-model transforms (gptq, awq) quantize one model at a time, write its
readback to a temporary safetensors file and stream that; they expose no codes, so a "flip"
there is a change of dequantized value.
"""
from __future__ import annotations

import math
import tempfile
from contextlib import ExitStack
from pathlib import Path
from typing import Any, Iterator

import torch

from ..errors import RunError
from ..metrics.result import MetricResult
from .base import Quantized, Transform, TransformContext
from .coverage import apply_measured, streamed
from .config_roles import decoder_roles
from .roles import WeightInfo
from .stream import Entry, RowReader, checkpoint_layout
from .tally import CHUNK_ELEMENTS, Tally, quantized_tally, tensor_tally


class _Reader:
    """A checkpoint's tensors by name, as float32, through the shared reader (`stream`)."""

    def __init__(self, checkpoint: Path, rows: RowReader) -> None:
        self._layout = checkpoint_layout(checkpoint)
        self.index = dict.fromkeys(self._layout)
        self._rows = rows

    def shape(self, name: str) -> tuple[int, ...]:
        return self._layout[name].shape

    def entry(self, name: str) -> Entry:
        return self._layout[name]

    def get(self, name: str) -> torch.Tensor:
        return self._rows.tensor(self._layout[name])


def _check_same_layout(ref: _Reader, sub: _Reader, reference: Path, subject: Path) -> None:
    only_ref = sorted(set(ref.index) - set(sub.index))
    only_sub = sorted(set(sub.index) - set(ref.index))
    if only_ref or only_sub:
        raise RunError(
            f"cannot compare {subject} with {reference}: their tensors differ (only in the "
            f"reference: {', '.join(only_ref[:5]) or 'none'}; only in the subject: "
            f"{', '.join(only_sub[:5]) or 'none'}). Weight metrics need a subject derived from "
            f"the reference with the same architecture"
        )
    for name in ref.index:
        if ref.shape(name) != sub.shape(name):
            raise RunError(
                f"cannot compare {subject} with {reference}: tensor {name} has shape "
                f"{sub.shape(name)} in the subject but {ref.shape(name)} in the reference"
            )


def _tallies(reference: Path, subject: Path, transform: Transform,
             calibration: list[str] | None, found: dict[str, Any]) -> Iterator[tuple[str, Tally]]:
    """(name, the kernel's sums) for each tensor the transform changes, in name order.
    Before the first, checks the transform's coverage of the reference's decoder (a RunError
    when it leaves more than coverage.LIMIT untouched) and puts it in `found["coverage"]`."""
    with ExitStack() as stack:
        rows = RowReader(stack)
        ref, sub = _Reader(reference, rows), _Reader(subject, rows)
        _check_same_layout(ref, sub, reference, subject)
        what = f"{_name(transform)} on {reference}"
        if transform.streams:
            roles, params = decoder_roles(Path(reference))
            infos = {n: i for n, i in roles.items() if n in ref.index}
            cov = streamed([(i, transform.selects(i)) for i in infos.values()], params)
            found["coverage"] = cov.check(what, transform)
            for name in sorted(ref.index):
                # norms and biases too: a dtype cast changes them as well
                info = infos.get(name) or WeightInfo(name, "extra", "other", ref.shape(name), "")
                if not transform.selects(info):
                    continue
                tally = tensor_tally(info, ref.entry(name), sub.entry(name), transform, rows,
                                     CHUNK_ELEMENTS)
                if tally is not None:
                    yield name, tally
            return
        tmp = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="unlearnspec-rb-")))
        rb_ref = _readback_file(reference, transform, calibration, tmp / "reference", found)
        rb_sub = _readback_file(subject, transform, calibration, tmp / "subject", {})
        qr, qs = _Reader(rb_ref, rows), _Reader(rb_sub, rows)
        for name in sorted(qr.index):
            if name not in ref.index:
                continue  # a tied weight the checkpoint stores once
            v_r, v_s = qr.get(name), qs.get(name)
            w_s = sub.get(name)
            # no codes: a "flip" is a changed dequantized value
            yield name, quantized_tally(w_s, w_s - ref.get(name), Quantized(v_r, v_r),
                                        Quantized(v_s, v_s))


def _readback_file(checkpoint: Path, transform: Transform, calibration: list[str] | None,
                   out: Path, found: dict[str, Any]) -> Path:
    """Quantize one whole model, check its coverage, and save the weights it quantized
    (dequantized) to `out`."""
    from safetensors.torch import save_file

    from ..models.loading import load_causal_lm

    model, tok = load_causal_lm(checkpoint)
    ctx = TransformContext(Path(checkpoint), tok, "cpu", calibration)
    model, cov = apply_measured(transform, model, ctx)
    found["coverage"] = cov.check(f"{_name(transform)} on {checkpoint}", transform)
    tensors = {r.name: r.value.float().contiguous() for r in transform.readback(model)
               if r.quantized}
    del model
    out.mkdir(parents=True)
    save_file(tensors, str(out / "model.safetensors"))
    return out


def _name(transform: Transform) -> str:
    return f"{type(transform).__name__}({transform.config})"


def code_flip_rate(reference: Path, subject: Path, transform: Transform, *,
                   calibration: list[str] | None = None) -> MetricResult:
    """Fraction of quantized weights whose code differs between Q(subject) and Q(reference).
    `details["per_layer"]` maps each tensor to its own rate. n = 0 (never passes a claim) when
    the transform changes no tensor of the checkpoint."""
    flips = total = 0
    per_layer: dict[str, float] = {}
    compared = "codes" if transform.streams else "dequantized values"
    found: dict[str, Any] = {}
    for name, t in _tallies(reference, subject, transform, calibration, found):
        per_layer[name] = t.flips / t.n
        flips += t.flips
        total += t.n
    details: dict[str, Any] = {"per_layer": per_layer, "compared": compared,
                               "transform": _name(transform),
                               "coverage": found["coverage"].to_json()}
    if total == 0:
        details["reason"] = f"{_name(transform)} changes none of the checkpoint's tensors"
        return MetricResult(math.nan, 0, details=details)
    return MetricResult(flips / total, total, details=details)


def update_retention(reference: Path, subject: Path, transform: Transform, *,
                     calibration: list[str] | None = None) -> MetricResult:
    """γ = ⟨Q(w+δ) − Q(w), δ⟩ / ‖δ‖² over the quantized tensors (float64 sums, the kernel
    `unlearnspec diff` uses, so both give the same γ bit for bit). A zero update leaves γ
    undefined: value NaN with a reason, never 1.0 (and per-layer None)."""
    total = Tally()
    per_layer: dict[str, float | None] = {}
    found: dict[str, Any] = {}
    for name, t in _tallies(reference, subject, transform, calibration, found):
        per_layer[name] = t.gamma if t.dd > 0 else None
        total.add(t)
    details: dict[str, Any] = {"per_layer": per_layer, "update_norm": math.sqrt(total.dd),
                               "transform": _name(transform),
                               "coverage": found["coverage"].to_json()}
    if total.n == 0:
        details["reason"] = f"{_name(transform)} changes none of the checkpoint's tensors"
        return MetricResult(math.nan, 0, details=details)
    if total.dd == 0.0:
        details["reason"] = ("the subject's weights equal the reference's on every quantized "
                             "tensor (a zero update), so retention is undefined")
        return MetricResult(math.nan, total.n, details=details)
    return MetricResult(total.gamma, total.n, details=details)
