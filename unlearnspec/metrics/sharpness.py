"""Sharpness: how much the forget-set loss rises when the weights are nudged at random.

The second reading of "knowledge comes back under quantization" (issue 22, docs/theory.md) is
that the unlearned state is fragile: it sits where a small perturbation of any direction
undoes it. This metric measures that directly. Each decoder weight tensor w gets
ε = rho · ‖w‖_F · z/‖z‖_F (z i.i.d. Gaussian or uniform, seeded per (seed, draw, tensor)
as the matched-noise transform seeds it), the loss of every forget item is measured, the
weights are restored bit for bit, and this is repeated for `draws` draws. The value is the
mean over items and draws of loss(w + ε) − loss(w), in nats per token: near 0 = flat; a
subject whose value is far above its target's is fragile. Per-sample values are each item's
increase averaged over draws, so a claim can compare subject and target item by item.

Items (`source`): `knowmem` (default) scores the answer tokens of
"Question: {q}\\nAnswer: {a}" for the split's QA pairs (what KnowMem asks, without the ICL
shots); `documents` the tokens after BOS of the split's privleak documents.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from ..data import Corpus
from ..errors import RunError
from ..registry import check
from .registry import Split, metric
from .result import MetricResult
from .scores import require_samples

if TYPE_CHECKING:
    import numpy as np
    import torch


@dataclass(frozen=True)
class SharpnessConfig:
    """Forget-set loss increase under random weight perturbations of relative size `rho`
    (‖ε‖/‖w‖ per decoder tensor), averaged over `draws` seeded draws (see
    unlearnspec/metrics/sharpness.py). `source`: `knowmem` QA answers or privleak
    `documents` of `split`."""

    rho: float = 0.01
    draws: int = 8
    seed: int = 0
    source: Literal["knowmem", "documents"] = "knowmem"
    split: Split = "forget"
    distribution: Literal["gaussian", "uniform"] = "gaussian"

    def __post_init__(self) -> None:
        check(0 <= self.rho <= 1, "rho (the relative perturbation size) must lie in [0, 1]",
              "rho")
        check(1 <= self.draws <= 1000, "draws must be between 1 and 1000", "draws")
        check(self.seed >= 0, "seed must be 0 or more", "seed")
        check(self.source in ("knowmem", "documents"), "source must be 'knowmem' or "
              "'documents'", "source")
        check(self.source == "documents" or self.split in ("forget", "retain"),
              "knowmem has forget and retain QA only", "split")
        check(self.distribution in ("gaussian", "uniform"),
              "distribution must be 'gaussian' or 'uniform'", "distribution")


def _item_losses(model: Any, tokenizer: Any, corpus: Corpus, config: SharpnessConfig,
                 batch_size: int | str) -> np.ndarray:
    """Mean token NLL of each item, in data order."""
    import numpy as np

    from .core import token_scores
    from .utility import continuation_logprobs

    if config.source == "knowmem":
        records = corpus.knowmem(config.split)
        require_samples(records, corpus.root / "knowmem" / f"{config.split}_qa.json")
        pairs = [(f"Question: {r['question']}\nAnswer: ", r["answer"]) for r in records]
        lps = continuation_logprobs(model, tokenizer, pairs, batch_size=batch_size)
    else:
        docs = corpus.privleak(config.split)
        require_samples(docs, corpus.root / "privleak" / f"{config.split}.json")
        scores, _ = token_scores(model, tokenizer, docs, batch_size=batch_size)
        lps = [s.logprobs for s in scores]
        for i, lp in enumerate(lps):
            if lp.size == 0:
                raise RunError(f"{corpus.root / 'privleak' / f'{config.split}.json'}: "
                               f"document {i} has no token after BOS to score")
    return np.array([-float(np.mean(lp)) for lp in lps], dtype=np.float64)


def perturbable(model: Any) -> list[tuple[str, torch.nn.Parameter]]:
    """The decoder weight matrices a perturbation touches (the roles `rtn` quantizes)."""
    from ..transforms.roles import DECODER_ROLES, iter_parameters

    out = []
    for info, p in iter_parameters(model):
        if info.role not in DECODER_ROLES or info.layout == "other":
            continue
        if not p.is_floating_point():
            raise RunError(f"sharpness perturbs float weights, but {info.name} is stored as "
                           f"{p.dtype} (a quantized model): measure sharpness at full "
                           f"precision (no `@ transform`)")
        out.append((info.name, p))
    return out


def perturb_(params: list[tuple[str, torch.nn.Parameter]], config: SharpnessConfig,
             draw: int) -> None:
    """Add one draw's relative-size noise to every tensor, in place."""
    import torch

    from ..transforms.noise import draw_seed, unit_noise

    with torch.no_grad():
        for name, p in params:
            z = unit_noise(p.shape, config.distribution, draw_seed(config.seed, draw, name))
            scale = config.rho * float(p.detach().float().norm())
            p.data.add_(z.mul_(scale).to(device=p.device, dtype=p.dtype))


@metric("sharpness", SharpnessConfig, unit="nats", tags={"data"})
def sharpness(model: Any, tokenizer: Any, corpus: Corpus, config: SharpnessConfig, *,
              batch_size: int | str = 32) -> MetricResult:
    import torch

    with torch.no_grad():
        return _sharpness(model, tokenizer, corpus, config, batch_size)


def _sharpness(model: Any, tokenizer: Any, corpus: Corpus, config: SharpnessConfig,
               batch_size: int | str) -> MetricResult:
    import numpy as np

    params = perturbable(model)
    if not params:
        raise RunError("sharpness found no decoder weight matrices to perturb in this model")
    base = _item_losses(model, tokenizer, corpus, config, batch_size)
    saved = [p.detach().clone() for _, p in params]
    draws = []
    try:
        for k in range(config.draws):
            perturb_(params, config, k)
            draws.append(_item_losses(model, tokenizer, corpus, config, batch_size) - base)
            for (_, p), w in zip(params, saved):
                p.data.copy_(w)
    finally:  # the engine measures other metrics on this same model afterwards
        for (_, p), w in zip(params, saved):
            p.data.copy_(w)
    rises = np.mean(np.stack(draws), axis=0)
    per_draw = [float(np.mean(d)) for d in draws]
    return MetricResult(value=float(np.mean(rises)), n=len(rises),
                        per_sample=tuple(float(x) for x in rises), details={
                            "base_loss": float(np.mean(base)), "rho": config.rho,
                            "draws": per_draw, "source": config.source,
                            "split": config.split,
                            "tensors": len(params),
                            "unit": "nats per token, loss(w + eps) - loss(w)"})
