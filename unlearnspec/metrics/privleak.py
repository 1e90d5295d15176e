"""PrivLeak (MUSE C3): Min-K% Prob (k = 40%) AUC of forget vs holdout, relative to retrain.

`privleak_auc` is what the registry runs: the raw AUC of one model (forget labelled 0,
holdout 1). The engine measures it on the subject and on the reference (the spec's retrain
model, or takes `auc_retrain` from the config) and combines them with `privleak_score`.
"""
from __future__ import annotations

from typing import Any

from ..data import Corpus
from .mia import auc_result
from .registry import PrivLeakConfig
from .result import MetricResult
from .scores import privleak_percent


def privleak_auc(model: Any, tokenizer: Any, corpus: Corpus, config: PrivLeakConfig, *,
                 batch_size: int | str = 32) -> MetricResult:
    """The Min-K% AUC; `per_sample` holds per-document Min-K% scores, forget then holdout."""
    return auc_result(model, tokenizer, corpus, "mink", config.k, batch_size)


def privleak_score(auc: float, auc_retrain: float) -> float:
    """(AUC − AUC_retrain) / AUC_retrain × 100. ≈ 0: like retrain; ≈ −100: still remembers;
    large positive: over-unlearned. Raises RunError when AUC_retrain is 0 or not finite."""
    return privleak_percent(auc, auc_retrain)
