"""Membership-inference AUCs of forget (label 0) vs holdout (label 1) documents.

All four attacks read the same `core.token_scores` forward pass; each registered kind is its
own metric so a claim can name it. Every score is oriented "higher = less likely a member",
and the AUC is `roc_curve(y, -score)`, so all of them read like MUSE's PrivLeak AUC: ≈ 0 when
the model still remembers the forget set, ≈ 0.5 when it cannot tell.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable, Sequence

from ..data import Corpus
from ..errors import RunError
from ..registry import check
from .registry import metric
from .result import MetricResult
from .scores import loss_score, mia_auc, mink_score, minkpp_score, require_samples, zlib_score

if TYPE_CHECKING:
    from .core import TokenScores


@dataclass(frozen=True)
class MiaConfig:
    """A membership-inference AUC of forget (label 0) vs holdout (label 1)."""

    k: float = 0.4

    def __post_init__(self) -> None:
        check(0 < self.k <= 1, "k must lie in (0, 1]", "k")


Attack = Callable[["TokenScores", str, float], float]

ATTACKS: dict[str, Attack] = {
    "loss": lambda s, text, k: loss_score(s.logprobs),
    "zlib": lambda s, text, k: zlib_score(s.logprobs, text),
    "mink": lambda s, text, k: mink_score(s.logprobs, k),
    "minkpp": lambda s, text, k: minkpp_score(s.logprobs, s.mu, s.sigma, k),
}


def document_scores(model: Any, tokenizer: Any, corpus: Corpus, attacks: Sequence[str], *,
                    k: float, batch_size: int | str) -> tuple[dict[str, dict[str, list[float]]], dict]:
    """{attack: {"forget": [...], "holdout": [...]}} from one forward pass per document."""
    from .core import token_scores

    out: dict[str, dict[str, list[float]]] = {a: {} for a in attacks}
    info: dict[str, Any] = {}
    for split in ("forget", "holdout"):
        path = corpus.root / "privleak" / f"{split}.json"
        docs = corpus.privleak(split)
        require_samples(docs, path)
        scores, cut = token_scores(model, tokenizer, docs, batch_size=batch_size)
        for i, s in enumerate(scores):
            if s.logprobs.size == 0:
                raise RunError(f"{path}: document {i} has no token after BOS to score; "
                               f"remove the empty document")
        for a in attacks:
            out[a][split] = [ATTACKS[a](s, d, k) for s, d in zip(scores, docs)]
        info[f"n_{split}"] = len(docs)
        info[f"cut_to_context_{split}"] = cut
    return out, info


def auc_result(model: Any, tokenizer: Any, corpus: Corpus, attack: str, k: float,
               batch_size: int | str) -> MetricResult:
    scores, info = document_scores(model, tokenizer, corpus, [attack], k=k,
                                   batch_size=batch_size)
    forget, holdout = scores[attack]["forget"], scores[attack]["holdout"]
    value = mia_auc(forget, holdout)
    return MetricResult(value=value, n=len(forget) + len(holdout),
                        per_sample=tuple(forget + holdout),
                        details={**info, "attack": attack, "k": k,
                                 "labels": "forget=0, holdout=1; per_sample: forget then holdout"})


@metric("mia_loss", MiaConfig, unit="auc", tags={"data"})
def mia_loss(model: Any, tokenizer: Any, corpus: Corpus, config: MiaConfig, *,
             batch_size: int | str = 32) -> MetricResult:
    return auc_result(model, tokenizer, corpus, "loss", config.k, batch_size)


@metric("mia_zlib", MiaConfig, unit="auc", tags={"data"})
def mia_zlib(model: Any, tokenizer: Any, corpus: Corpus, config: MiaConfig, *,
             batch_size: int | str = 32) -> MetricResult:
    return auc_result(model, tokenizer, corpus, "zlib", config.k, batch_size)


@metric("mia_mink", MiaConfig, unit="auc", tags={"data"})
def mia_mink(model: Any, tokenizer: Any, corpus: Corpus, config: MiaConfig, *,
             batch_size: int | str = 32) -> MetricResult:
    return auc_result(model, tokenizer, corpus, "mink", config.k, batch_size)


@metric("mia_minkpp", MiaConfig, unit="auc", tags={"data"})
def mia_minkpp(model: Any, tokenizer: Any, corpus: Corpus, config: MiaConfig, *,
               batch_size: int | str = 32) -> MetricResult:
    return auc_result(model, tokenizer, corpus, "minkpp", config.k, batch_size)
