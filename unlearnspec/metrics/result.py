"""The value a metric measurement produces. Torch-free; JSON round-trips exactly."""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Mapping


@dataclass(frozen=True)
class MetricResult:
    """`value` is the metric (e.g. ROUGE-L F1 × 100); `n` the number of samples it averages;
    `per_sample` each sample's score in data order; `details` anything worth reporting
    (an AUC, a few generations, per-layer numbers)."""

    value: float
    n: int
    per_sample: tuple[float, ...] = ()
    details: Mapping[str, Any] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        """True when the value can be used in a claim: finite and over at least one sample."""
        return self.n > 0 and math.isfinite(self.value)

    def to_json(self) -> dict[str, Any]:
        return {
            "value": self.value,
            "n": self.n,
            "per_sample": list(self.per_sample),
            "details": dict(self.details),
        }

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> "MetricResult":
        return cls(
            value=float(d["value"]),
            n=int(d["n"]),
            per_sample=tuple(float(x) for x in d.get("per_sample", ())),
            details=dict(d.get("details", {})),
        )
