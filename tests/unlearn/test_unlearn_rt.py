"""RT (refusal training): only the refusal tokens are targets, the model learns to refuse the
forget questions, a refusal the tokenizer cannot spell is an error, reruns are identical."""
from __future__ import annotations

import pytest
import torch

from unlearnspec.errors import RunError
from unlearnspec.unlearn import METHODS
from unlearnspec.unlearn.data import IGNORE, collate, tokenize_pairs

QUESTIONS = ["name of the city ?", "color of the river ?", "year of the north city ?",
             "who owns the red river ?"]
REFUSAL = "the name is omega"  # words of the tiny test tokenizer's vocabulary


def test_only_the_completion_is_a_target(target) -> None:
    from unlearnspec.models.loading import load_causal_lm

    tok = load_causal_lm(target)[1]
    chunks = tokenize_pairs([("Question: city ?\nAnswer: ", REFUSAL)], tok, 64)
    batch = collate(chunks.ids, tok.pad_token_id, chunks.prompt_lengths)
    n = chunks.prompt_lengths[0]
    targets = batch.labels[0]
    assert (targets[:n] == IGNORE).all()
    assert tok.decode(targets[n:]) .replace(" ", "") == (REFUSAL + tok.eos_token).replace(" ", "")


def test_a_refusal_outside_the_vocabulary_is_an_error(unlearn) -> None:
    with pytest.raises(RunError, match="does not know"):
        unlearn("rt", forget=QUESTIONS, max_steps=1)  # default "I do not know the answer."


@pytest.mark.slow
@pytest.mark.parametrize("name", ["rt", "rt_gdr", "rt_klr"])
def test_rt_lowers_the_refusal_loss_and_reruns_identically(unlearn, target, name) -> None:
    from unlearnspec.models.loading import load_causal_lm
    from unlearnspec.unlearn.losses import mean_nll

    a, log = unlearn(name, forget=QUESTIONS, refusal=REFUSAL, epochs=6, seed=3)
    b, _ = unlearn(name, forget=QUESTIONS, refusal=REFUSAL, epochs=6, seed=3)
    assert (a / "model.safetensors").read_bytes() == (b / "model.safetensors").read_bytes()
    assert (log["retain"] is None) == (name == "rt")

    def refusal_nll(checkpoint) -> float:
        model, tok = load_causal_lm(checkpoint)
        pairs = METHODS.get(name).load().examples(QUESTIONS, METHODS.get(name).make_config(
            {"refusal": REFUSAL}))
        chunks = tokenize_pairs(pairs, tok, 64)
        with torch.no_grad():
            return float(mean_nll(model, collate(chunks.ids, tok.pad_token_id,
                                                 chunks.prompt_lengths)))

    assert refusal_nll(a) < 0.5 * refusal_nll(target)
