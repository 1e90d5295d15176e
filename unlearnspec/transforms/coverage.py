"""Did the transform quantize what it had to? Weights selected and changed, per role, measured
on the model the metrics run on (or on the tensors a streamed weight metric compares).

A transform that quantizes only part of a model's decoder measures the full-precision model
under a quantizer's name: GPT-2's Conv1D weights or Mixtral's 3-D expert tensors used to stay
float under `rtn`, so `knowmem_forget @ rtn4` was the fp number. Every (model, transform)
therefore records its coverage, and when more than `LIMIT` of the decoder's weights are left
as they were, that is a RunError naming the modules, never a number.

"Changed" is measured, not claimed: each decoder tensor (each expert of a 3-D expert tensor)
is fingerprinted before `apply` and compared with the transformed model's readback. A
selected tensor that comes back unchanged counts as covered only when it already lies on
the transform's grid (Q(w) == w, e.g. rtn4 on a checkpoint that is already 4-bit).
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any, Iterable, Iterator, Mapping

from ..errors import RunError
from .inventory import pattern
from .roles import DECODER_ROLES, ROLES, WeightInfo, iter_parameters

LIMIT = 0.01  # the share of decoder weights a transform may leave untouched (rounding aside)


@dataclass(frozen=True)
class RoleCoverage:
    """Weights of one role: in the model, selected by the transform, changed by it, and
    selected but already on its grid (unchanged because Q(w) == w)."""

    weights: int = 0
    selected: int = 0
    changed: int = 0
    on_grid: int = 0

    @property
    def covered(self) -> int:
        return self.changed + self.on_grid

    def __add__(self, other: RoleCoverage) -> RoleCoverage:
        return RoleCoverage(self.weights + other.weights, self.selected + other.selected,
                            self.changed + other.changed, self.on_grid + other.on_grid)


@dataclass(frozen=True)
class Coverage:
    """Per-role coverage of one (model, transform), and the decoder modules left untouched
    (`pattern (Class): why`, layers folded into `*`)."""

    roles: Mapping[str, RoleCoverage]
    untouched: tuple[str, ...] = ()
    source: str = "model"  # "model": measured on the transformed model; "stream": checkpoint tensors

    @property
    def decoder(self) -> RoleCoverage:
        total = RoleCoverage()
        for role, rc in self.roles.items():
            if role in DECODER_ROLES:
                total = total + rc
        return total

    @property
    def decoder_share(self) -> float:
        """Covered share of the decoder's weights (1.0 for a model with none: nothing to miss)."""
        d = self.decoder
        return d.covered / d.weights if d.weights else 1.0

    def to_json(self) -> dict[str, Any]:
        d = self.decoder
        return {"source": self.source, "decoder": {**vars(d), "share": self.decoder_share},
                "roles": {r: vars(rc) for r, rc in self.roles.items()},
                "untouched": list(self.untouched)}

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> Coverage:
        return cls({r: RoleCoverage(**v) for r, v in d["roles"].items()},
                   tuple(d.get("untouched", ())), d.get("source", "model"))

    def check(self, what: str, transform: Any) -> Coverage:
        """self, or a RunError when more than LIMIT of the decoder is untouched. `what` names
        the spec's transform and model."""
        d = self.decoder
        if d.weights == 0 or 1.0 - self.decoder_share <= LIMIT:
            return self
        left = d.weights - d.covered
        hint = getattr(transform, "coverage_hint", None)
        hint = hint() if callable(hint) else DEFAULT_HINT
        raise RunError(
            f"{what}: leaves {left:,} of the decoder's {d.weights:,} weights "
            f"({100 * left / d.weights:.0f}%) as they were, so its numbers would be the "
            f"full-precision model's under a quantizer's name. Untouched: "
            f"{'; '.join(self.untouched[:8])}{' …' if len(self.untouched) > 8 else ''}. "
            f"{hint}")


DEFAULT_HINT = ("Use a transform that handles these modules (`kind: rtn` quantizes nn.Linear, "
                "Conv1D and MoE expert tensors), or leave this model out of claims under this "
                "transform.")


def _digest(t: Any) -> bytes:
    x = t.detach().float().cpu().contiguous()
    return hashlib.blake2b(x.numpy().tobytes(), digest_size=16).digest()


def _units(info: WeightInfo, t: Any) -> Iterator[tuple[str, Any]]:
    """The pieces coverage counts: a tensor, or each expert of a 3-D expert tensor."""
    if info.layout == "experts" and t.ndim == 3:
        for e in range(t.shape[0]):
            yield f"{info.name}[{e}]", t[e]
    else:
        yield info.name, t


@dataclass
class Snapshot:
    """The decoder (and head/embedding) weights of a model before a transform: what each is,
    and a fingerprint per unit."""

    infos: dict[str, WeightInfo]
    digests: dict[str, bytes] = field(default_factory=dict)


def snapshot(model: Any) -> Snapshot:
    snap = Snapshot({})
    for info, p in iter_parameters(model):
        snap.infos[info.name] = info
        for unit, t in _units(info, p):
            snap.digests[unit] = _digest(t)
    return snap


def measure(snap: Snapshot, transform: Any, model: Any) -> Coverage:
    """Coverage of `transform` on `model` (already transformed), against the snapshot taken
    before. Reads the model through `transform.readback`, so bitsandbytes' and GPTQ's packed
    layers are compared as the float weights they compute with."""
    readback = {r.name: r for r in transform.readback(model)}
    per: dict[str, RoleCoverage] = {}
    untouched: dict[str, str] = {}
    for name, info in snap.infos.items():
        rb = readback.get(name)
        selected = rb is not None and rb.quantized
        value = rb.value if rb is not None else None
        if value is not None and tuple(value.shape) != info.shape:
            raise RunError(f"{type(transform).__name__} reads {name} back with shape "
                           f"{tuple(value.shape)}, but the model holds it as {info.shape}")
        changed = on_grid = 0
        grid_q = None
        for unit, t in (_units(info, value) if value is not None else ()):
            n = t.numel()
            if _digest(t) != snap.digests[unit]:
                changed += n
                continue
            if selected and getattr(transform, "streams", False):
                if grid_q is None:
                    q = transform.quantize_tensor(info, value)
                    grid_q = dict(_units(info, q.values)) if q is not None else {}
                qv = grid_q.get(unit)
                if qv is not None and _digest(qv) == snap.digests[unit]:
                    on_grid += n
        rc = RoleCoverage(info.numel, info.numel if selected else 0, changed, on_grid)
        per[info.role] = per.get(info.role, RoleCoverage()) + rc
        if info.decoder and rc.covered < info.numel:
            why = ("not selected" if not selected else "selected but left unchanged")
            untouched.setdefault(f"{pattern(name)} ({info.module_class})", why)
    roles = {r: per[r] for r in ROLES if r in per}
    return Coverage(roles, tuple(f"{k}: {v}" for k, v in untouched.items()), "model")


def apply_measured(transform: Any, model: Any, ctx: Any) -> tuple[Any, Coverage]:
    """`transform.apply(model, ctx)` and its coverage (not checked: see Coverage.check)."""
    snap = snapshot(model)
    out = transform.apply(model, ctx)
    return out, measure(snap, transform, out)


def streamed(entries: Iterable[tuple[WeightInfo, bool]], decoder_infos: Iterable[WeightInfo]
             ) -> Coverage:
    """Coverage of a streamed comparison: `entries` are (checkpoint tensor, selected) for every
    checkpoint tensor the roles list; the decoder's size comes from the model's own parameters
    (`decoder_infos`), so tensors missing from the checkpoint count as untouched. Streamed
    quantization of a selected tensor always changes or grids it, so selected = covered."""
    per: dict[str, RoleCoverage] = {}
    untouched: dict[str, str] = {}
    seen: dict[str, int] = {}
    present: set[str] = set()
    for info, selected in entries:
        present.add(info.source or info.name)
        n = info.numel if selected else 0
        per[info.role] = per.get(info.role, RoleCoverage()) + RoleCoverage(0, n, n, 0)
        if selected:
            seen[info.source or info.name] = seen.get(info.source or info.name, 0) + info.numel
        elif info.decoder:
            untouched.setdefault(f"{pattern(info.name)} ({info.module_class})", "not selected")
    for info in decoder_infos:
        per[info.role] = per.get(info.role, RoleCoverage()) + RoleCoverage(info.numel, 0, 0, 0)
        if info.decoder and info.name not in present:
            untouched.setdefault(f"{pattern(info.name)} ({info.module_class})",
                                 "not in the streamed tensors")
    roles = {r: per[r] for r in ROLES if r in per}
    return Coverage(roles, tuple(f"{k}: {v}" for k, v in untouched.items()), "stream")
