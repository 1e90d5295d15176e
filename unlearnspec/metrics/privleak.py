"""PrivLeak (MUSE C3): Min-K% Prob (k = 40%) AUC of forget vs holdout, relative to retrain.

`privleak_auc` is what the registry runs: the raw AUC of one model (forget labelled 0,
holdout 1). The engine measures it on the subject and on the reference (the spec's retrain
model, or takes `auc_retrain` from the config) and combines them with `privleak_score`.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..data import Corpus
from ..registry import check
from .registry import metric
from .result import MetricResult
from .scores import privleak_percent


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


@metric("privleak", PrivLeakConfig, unit="percent", tags={"data", "reference"})
def privleak_auc(model: Any, tokenizer: Any, corpus: Corpus, config: PrivLeakConfig, *,
                 batch_size: int | str = 32) -> MetricResult:
    """The Min-K% AUC; `per_sample` holds per-document Min-K% scores, forget then holdout."""
    from .mia import auc_result

    return auc_result(model, tokenizer, corpus, "mink", config.k, batch_size)


def privleak_score(auc: float, auc_retrain: float) -> float:
    """(AUC − AUC_retrain) / AUC_retrain × 100. ≈ 0: like retrain; ≈ −100: still remembers;
    large positive: over-unlearned. Raises RunError when AUC_retrain is 0 or not finite."""
    return privleak_percent(auc, auc_retrain)
