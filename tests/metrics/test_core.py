"""The batched scoring core: left-padded KV-cache generation equals one-at-a-time and HF
`generate`; batched log-probs equal unbatched ones; `auto` batch size backs off on OOM."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from unlearnspec.errors import RunError
from unlearnspec.metrics.core import (
    check_batch_size, decode_new, generate_greedy, run_batched, token_scores,
)
from unlearnspec.metrics.scores import cut_at_stops

PROMPTS = ["the city of alpha", "name", "Question : what is the color of the river ? Answer :",
           "a b", "red blue green north south east west the a of the city"]


@pytest.mark.slow
def test_left_padded_batch_generates_what_one_at_a_time_does(tiny):
    model, tok = tiny
    batched = generate_greedy(model, tok, PROMPTS, max_new_tokens=24, batch_size=32)
    single = [generate_greedy(model, tok, [p], max_new_tokens=24, batch_size=1)[0]
              for p in PROMPTS]
    assert batched == single
    assert all(len(o.split()) > 0 for o in batched)


@pytest.mark.slow
def test_generation_matches_transformers_generate(tiny):
    model, tok = tiny
    ours = generate_greedy(model, tok, PROMPTS, max_new_tokens=16, batch_size=4)
    for prompt, mine in zip(PROMPTS, ours):
        ids = tok(prompt, return_tensors="pt").input_ids
        ref = model.generate(ids, max_new_tokens=16, do_sample=False,
                             pad_token_id=tok.pad_token_id)
        assert mine == decode_new(tok, ref[0, ids.shape[1]:].tolist())


@pytest.mark.slow
def test_stop_strings_end_rows_without_changing_the_cut_text(tiny):
    model, tok = tiny
    full = generate_greedy(model, tok, PROMPTS, max_new_tokens=24, batch_size=8)
    stops = ("west", "city")
    early = generate_greedy(model, tok, PROMPTS, max_new_tokens=24, stops=stops, batch_size=8)
    assert [cut_at_stops(o, stops) for o in early] == [cut_at_stops(o, stops) for o in full]
    assert sum(len(o) for o in early) < sum(len(o) for o in full)  # rows did stop early


@pytest.mark.slow
def test_token_logprobs_batched_equal_unbatched_and_direct(tiny):
    model, tok = tiny
    batched, _ = token_scores(model, tok, PROMPTS, batch_size=32)
    single, _ = token_scores(model, tok, PROMPTS, batch_size=1)
    for b, s in zip(batched, single):
        np.testing.assert_allclose(b.logprobs, s.logprobs, atol=1e-5)
        np.testing.assert_allclose(b.sigma, s.sigma, atol=1e-5)
    ids = tok(PROMPTS[2], return_tensors="pt").input_ids
    with torch.no_grad():
        lp = torch.log_softmax(model(ids).logits[0, :-1], -1)
    direct = lp.gather(-1, ids[0, 1:, None]).squeeze(-1).numpy()
    assert len(batched[2].logprobs) == ids.shape[1] - 1     # every token after BOS
    np.testing.assert_allclose(batched[2].logprobs, direct, atol=1e-5)


def test_auto_batch_size_halves_on_out_of_memory():
    seen: list[int] = []

    def work(chunk):  # a test double for a model batch: "runs out of memory" above 4 items
        seen.append(len(chunk))
        if len(chunk) > 4:
            raise RuntimeError("CUDA out of memory. Tried to allocate 2.00 GiB")
        return [x * 2 for x in chunk]

    assert run_batched(work, list(range(100)), "auto") == [x * 2 for x in range(100)]
    assert seen[:5] == [64, 32, 16, 8, 4] and max(seen[5:]) == 4
    with pytest.raises(RunError, match="out of memory at batch size 8.*auto"):
        run_batched(work, list(range(10)), 8)


def test_other_errors_are_not_taken_for_out_of_memory():
    def work(chunk):
        raise ValueError("bad input")

    with pytest.raises(ValueError, match="bad input"):
        run_batched(work, [1, 2], "auto")


@pytest.mark.parametrize("bad", [0, -1, "big", 2.5, True])
def test_batch_size_must_be_positive_int_or_auto(bad):
    with pytest.raises(RunError, match="batch_size"):
        check_batch_size(bad)
