"""Every zoo checkpoint loads through the loader specs use, as it was saved: the model class of
its family, the tokenizer that encodes exactly as its tokenizer.json, the special tokens of
its style, safetensors weights in hub layout."""
from __future__ import annotations

import json

import pytest

from tests.zoo.cases import params

HUB_FILES = {"config.json", "generation_config.json", "model.safetensors", "tokenizer.json",
             "tokenizer_config.json"}
TEXTS = ["Question: where does Vaskel live ?\nAnswer: dorin",
         "Bivi : nithais ; lustus daiklain ; stifun .", "  two  spaces\n\nand lines\n"]


@pytest.mark.slow
@pytest.mark.zoo_capability("load")
@pytest.mark.parametrize("case", params("load"))
def test_checkpoint_loads_as_saved(zoo, case) -> None:
    from tokenizers import Tokenizer

    path = zoo.checkpoint(case)
    assert HUB_FILES <= {p.name for p in path.iterdir()}
    model, tok = zoo.model(case)
    config = json.loads((path / "config.json").read_text())
    assert type(model).__name__ == config["architectures"][0]
    saved = Tokenizer.from_file(str(path / "tokenizer.json"))
    for text in TEXTS:
        assert tok(text)["input_ids"] == saved.encode(text).ids, text
    assert len(tok) <= model.get_input_embeddings().num_embeddings
    assert tok.eos_token_id == model.config.eos_token_id
    first = tok("Question:")["input_ids"][0]
    if case.style == "metaspace":
        assert first == tok.bos_token_id == model.config.bos_token_id
    else:
        assert tok.bos_token_id is None and first != tok.eos_token_id
    head, embed = model.get_output_embeddings(), model.get_input_embeddings()
    assert (head.weight is embed.weight) == case.arch.tied


@pytest.mark.slow
def test_qwen2_checkpoint_keeps_its_saved_tokenizer(zoo) -> None:
    """transformers 5 builds Qwen2Tokenizer for every `qwen2` checkpoint, ignoring a saved
    Metaspace tokenizer.json (ids past the embedding); the loader loads the one saved."""
    from transformers import AutoTokenizer

    from tests.zoo.cases import case_of
    from unlearnspec.models.loading import load_causal_lm

    path = zoo.checkpoint(case_of("qwen2", "metaspace"))
    substituted = AutoTokenizer.from_pretrained(str(path))
    _, tok = load_causal_lm(path)
    assert type(substituted).__name__ == "Qwen2Tokenizer"  # the substitution still happens
    assert type(tok).__name__ != "Qwen2Tokenizer"
    assert substituted(TEXTS[0])["input_ids"] != tok(TEXTS[0])["input_ids"]
