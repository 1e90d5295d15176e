"""What a model holds, per role: how many weight tensors and weights of each kind (attention,
mlp, experts, router, embed, head, ...), by the rule in `roles`. The denominator of coverage,
and a quick way to see what a transform has to handle (`benchmarks/transform_coverage.py`)."""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Iterable

from .roles import DECODER_ROLES, ROLES, WeightInfo, parameter_roles

_INDEX = re.compile(r"\.\d+\.")


@dataclass(frozen=True)
class RoleCount:
    tensors: int
    weights: int


def count_roles(infos: Iterable[WeightInfo]) -> dict[str, RoleCount]:
    """Per role (in ROLES order, only roles present): tensors and weights."""
    tensors: dict[str, int] = {}
    weights: dict[str, int] = {}
    for info in infos:
        tensors[info.role] = tensors.get(info.role, 0) + 1
        weights[info.role] = weights.get(info.role, 0) + info.numel
    return {r: RoleCount(tensors[r], weights[r]) for r in ROLES if r in tensors}


def inventory(model: Any) -> dict[str, RoleCount]:
    """`count_roles` over a model's parameters."""
    return count_roles(parameter_roles(model).values())


def decoder_weights(counts: dict[str, RoleCount]) -> int:
    return sum(c.weights for r, c in counts.items() if r in DECODER_ROLES)


def pattern(name: str) -> str:
    """A tensor name with its layer / expert indices replaced by `*`, to name a module once for
    all layers (`model.layers.*.mlp.experts.gate_up_proj`)."""
    return _INDEX.sub(".*.", _INDEX.sub(".*.", name))
