"""The metrics a spec can name (`kind: knowmem`), and the one import surface of a metric
plug-in (docs/metrics.md, "Writing a metric")::

    from unlearnspec.metrics import Corpus, MetricResult, check, mean_result, metric

Each built-in metric module declares its config and registers its function with `@metric`
(knowmem.py, verbmem.py, privleak.py, mia.py, sharpness.py, weights.py, rwku.py,
utility.py, tofu.py, lmeval.py); importing this package registers them all
without importing torch or numpy. The scoring core's model-running helpers
(`generate_greedy`, `generate_greedy_ids`, `decode_new`, `score_ids`, `token_scores`,
`next_token_logprobs`, `TokenScores`) are importable from here too, but they import torch:
import them inside the metric function, so that registering it stays cheap.
"""
from __future__ import annotations

from typing import Any

from ..data.muse import Corpus
from ..registry import ConfigError, check
from .registry import METRICS, Split, metric
from .result import MetricResult
from .scores import (KNOWMEM_STOPS, cut_at_stops, mean_result, mia_auc, require_samples,
                     require_some_output, rouge_l_f1)

_CORE = ("TokenScores", "decode_new", "generate_greedy", "generate_greedy_ids",
         "next_token_logprobs", "score_ids", "token_scores")

__all__ = ["METRICS", "ConfigError", "Corpus", "KNOWMEM_STOPS", "MetricResult", "Split",
           "check", "cut_at_stops", "mean_result", "metric", "mia_auc", "require_samples",
           "require_some_output", "rouge_l_f1", *_CORE]


def __getattr__(name: str) -> Any:
    if name in _CORE:  # the torch-using core, imported when a metric first asks for it
        from . import core

        return getattr(core, name)
    raise AttributeError(f"module 'unlearnspec.metrics' has no attribute {name!r}")


# the built-in metrics, registered in this order (the editor schema lists them so)
from . import verbmem, knowmem, privleak, mia, sharpness, weights  # noqa: E402,F401,I001
from . import rwku, utility, tofu, lmeval  # noqa: E402,F401,I001
