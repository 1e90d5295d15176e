from __future__ import annotations

import functools
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from unlearnspec.bench.corpus import corpus_files
from unlearnspec.metrics.knowmem import qa_prompt
from unlearnspec.bench.tokenizer import build_tokenizer
from unlearnspec.bench.world import make_world

WORLD = make_world("micro")


@functools.lru_cache(maxsize=1)
def micro_tokenizer():
    return build_tokenizer(WORLD)


@pytest.fixture
def tok():
    return micro_tokenizer()


def roundtrip(tok, text: str) -> str:
    return tok.decode(tok(text)["input_ids"], skip_special_tokens=True)


def test_every_world_text_and_prompt_round_trips(tok) -> None:
    files = corpus_files(WORLD)
    texts = list(WORLD.all_texts())
    for split in ("forget", "retain"):
        icl = files[f"knowmem/{split}_qa_icl.json"]
        texts += [qa_prompt(p["question"], icl) for p in files[f"knowmem/{split}_qa.json"]]
    texts += [v for r in files["verbmem/forget.json"] for v in r.values()]
    for text in texts:
        assert roundtrip(tok, text) == text
    assert tok.unk_token_id not in {i for t in texts for i in tok(t)["input_ids"]}


def test_bos_is_added_and_pad_eos_exist(tok) -> None:
    ids = tok("Question: ")["input_ids"]
    assert ids[0] == tok.bos_token_id and len(ids) == 2
    assert len({tok.pad_token_id, tok.eos_token_id, tok.bos_token_id}) == 3


def test_knowmem_prompt_tokens_are_a_prefix_of_the_answered_text(tok) -> None:
    # The model must see at "Answer: " exactly what it saw in training there.
    prompt = "Question: where does X live ?\nAnswer: "
    full = tok(prompt + "dorin")["input_ids"]
    assert full[: len(tok(prompt)["input_ids"])] == tok(prompt)["input_ids"]


def test_verbmem_prompt_is_a_token_prefix_of_its_document(tok) -> None:
    for rec in corpus_files(WORLD)["verbmem/forget.json"]:
        full = tok(rec["prompt"] + rec["gt"])["input_ids"]
        head = tok(rec["prompt"])["input_ids"]
        assert full[: len(head)] == head and len(full) > len(head)


@settings(max_examples=50, deadline=None)
@given(st.lists(st.sampled_from(sorted({w for t in WORLD.all_texts() for w in t.split()})),
                min_size=1, max_size=12),
       st.lists(st.sampled_from([" ", "\n", "\n\n"]), min_size=12, max_size=12))
def test_any_arrangement_of_world_words_round_trips(words: list[str], seps: list[str]) -> None:
    tok = micro_tokenizer()
    text = "".join(w + s for w, s in zip(words, seps))
    assert roundtrip(tok, text) == text


def test_saved_tokenizer_reloads_identically(tok, tmp_path: Path) -> None:
    from transformers import AutoTokenizer

    tok.save_pretrained(tmp_path)
    again = AutoTokenizer.from_pretrained(tmp_path)
    text = WORLD.documents("forget")[-1]
    assert again(text)["input_ids"] == tok(text)["input_ids"]
    assert roundtrip(again, text) == text
