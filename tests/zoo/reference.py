"""One-example-at-a-time reference computations for the zoo's conformance checks, written
independently of metrics/core.py: transformers' own `generate` for generations, one plain
forward pass per text for log-probabilities. Batched metrics must equal these per sample."""
from __future__ import annotations

from typing import Any

import numpy as np
import torch

from unlearnspec.metrics.core import TokenScores, decode_new


def _pad(tok: Any) -> int:
    return tok.pad_token_id if tok.pad_token_id is not None else tok.eos_token_id


@torch.no_grad()
def generate(model: Any, tok: Any, prompt: str, new: int) -> str:
    """transformers' greedy `generate` on `prompt` alone (encoded with special tokens),
    decoded as the metrics decode (`decode_new`)."""
    ids = tok(prompt, return_tensors="pt").input_ids
    out = model.generate(ids, attention_mask=torch.ones_like(ids), max_new_tokens=new,
                         do_sample=False, pad_token_id=_pad(tok))
    return decode_new(tok, out[0, ids.shape[1]:].tolist())


@torch.no_grad()
def scores(model: Any, ids: list[int]) -> TokenScores:
    """Log p of every token after the first, and the mean / std of log p at each position,
    from one unpadded forward pass."""
    logits = model(torch.tensor([ids])).logits[0, :-1].double()
    logp = torch.log_softmax(logits, -1)
    target = logp.gather(-1, torch.tensor(ids[1:])[:, None]).squeeze(-1)
    p = logp.exp()
    mu = (p * logp).sum(-1)
    sigma = (p * (logp - mu[:, None]) ** 2).sum(-1).sqrt()
    return TokenScores(target.numpy(), mu.numpy(), sigma.numpy())


def continuation_logprob(model: Any, tok: Any, context: str, continuation: str) -> np.ndarray:
    """Log-probs of the tokens `context + continuation` has beyond `context`'s own."""
    ctx = tok(context)["input_ids"]
    whole = tok(context + continuation)["input_ids"]
    return scores(model, whole).logprobs[len(ctx) - 1:]
