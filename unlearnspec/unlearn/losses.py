"""The forget losses (GA, NPO) and retain regularizers (GDR, KLR) of appendix B.

Every loss has the signature `loss(model, batch, ref, config) -> scalar Tensor` (`ref`: the
frozen target, or None when the loss does not need it) and is *minimised* by the training
loop. Log-probabilities are computed in float32 from the logits, whatever the autocast dtype.

These implement the published formulas. MUSE's and the paper's released code differ: their
NPO takes the log-ratio of raw summed *logits*, and their KLR passes logits to `kl_div` as if
they were log-probabilities; neither is Eq. 8 / Eq. 10. KLR's direction defaults to the one
those references (and TOFU, open-unlearning) compute, KL(p_target ‖ p_θ).
"""
from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F

from .data import IGNORE, Batch


def _logits(model: Any, batch: Batch) -> torch.Tensor:
    return model(input_ids=batch.input_ids, attention_mask=batch.attention_mask).logits.float()


def token_logprobs(logits: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor,
                                                                         torch.Tensor]:
    """log p(x_{t+1} | x_{<=t}) for every position, and the mask of real targets (B, T-1)."""
    targets = labels[:, 1:]
    mask = targets != IGNORE
    logp = torch.log_softmax(logits[:, :-1], dim=-1)
    picked = logp.gather(-1, targets.clamp_min(0).unsqueeze(-1)).squeeze(-1)
    return picked * mask, mask


def mean_nll(model: Any, batch: Batch) -> torch.Tensor:
    """Next-token cross-entropy averaged over all target tokens of the batch."""
    picked, mask = token_logprobs(_logits(model, batch), batch.labels)
    return -picked.sum() / mask.sum().clamp_min(1)


def sequence_logprobs(model: Any, batch: Batch) -> torch.Tensor:
    """log π(y|x) of each sequence: the sum of its target tokens' log-probabilities (B,)."""
    picked, _ = token_logprobs(_logits(model, batch), batch.labels)
    return picked.sum(dim=-1)


def npo_from_logps(logp: torch.Tensor, logp_ref: torch.Tensor, beta: float) -> torch.Tensor:
    """Eq. 8: −(2/β)·E[log σ(−β·(log π_θ − log π_ref))] = (2/β)·E[softplus(β·ratio)].

    At π_θ = π_ref it is (2/β)·log 2; it falls towards 0 as the forget sequences become less
    likely than under the reference, and its gradient vanishes there (NPO's bounded drift)."""
    return (2.0 / beta) * F.softplus(beta * (logp - logp_ref)).mean()


def ga_loss(model: Any, batch: Batch, ref: Any, config: Any) -> torch.Tensor:
    """Eq. 7: minimising the forget log-likelihood = ascending its cross-entropy."""
    return -mean_nll(model, batch)


def npo_loss(model: Any, batch: Batch, ref: Any, config: Any) -> torch.Tensor:
    """Eq. 8 on sequence log-probabilities, against the frozen target `ref`."""
    with torch.no_grad():
        logp_ref = sequence_logprobs(ref, batch)
    return npo_from_logps(sequence_logprobs(model, batch), logp_ref, config.beta)


def gdr_loss(model: Any, batch: Batch, ref: Any, config: Any) -> torch.Tensor:
    """Eq. 9's retain term: ordinary cross-entropy on the retain batch."""
    return mean_nll(model, batch)


def klr_loss(model: Any, batch: Batch, ref: Any, config: Any) -> torch.Tensor:
    """Eq. 10's retain term, averaged over every non-padding input position of the retain
    batch. `config.kl` picks the direction: `forward` (default) is KL(p_target ‖ p_θ), what
    MUSE's intended code, TOFU and open-unlearning compute
    (`F.kl_div(log p_θ, log p_target, log_target=True)`); `reverse` is KL(p_θ ‖ p_target),
    the order the paper's Eq. 10 writes."""
    with torch.no_grad():
        logq = torch.log_softmax(_logits(ref, batch), dim=-1)
    logp = torch.log_softmax(_logits(model, batch), dim=-1)
    if getattr(config, "kl", "forward") == "reverse":
        kl = (logp.exp() * (logp - logq)).sum(dim=-1)
    else:
        kl = (logq.exp() * (logq - logp)).sum(dim=-1)
    mask = batch.attention_mask.bool()
    return kl[mask].mean() if mask.any() else kl.sum() * 0.0
