"""The implementation: a new forget loss combined with unlearnspec's own GDR regularizer."""
from __future__ import annotations

from typing import Any

import torch

from unlearnspec.unlearn.data import Batch
from unlearnspec.unlearn.losses import token_logprobs
from unlearnspec.unlearn.methods import GDR, Loss, Method


def capped_ga_loss(model: Any, batch: Batch, ref: Any, config: Any) -> torch.Tensor:
    """−mean over sequences of min(CE_seq, cap): a sequence already above the cap adds no
    gradient, so the update budget goes to the sequences the model still knows."""
    logits = model(input_ids=batch.input_ids, attention_mask=batch.attention_mask).logits
    picked, mask = token_logprobs(logits.float(), batch.labels)
    ce = -picked.sum(-1) / mask.sum(-1).clamp_min(1)
    return -torch.clamp(ce, max=config.cap).mean()


GA_CAPPED = Method("ga_capped", forget=Loss("capped_ga", capped_ga_loss), retain=GDR)
