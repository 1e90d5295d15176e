"""Tokenising, chunking, padding and ordering of forget / retain batches."""
from __future__ import annotations

import itertools
from pathlib import Path

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from unlearnspec.unlearn.data import (IGNORE, Chunks, chunk_ids, collate, paired_batches,
                                      tokenize_documents, total_steps)

token_lists = st.lists(st.integers(5, 60), max_size=80)


@given(token_lists, st.integers(2, 20), st.sampled_from([None, 2]))
def test_chunks_fit_and_every_token_is_a_target_exactly_once(ids: list[int], max_length: int,
                                                              bos: int | None) -> None:
    chunks = chunk_ids(ids, max_length, bos)
    assert all(2 <= len(c) <= max_length for c in chunks)
    targets = [t for c in chunks for t in c[1:]]  # position 0 of a chunk is only context
    if bos is not None:
        assert all(c[0] == bos for c in chunks)
        assert targets == ids
    else:
        assert targets == ids[1:]  # the document's first token has no context to predict from


@given(st.lists(st.lists(st.integers(5, 60), min_size=1, max_size=12), min_size=1,
                max_size=6))
def test_padding_is_on_the_right_and_never_a_target(chunks: list[list[int]]) -> None:
    batch = collate(chunks, pad_id=0)
    for row, chunk in enumerate(chunks):
        n = len(chunk)
        assert batch.input_ids[row, :n].tolist() == chunk
        assert batch.labels[row, :n].tolist() == chunk
        assert batch.attention_mask[row].tolist() == [1] * n + [0] * (batch.input_ids.shape[1] - n)
        assert (batch.labels[row, n:] == IGNORE).all()


def test_documents_are_tokenised_with_the_checkpoint_tokenizer(base: Path) -> None:
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(base)
    chunks = tokenize_documents(["the city of alpha is red", "", "   "], tok, max_length=4)
    bos = tok.bos_token_id
    assert chunks.documents == 3 and chunks.without_tokens == 2
    words = tok.convert_ids_to_tokens([t for c in chunks.ids for t in c if t != bos])
    assert words == "the city of alpha is red".split()
    assert [len(c) for c in chunks.ids] == [4, 4]


@given(st.integers(1, 50), st.integers(1, 8), st.integers(1, 4),
       st.floats(0.1, 20, allow_nan=False))
def test_steps_cover_the_requested_epochs(n: int, bs: int, accum: int, epochs: float) -> None:
    steps = total_steps(n, batch_size=bs, grad_accum=accum, epochs=epochs, max_steps=None)
    micro_per_epoch = -(-n // bs)
    assert steps * accum >= epochs * micro_per_epoch - 1e-6  # never fewer than asked
    assert (steps - 1) * accum < epochs * micro_per_epoch  # and not a step more than needed
    assert total_steps(n, batch_size=bs, grad_accum=accum, epochs=epochs, max_steps=7) == 7


def test_a_pass_over_the_forget_set_sees_each_chunk_once_and_retain_cycles() -> None:
    forget = Chunks([[1, 10 + i] for i in range(7)], 7, 0)
    retain = Chunks([[1, 50 + i] for i in range(3)], 3, 0)
    pairs = list(itertools.islice(paired_batches(forget, retain, batch_size=3, seed=0,
                                                 pad_id=0), 6))
    first_pass = [t for f, _ in pairs[:3] for t in f.input_ids[:, 1].tolist()]
    assert sorted(first_pass) == [10 + i for i in range(7)]  # 3 + 3 + 1
    assert all(r is not None and len(r) == 3 for _, r in pairs)  # the small retain set cycles


def test_the_order_is_fixed_by_the_seed() -> None:
    forget = Chunks([[1, 10 + i] for i in range(20)], 20, 0)

    def order(seed: int) -> list[list[int]]:
        stream = paired_batches(forget, None, batch_size=4, seed=seed, pad_id=0)
        return [f.input_ids[:, 1].tolist() for f, _ in itertools.islice(stream, 10)]

    assert order(3) == order(3)
    assert order(3) != order(4)


def test_a_batch_moves_to_a_device() -> None:
    batch = collate([[1, 2, 3]], pad_id=0).to("cpu")
    assert batch.input_ids.device == torch.device("cpu") and len(batch) == 1


@pytest.mark.parametrize("ids, expected", [([], []), ([7], [])])
def test_without_bos_a_document_needs_two_tokens(ids: list[int], expected: list) -> None:
    assert chunk_ids(ids, 8, None) == expected
