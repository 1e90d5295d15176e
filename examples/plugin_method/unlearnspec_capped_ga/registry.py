"""What the entry point loads: a torch-free Component (name, config class, implementation
path). unlearnspec imports it when a spec names `ga_capped`, and imports the implementation
(`method.py`, which uses torch) only when a run trains."""
from __future__ import annotations

from dataclasses import dataclass

from unlearnspec.registry import Component, check
from unlearnspec.unlearn.registry import UnlearnConfig


@dataclass(frozen=True)
class CappedGAConfig(UnlearnConfig):
    """UnlearnConfig plus `cap`: stop ascending a forget sequence once its mean token
    cross-entropy exceeds `cap` nats (plain GA keeps pushing it towards infinity)."""

    cap: float = 6.0

    def __post_init__(self) -> None:
        super().__post_init__()
        check(self.cap > 0, f"cap must be positive (in nats), got {self.cap}", "cap")


GA_CAPPED = Component(
    "ga_capped", CappedGAConfig, "unlearnspec_capped_ga.method:GA_CAPPED",
    "gradient ascent with a per-sequence cross-entropy cap, + gradient descent on retain",
)
