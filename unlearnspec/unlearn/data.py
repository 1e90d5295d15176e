"""Turning forget / retain documents into padded training batches, and their order.

A document is tokenised once, without special tokens, and cut into chunks of at most
`max_length` tokens so that every token after the first is a prediction target exactly once:
with a BOS token each chunk is `[BOS] + piece`; without one, consecutive windows overlap by
one token (the previous chunk's last token is the next chunk's context). A document with no
prediction target (empty, or one token and no BOS) yields no chunk; the caller counts those.

Batches are padded on the right; padding has attention 0 and label -100, so it is never a
target. The order is drawn from seeded `torch.Generator`s only, so a seed fixes it.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Iterator, Sequence

import torch

from ..models.batching import right_pad

IGNORE = -100


@dataclass(frozen=True)
class Batch:
    """A right-padded batch. `labels` equals `input_ids` except -100 on padding; losses shift
    them by one themselves (position t predicts token t + 1)."""

    input_ids: torch.Tensor
    attention_mask: torch.Tensor
    labels: torch.Tensor

    def to(self, device: str | torch.device) -> "Batch":
        return Batch(self.input_ids.to(device), self.attention_mask.to(device),
                     self.labels.to(device))

    def __len__(self) -> int:
        return int(self.input_ids.shape[0])


@dataclass(frozen=True)
class Chunks:
    """Token chunks of a document set, and how many documents gave none (reported, not
    silently dropped)."""

    ids: list[list[int]]
    documents: int
    without_tokens: int
    # per chunk, how many leading tokens are context only (a prompt), never targets; None:
    # every token after the first is a target
    prompt_lengths: list[int] | None = None


def chunk_ids(ids: Sequence[int], max_length: int, bos_id: int | None) -> list[list[int]]:
    """Cut one document's token ids into training chunks of at most `max_length` tokens."""
    ids = list(ids)
    if bos_id is not None:
        step = max_length - 1
        return [[bos_id, *ids[i:i + step]] for i in range(0, len(ids), step)]
    if len(ids) < 2:
        return []
    step = max_length - 1
    return [ids[i:i + max_length] for i in range(0, len(ids) - 1, step)]


def tokenize_documents(texts: Sequence[str], tokenizer: Any, max_length: int) -> Chunks:
    """Tokenise with the base checkpoint's tokenizer (no special tokens; BOS is added per
    chunk when the tokenizer has one) and chunk."""
    bos = getattr(tokenizer, "bos_token_id", None)
    out: list[list[int]] = []
    empty = 0
    for text in texts:
        ids = tokenizer(text, add_special_tokens=False, verbose=False)["input_ids"]
        chunks = chunk_ids(ids, max_length, bos)
        empty += not chunks
        out.extend(chunks)
    return Chunks(out, len(texts), empty)


def tokenize_pairs(pairs: Sequence[tuple[str, str]], tokenizer: Any,
                   max_length: int) -> Chunks:
    """(prompt, completion) examples: `[BOS] + prompt + completion (+ EOS)`, cut to
    `max_length` from the right; only the completion's tokens (and EOS) are targets."""
    bos = getattr(tokenizer, "bos_token_id", None)
    eos = getattr(tokenizer, "eos_token_id", None)
    ids_out, prompts, empty = [], [], 0
    for prompt, completion in pairs:
        head = ([bos] if bos is not None else []) + \
            tokenizer(prompt, add_special_tokens=False, verbose=False)["input_ids"]
        tail = tokenizer(completion, add_special_tokens=False, verbose=False)["input_ids"]
        tail = tail + ([eos] if eos is not None else [])
        ids = (head + tail)[:max_length]
        if len(ids) <= len(head):
            empty += 1
            continue
        ids_out.append(ids)
        prompts.append(len(head))
    return Chunks(ids_out, len(pairs), empty, prompts)


def collate(chunks: Sequence[Sequence[int]], pad_id: int,
            prompt_lengths: Sequence[int] | None = None) -> Batch:
    """Right-pad `chunks` into a Batch (the pad id only fills; it is never a target). With
    `prompt_lengths`, the first n tokens of each chunk are context only: label −100 (a
    loss predicts token t+1 from position t, so token n is the first target)."""
    ids, mask = right_pad(chunks, pad_id)
    labels = ids.masked_fill(mask == 0, IGNORE)
    if prompt_lengths is not None:
        positions = torch.arange(ids.shape[1]).unsqueeze(0)
        labels = labels.masked_fill(positions < torch.tensor(list(prompt_lengths)).unsqueeze(1),
                                    IGNORE)
    return Batch(ids, mask, labels)


def pad_id_of(tokenizer: Any) -> int:
    for name in ("pad_token_id", "eos_token_id"):
        value = getattr(tokenizer, name, None)
        if value is not None:
            return int(value)
    return 0


def index_batches(n: int, batch_size: int, generator: torch.Generator) -> Iterator[list[int]]:
    """Endless index batches over `n` items: a fresh seeded permutation per pass, the last
    batch of a pass may be smaller (every item is seen once per pass)."""
    while True:
        order = torch.randperm(n, generator=generator).tolist()
        for start in range(0, n, batch_size):
            yield order[start:start + batch_size]


def micro_batches_per_epoch(n_forget: int, batch_size: int) -> int:
    return math.ceil(n_forget / batch_size)


def total_steps(n_forget: int, *, batch_size: int, grad_accum: int, epochs: float,
                max_steps: int | None) -> int:
    """Optimizer steps: `max_steps` if set, else enough to cover `epochs` passes over the
    forget set (one pass = ceil(n / batch_size) micro-batches; fractional epochs round up)."""
    if max_steps:
        return int(max_steps)
    micro = math.ceil(epochs * micro_batches_per_epoch(n_forget, batch_size) - 1e-9)
    return max(1, math.ceil(micro / grad_accum))


def paired_batches(forget: Chunks, retain: Chunks | None, *, batch_size: int, seed: int,
                   pad_id: int) -> Iterator[tuple[Batch, Batch | None]]:
    """Endless (forget, retain) batch pairs. The retain stream is cycled independently, so a
    retain set smaller or larger than the forget set is fine; `retain=None` gives None."""
    f_gen = torch.Generator().manual_seed(seed)
    r_gen = torch.Generator().manual_seed(seed + 1)
    f_idx = index_batches(len(forget.ids), batch_size, f_gen)
    r_idx = index_batches(len(retain.ids), batch_size, r_gen) if retain and retain.ids else None
    while True:
        picked = next(f_idx)
        f = collate([forget.ids[i] for i in picked], pad_id,
                    None if forget.prompt_lengths is None
                    else [forget.prompt_lengths[i] for i in picked])
        r = collate([retain.ids[i] for i in next(r_idx)], pad_id) if r_idx else None
        yield f, r
