"""The one batched scoring core every model-based metric goes through.

Two operations, both batched over examples (never a Python loop over the model per example):

* `generate_greedy`: greedy decoding with *left* padding and the KV cache. Position ids are
  computed from the attention mask (`cumsum − 1`), so a left-padded prompt sees exactly the
  positions it would see alone; rows stop on EOS or a stop string and the batch ends when
  every row has stopped.
* `token_scores`: one forward pass (right padding) giving, per text, the log-prob of every
  token after the first given its prefix, plus the mean and std of log p under the model's
  next-token distribution (for Min-K%++).

`batch_size` is an int, or "auto": start at `AUTO_START` and halve on out-of-memory (CUDA or
CPU) down to 1, keeping the smaller size for the rest of the run.
"""
from __future__ import annotations

import inspect
from dataclasses import dataclass
from typing import Any, Callable, Sequence, TypeVar

import numpy as np
import torch

from ..models.batching import right_pad
from ..errors import RunError

AUTO_START = 64
T = TypeVar("T")
R = TypeVar("R")


def check_batch_size(batch_size: int | str) -> None:
    if batch_size == "auto":
        return
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise RunError(f"batch_size must be a positive integer or 'auto', got {batch_size!r}")


def is_oom(exc: BaseException) -> bool:
    """True for CUDA and CPU allocation failures (torch reports CPU ones as RuntimeError)."""
    if isinstance(exc, (torch.cuda.OutOfMemoryError, MemoryError)):
        return True
    msg = str(exc).lower()
    return isinstance(exc, RuntimeError) and ("out of memory" in msg
                                              or "can't allocate memory" in msg)


def run_batched(fn: Callable[[list[T]], list[R]], items: Sequence[T],
                batch_size: int | str) -> list[R]:
    """`fn` over consecutive chunks of `items`, results concatenated in order. With "auto",
    a chunk that runs out of memory is retried at half the size."""
    check_batch_size(batch_size)
    auto = batch_size == "auto"
    size = AUTO_START if auto else int(batch_size)
    out: list[R] = []
    i = 0
    while i < len(items):
        chunk = list(items[i:i + size])
        try:
            res = fn(chunk)
        except Exception as exc:  # noqa: BLE001 - only OOM is handled, the rest re-raised
            if not is_oom(exc):
                raise
            if not auto or size == 1:
                hint = "set batch_size: auto" if not auto else "use a smaller model or device"
                raise RunError(f"out of memory at batch size {size}: {hint}") from exc
            size //= 2
            if torch.cuda.is_available():
                torch.cuda.empty_cache()
            continue
        if len(res) != len(chunk):
            raise RuntimeError(f"batch function returned {len(res)} results for {len(chunk)}")
        out.extend(res)
        i += len(chunk)
    return out


def _by_length(lengths: Sequence[int]) -> list[int]:
    """Indices sorted longest first (stable), so a batch holds similar lengths."""
    return sorted(range(len(lengths)), key=lambda i: -lengths[i])


def _unsort(values: list[R], order: list[int]) -> list[R]:
    out: list[Any] = [None] * len(order)
    for v, i in zip(values, order):
        out[i] = v
    return out


def _device(model: Any) -> torch.device:
    return next(model.parameters()).device


def _pad_id(tokenizer: Any) -> int:
    for tid in (tokenizer.pad_token_id, tokenizer.eos_token_id, 0):
        if tid is not None:
            return int(tid)
    return 0


def _eos_ids(model: Any, tokenizer: Any) -> list[int]:
    eos = getattr(getattr(model, "generation_config", None), "eos_token_id", None)
    if eos is None:
        eos = tokenizer.eos_token_id
    if eos is None:
        return []
    return [int(e) for e in (eos if isinstance(eos, (list, tuple)) else [eos])]


def _forward_kwargs(model: Any) -> tuple[str, str | None]:
    """(name of the cache argument, name of the 'keep only last logits' argument or None):
    transformers renamed `past_key_values` to `cache` and `num_logits_to_keep` to
    `logits_to_keep` across versions."""
    params = inspect.signature(model.forward).parameters
    cache = "cache" if "cache" in params else "past_key_values"
    keep = next((k for k in ("logits_to_keep", "num_logits_to_keep") if k in params), None)
    return cache, keep


def _new_cache(model: Any) -> Any:
    from transformers import DynamicCache

    try:
        return DynamicCache(config=model.config)
    except TypeError:
        return DynamicCache()


@torch.no_grad()
def _generate_batch(model: Any, tokenizer: Any, prompts: list[list[int]], *,
                    max_new_tokens: int, stops: Sequence[str],
                    decode: Callable[[list[int]], str],
                    extra_eos: Sequence[int] = ()) -> list[list[int]]:
    dev = _device(model)
    pad, eos = _pad_id(tokenizer), _eos_ids(model, tokenizer) + list(extra_eos)
    width = max(len(p) for p in prompts)
    ids = torch.full((len(prompts), width), pad, dtype=torch.long)
    mask = torch.zeros((len(prompts), width), dtype=torch.long)
    for r, p in enumerate(prompts):
        ids[r, width - len(p):] = torch.tensor(p, dtype=torch.long)
        mask[r, width - len(p):] = 1
    ids, mask = ids.to(dev), mask.to(dev)
    pos = (mask.cumsum(-1) - 1).clamp(min=0)
    cache_kw, keep_kw = _forward_kwargs(model)
    cache = _new_cache(model)
    extra = {keep_kw: 1} if keep_kw else {}
    logits = model(input_ids=ids, attention_mask=mask, position_ids=pos, use_cache=True,
                   **{cache_kw: cache}, **extra).logits[:, -1]
    eos_t = torch.tensor(eos, dtype=torch.long, device=dev)
    done = torch.zeros(len(prompts), dtype=torch.bool, device=dev)
    steps: list[torch.Tensor] = []
    lengths = [0] * len(prompts)
    for step in range(max_new_tokens):
        tok = torch.where(done, torch.full_like(done, pad, dtype=torch.long),
                          logits.argmax(-1))
        steps.append(tok)
        for r in torch.nonzero(~done).flatten().tolist():
            lengths[r] = step + 1
        done = done | torch.isin(tok, eos_t)
        if stops:
            done = _stop_rows(done, steps, stops, decode)
        if bool(done.all()) or step == max_new_tokens - 1:
            break
        mask = torch.cat([mask, torch.ones_like(mask[:, :1])], dim=1)
        pos = pos[:, -1:] + 1
        logits = model(input_ids=tok[:, None], attention_mask=mask, position_ids=pos,
                       use_cache=True, **{cache_kw: cache}).logits[:, -1]
    gen = torch.stack(steps, dim=1).tolist()
    return [row[:n] for row, n in zip(gen, lengths)]


def _stop_rows(done: torch.Tensor, steps: list[torch.Tensor], stops: Sequence[str],
               decode: Callable[[list[int]], str]) -> torch.Tensor:
    """Mark rows whose decoded new text contains a stop string (text, not tokens: a stop
    string may span several tokens)."""
    live = torch.nonzero(~done).flatten().tolist()
    if not live:
        return done
    gen = torch.stack(steps, dim=1)
    done = done.clone()
    for r in live:
        text = decode(gen[r].tolist())
        if any(s in text for s in stops):
            done[r] = True
    return done


# transformers 4's `clean_up_tokenization`, the step MUSE's decode(clean_up_tokenization_spaces=
# True) ran; transformers 5 skips it for BPE tokenizers (with a warning per call), so it is
# applied here, for every tokenizer alike
CLEAN_UP = ((" .", "."), (" ?", "?"), (" !", "!"), (" ,", ","), (" ' ", "'"), (" n't", "n't"),
            (" 'm", "'m"), (" 's", "'s"), (" 've", "'ve"), (" 're", "'re"))


def clean_up_spaces(text: str) -> str:
    """Remove the spaces before punctuation and English contractions, as transformers 4's
    `clean_up_tokenization` did."""
    for old, new in CLEAN_UP:
        text = text.replace(old, new)
    return text


def decode_new(tokenizer: Any, ids: list[int]) -> str:
    """How MUSE decodes: `skip_special_tokens=True, clean_up_tokenization_spaces=True`, with
    the clean-up applied explicitly (`clean_up_spaces`), so every tokenizer and transformers
    version gives the text MUSE's transformers 4 did."""
    text = tokenizer.decode(ids, skip_special_tokens=True, clean_up_tokenization_spaces=False)
    return clean_up_spaces(text)


def generate_greedy_ids(model: Any, tokenizer: Any, prompts: Sequence[list[int]], *,
                        max_new_tokens: int, stops: Sequence[str] = (),
                        stop_ids: Sequence[int] = (),
                        batch_size: int | str = 32) -> list[list[int]]:
    """Greedy new token ids for already-encoded `prompts`, in input order. A row ends at EOS,
    at a stop string, or at a token in `stop_ids` (kept in the returned ids, as EOS is)."""
    enc = [list(p) for p in prompts]
    if any(len(e) == 0 for e in enc):
        raise RunError("a prompt encodes to zero tokens and the tokenizer adds no BOS: "
                       "cannot generate from nothing")
    order = _by_length([len(e) for e in enc])

    def work(idx: list[int]) -> list[list[int]]:
        return _generate_batch(model, tokenizer, [enc[i] for i in idx],
                               max_new_tokens=max_new_tokens, stops=tuple(stops),
                               decode=lambda ids: decode_new(tokenizer, ids),
                               extra_eos=tuple(stop_ids))

    return _unsort(run_batched(work, order, batch_size), order)


def generate_greedy(model: Any, tokenizer: Any, prompts: Sequence[str], *,
                    max_new_tokens: int, stops: Sequence[str] = (),
                    batch_size: int | str = 32, add_special_tokens: bool = True) -> list[str]:
    """Greedy continuations of `prompts` (new text only), in input order.

    Stop strings end a row early; the returned text is *not* cut at them (callers cut, e.g.
    with `scores.cut_at_stops`, so the cut is identical to decoding the full 128/32 tokens).
    An empty prompt list gives an empty list."""
    enc = [tokenizer(p, add_special_tokens=add_special_tokens)["input_ids"] for p in prompts]
    new_ids = generate_greedy_ids(model, tokenizer, enc, max_new_tokens=max_new_tokens,
                                  stops=stops, batch_size=batch_size)
    return [decode_new(tokenizer, ids) for ids in new_ids]


@dataclass(frozen=True)
class TokenScores:
    """Per token after the first: log p(x_t | x_<t), and the mean / std of log p under the
    model's distribution at that position (Min-K%++'s normalizers)."""

    logprobs: np.ndarray
    mu: np.ndarray
    sigma: np.ndarray


def max_length(model: Any) -> int | None:
    n = getattr(model.config, "max_position_embeddings", None)
    return int(n) if n else None


@torch.no_grad()
def _score_batch(model: Any, pad: int, seqs: list[list[int]]) -> list[TokenScores]:
    dev = _device(model)
    ids, mask = right_pad(seqs, pad)
    ids, mask = ids.to(dev), mask.to(dev)
    logits = model(input_ids=ids, attention_mask=mask, use_cache=False).logits[:, :-1].float()
    logp = torch.log_softmax(logits, dim=-1)
    del logits
    target = logp.gather(-1, ids[:, 1:, None]).squeeze(-1)
    p = logp.exp()
    mu = (p * logp).sum(-1)
    # E[(log p − mu)²], not E[log p²] − mu²: the latter cancels badly in float32
    sigma = (p * (logp - mu[..., None]).square()).sum(-1).sqrt()
    del p, logp
    out = []
    for r, s in enumerate(seqs):
        n = len(s) - 1
        out.append(TokenScores(target[r, :n].cpu().numpy().astype(np.float64),
                               mu[r, :n].cpu().numpy().astype(np.float64),
                               sigma[r, :n].cpu().numpy().astype(np.float64)))
    return out


def score_ids(model: Any, tokenizer: Any, seqs: Sequence[list[int]], *,
              batch_size: int | str = 32) -> list[TokenScores]:
    """`TokenScores` of already-tokenized sequences, in input order."""
    order = _by_length([len(s) for s in seqs])
    pad = _pad_id(tokenizer)
    res = run_batched(lambda idx: _score_batch(model, pad, [list(seqs[i]) for i in idx]),
                      order, batch_size)
    return _unsort(res, order)


@torch.no_grad()
def _next_batch(model: Any, pad: int, seqs: list[list[int]], cand: list[int]) -> list[np.ndarray]:
    dev = _device(model)
    ids, mask = right_pad(seqs, pad)
    logits = model(input_ids=ids.to(dev), attention_mask=mask.to(dev), use_cache=False).logits
    last = torch.tensor([len(s) - 1 for s in seqs], device=logits.device)
    rows = torch.log_softmax(logits[torch.arange(len(seqs), device=logits.device), last].float(),
                             dim=-1)
    return [r[cand].cpu().numpy().astype(np.float64) for r in rows]


def next_token_logprobs(model: Any, tokenizer: Any, seqs: Sequence[list[int]],
                        candidates: Sequence[int], *, batch_size: int | str = 32
                        ) -> list[np.ndarray]:
    """Per sequence, log p(candidate | whole sequence) for each candidate token id (the
    softmax is over the full vocabulary, as RWKU's `get_next_word_predictions` takes it)."""
    order = _by_length([len(s) for s in seqs])
    pad, cand = _pad_id(tokenizer), list(candidates)
    res = run_batched(lambda idx: _next_batch(model, pad, [list(seqs[i]) for i in idx], cand),
                      order, batch_size)
    return _unsort(res, order)


def encode_documents(model: Any, tokenizer: Any, texts: Sequence[str]) -> tuple[list[list[int]], int]:
    """Documents encoded with special tokens (BOS), cut to the model's context length.
    Returns (ids, how many were cut) so callers can report the cut instead of hiding it."""
    limit = max_length(model)
    enc = [list(tokenizer(t, add_special_tokens=True)["input_ids"]) for t in texts]
    cut = sum(1 for e in enc if limit and len(e) > limit)
    return ([e[:limit] if limit else e for e in enc], cut)


def token_scores(model: Any, tokenizer: Any, texts: Sequence[str], *,
                 batch_size: int | str = 32) -> tuple[list[TokenScores], int]:
    """(TokenScores per document, number of documents cut to the context length)."""
    enc, cut = encode_documents(model, tokenizer, texts)
    return score_ids(model, tokenizer, enc, batch_size=batch_size), cut
