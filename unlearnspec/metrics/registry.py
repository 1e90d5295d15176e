"""Metrics a spec can name (`kind: knowmem`). Torch-free: configs only.

Tags the engine reads: "data" (needs the metric's corpus), "weights" (a weight-space metric:
compares the subject with its reference model under the claim's transform, reads no data),
"reference" (needs a reference model's measurement, e.g. PrivLeak's AUC_retrain).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from ..registry import Component, Registry, check

METRICS = Registry("metric", "unlearnspec.metrics")

Split = Literal["forget", "retain", "holdout"]


@dataclass(frozen=True)
class VerbMemConfig:
    split: Split = "forget"
    max_new_tokens: int = 128
    gt_max_tokens: int = 128

    def __post_init__(self) -> None:
        check(self.max_new_tokens > 0, "max_new_tokens must be positive", "max_new_tokens")


@dataclass(frozen=True)
class KnowMemConfig:
    split: Literal["forget", "retain"] = "forget"
    max_new_tokens: int = 32
    icl: bool = True

    def __post_init__(self) -> None:
        check(self.split in ("forget", "retain"), "split must be 'forget' or 'retain'", "split")
        check(self.max_new_tokens > 0, "max_new_tokens must be positive", "max_new_tokens")


@dataclass(frozen=True)
class PrivLeakConfig:
    """PrivLeak = (AUC - AUC_retrain) / AUC_retrain * 100, Min-K% (k) over forget vs holdout.
    AUC_retrain is measured on model `reference` (at full precision) unless `auc_retrain` is
    given as a number."""

    k: float = 0.4
    reference: str | None = "retrain"
    auc_retrain: float | None = None

    def __post_init__(self) -> None:
        check(0 < self.k <= 1, "k must lie in (0, 1]", "k")
        check(self.auc_retrain is None or 0 < self.auc_retrain <= 1,
              "auc_retrain must lie in (0, 1]", "auc_retrain")


@dataclass(frozen=True)
class MiaConfig:
    """A membership-inference AUC of forget (label 0) vs holdout (label 1)."""

    k: float = 0.4

    def __post_init__(self) -> None:
        check(0 < self.k <= 1, "k must lie in (0, 1]", "k")


@dataclass(frozen=True)
class WeightMetricConfig:
    """Compared against `reference` (default: the subject's `from:` model)."""

    reference: str | None = None


METRICS.add(Component("verbmem", VerbMemConfig, "unlearnspec.metrics.verbmem:verbmem",
                      tags=frozenset({"data"}), unit="percent"))
METRICS.add(Component("knowmem", KnowMemConfig, "unlearnspec.metrics.knowmem:knowmem",
                      tags=frozenset({"data"}), unit="percent"))
METRICS.add(Component("privleak", PrivLeakConfig, "unlearnspec.metrics.privleak:privleak_auc",
                      tags=frozenset({"data", "reference"}), unit="percent"))
for _kind in ("mia_loss", "mia_zlib", "mia_mink", "mia_minkpp"):
    METRICS.add(Component(_kind, MiaConfig, f"unlearnspec.metrics.mia:{_kind}",
                          tags=frozenset({"data"}), unit="auc"))
METRICS.add(Component("code_flip_rate", WeightMetricConfig,
                      "unlearnspec.transforms.weightspace:code_flip_rate",
                      tags=frozenset({"weights"}), unit="fraction"))
METRICS.add(Component("update_retention", WeightMetricConfig,
                      "unlearnspec.transforms.weightspace:update_retention",
                      tags=frozenset({"weights"}), unit="ratio"))
