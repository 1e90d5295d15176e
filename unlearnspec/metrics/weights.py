"""The weight-space metrics (code-flip rate, update retention γ): they compare the subject's
checkpoint with its reference model's under the claim's transform and read no data. Their
implementation streams checkpoint tensors (transforms/weightspace.py); this module declares
them, so the registry names them without importing it."""
from __future__ import annotations

from dataclasses import dataclass

from ..registry import Component
from .registry import METRICS


@dataclass(frozen=True)
class WeightMetricConfig:
    """Compared against `reference` (default: the subject's `from:` model)."""

    reference: str | None = None


METRICS.add(Component("code_flip_rate", WeightMetricConfig,
                      "unlearnspec.transforms.weightspace:code_flip_rate",
                      tags=frozenset({"weights"}), unit="fraction"))
METRICS.add(Component("update_retention", WeightMetricConfig,
                      "unlearnspec.transforms.weightspace:update_retention",
                      tags=frozenset({"weights"}), unit="ratio"))
