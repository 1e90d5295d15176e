"""Matched noise: a control for the quantizers. "Knowledge comes back under rtn4" has two
readings (docs/theory.md, issue 22): (a) rounding snaps a sub-Δ unlearning update back onto the
target's codes (what update retention γ measures), or (b) the unlearned state is fragile and
*any* perturbation of that size undoes it. `kind: noise` separates them: it perturbs exactly the
weights the named quantizer (`matched_to`) changes, tensor by tensor, with random noise whose
Frobenius norm equals that quantizer's error ‖Q(w) − w‖ on *this* model's tensor (times
`scale`). Recovery under the quantizer but not under its matched noise points to (a); recovery
under both points to (b).

The norm is matched exactly, not in expectation: ε = scale · ‖Q(w) − w‖ · z / ‖z‖ with z drawn
i.i.d. (Gaussian, or uniform on [−1, 1]). A tensor the quantizer leaves unchanged (it already
lies on the grid) gets no noise, so a model that lies on the grid is left as it was and the
coverage check says so instead of measuring it under the control's name.

Draws: z comes from a generator seeded by (seed, draw, tensor name), so the noise of one tensor
does not depend on which others exist or their order. `draws: K` makes the engine measure K
independent draws (0..K−1) on fresh copies of the model and report their mean (see
`combine_draws`); each draw's value is kept in the result's details. A claim that must hold
for every draw names one transform per draw (`seed: 0`, `seed: 1`, ... with `draws: 1`).
"""
from __future__ import annotations

import copy
import hashlib
from typing import Any, Iterator, Mapping, Sequence

from ..lazy import no_grad, torch

from ..errors import RunError
from ..metrics.result import MetricResult
from .base import Readback, Transform, TransformContext
from .roles import iter_parameters


def draw_seed(seed: int, draw: int, name: str) -> int:
    """A 63-bit generator seed for one tensor of one draw (stable across processes)."""
    h = hashlib.blake2b(f"{seed}:{draw}:{name}".encode(), digest_size=8).digest()
    return int.from_bytes(h, "little") & ((1 << 63) - 1)


def unit_noise(shape: Sequence[int], distribution: str, seed: int) -> torch.Tensor:
    """z / ‖z‖ (float32, on the CPU so every device draws the same numbers)."""
    g = torch.Generator().manual_seed(seed)
    if distribution == "gaussian":
        z = torch.randn(tuple(shape), generator=g, dtype=torch.float32)
    else:
        z = torch.rand(tuple(shape), generator=g, dtype=torch.float32).mul_(2).sub_(1)
    return z.div_(z.norm().clamp_min(torch.finfo(torch.float32).tiny))


def matched_noise(w: torch.Tensor, error_norm: float, distribution: str, seed: int,
                  scale: float = 1.0) -> torch.Tensor:
    """Noise of w's shape with Frobenius norm scale · error_norm."""
    z = unit_noise(w.shape, distribution, seed)
    return z.mul_(scale * error_norm).to(device=w.device, dtype=w.dtype)


class NoiseTransform(Transform):
    """`kind: noise`. `bind` gives it the quantizer it is matched to (the engine does this
    from `matched_to`); `with_draw(k)` the same control at draw k."""

    VERSION = "noise-1"

    def __init__(self, config: Any, draw: int = 0) -> None:
        super().__init__(config)
        self.draw = draw
        self.quantizer: Transform | None = None
        self.errors: dict[str, float] = {}  # tensor name -> ‖Q(w) − w‖ of the last apply

    @property
    def uses(self) -> tuple[str, ...]:
        """Spec transforms this one is built on (the engine binds them and keys on them)."""
        return (self.config.matched_to,)

    @property
    def draws(self) -> int:
        return self.config.draws

    def bind(self, others: Mapping[str, Transform]) -> NoiseTransform:
        self.quantizer = others[self.config.matched_to]
        return self

    def with_draw(self, draw: int) -> NoiseTransform:
        out = NoiseTransform(self.config, draw)
        out.quantizer = self.quantizer
        return out

    def _quantizer(self) -> Transform:
        if self.quantizer is None:
            raise RunError(f"noise matched_to '{self.config.matched_to}' was never bound to "
                           f"that transform (call bind() with the spec's transforms)")
        return self.quantizer

    def coverage_hint(self) -> str:
        return (f"Matched noise perturbs only what '{self.config.matched_to}' changes, with "
                f"its error's norm: where that quantizer leaves a weight exactly as it is "
                f"(the model already lies on its grid, error 0), the noise is 0 too. Measure "
                f"this model under '{self.config.matched_to}' itself, or match the noise to a "
                f"quantizer whose grid it does not lie on.")

    @no_grad
    def quantizer_errors(self, model: Any, ctx: TransformContext) -> dict[str, float]:
        """‖Q(w) − w‖ per weight the quantizer selects (name -> norm), on this model."""
        q = self._quantizer()
        params = list(iter_parameters(model))
        if q.streams:
            out: dict[str, float] = {}
            for info, p in params:
                res = q.quantize_tensor(info, p.data)
                if res is not None:
                    out[info.name] = float((res.values.float() - p.data.float()).norm())
            return out
        # a whole-model quantizer (GPTQ, AWQ): quantize a copy and read it back
        before = {info.name: p.detach().float().cpu().clone() for info, p in params}
        qmodel = q.apply(copy.deepcopy(model), ctx)
        out = {}
        for r in q.readback(qmodel):
            if r.quantized and r.name in before:
                out[r.name] = float((r.value.float().cpu() - before[r.name]).norm())
        del qmodel
        return out

    @no_grad
    def apply(self, model: Any, ctx: TransformContext) -> Any:
        c = self.config
        self.errors = self.quantizer_errors(model, ctx)
        if not self.errors:
            raise RunError(f"'{c.matched_to}' selects none of this model's weights, so there "
                           f"is nothing to match noise to")
        for info, p in iter_parameters(model):
            norm = self.errors.get(info.name)
            if norm is None or norm == 0.0 or c.scale == 0.0:
                continue
            seed = draw_seed(c.seed, self.draw, info.name)
            p.data.add_(matched_noise(p.data, norm, c.distribution, seed, c.scale))
        return model

    def readback(self, model: Any) -> Iterator[Readback]:
        for name, p in model.named_parameters():
            if p.is_floating_point():
                yield Readback(name, p.detach(), name in self.errors)


def combine_draws(results: Sequence[MetricResult]) -> MetricResult:
    """One result from K draws' results: value and per-sample scores are the means over
    draws; `details.draws` keeps every draw's value (and min/max) so a report shows the
    spread; the other details are the first draw's."""
    if len(results) == 1:
        return results[0]
    values = [r.value for r in results]
    ns = {r.n for r in results}
    if len(ns) != 1:
        raise RunError(f"noise draws measured different sample counts {sorted(ns)}")
    lens = {len(r.per_sample) for r in results}
    per_sample: tuple[float, ...] = ()
    if len(lens) == 1:
        k = len(results)
        per_sample = tuple(sum(col) / k for col in zip(*(r.per_sample for r in results)))
    details = {**results[0].details,
               "draws": {"values": values, "min": min(values), "max": max(values),
                         "combine": "mean"}}
    return MetricResult(value=sum(values) / len(values), n=results[0].n,
                        per_sample=per_sample, details=details)
