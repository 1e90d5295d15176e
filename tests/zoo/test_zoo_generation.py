"""Greedy generation on every zoo case: the batched, left-padded KV-cache loop of
metrics/core.py gives, per prompt, what transformers' own `generate` gives for that prompt
alone; stop strings end rows without changing the cut text."""
from __future__ import annotations

import pytest

from tests.zoo.cases import params

NEW = 16


def prompts(corpus) -> list[str]:
    """Prompts of different lengths (so a batch is left-padded), from both generating metrics:
    VerbMem passages and KnowMem questions behind their few-shot pairs."""
    from unlearnspec.metrics.knowmem import qa_prompt

    verb = [r["prompt"] for r in corpus.verbmem("forget")[:3]]
    icl = corpus.knowmem_icl("forget")
    know = [qa_prompt(r["question"], icl if i else []) for i, r in
            enumerate(corpus.knowmem("forget")[:3])]
    return verb + know


@pytest.mark.slow
@pytest.mark.zoo_capability("generate")
@pytest.mark.parametrize("case", params("generate"))
def test_batched_generation_equals_transformers_one_at_a_time(zoo, case) -> None:
    from tests.zoo import reference
    from unlearnspec.metrics.core import generate_greedy

    model, tok = zoo.model(case)
    ps = prompts(zoo.corpus)
    lengths = {len(tok(p)["input_ids"]) for p in ps}
    assert len(lengths) > 1  # the batch really is left-padded
    batched = generate_greedy(model, tok, ps, max_new_tokens=NEW, batch_size=len(ps))
    assert batched == [reference.generate(model, tok, p, NEW) for p in ps]
    assert any(o.strip() for o in batched)


@pytest.mark.slow
@pytest.mark.zoo_capability("stop strings")
@pytest.mark.parametrize("case", params("stop strings"))
def test_stop_strings_end_rows_and_keep_the_cut(zoo, case) -> None:
    from unlearnspec.metrics.core import generate_greedy
    from unlearnspec.metrics.scores import cut_at_stops

    model, tok = zoo.model(case)
    ps = prompts(zoo.corpus)
    full = generate_greedy(model, tok, ps, max_new_tokens=24, batch_size=len(ps))
    # stops the world's text really contains: the record separator and KnowMem's
    stops = (" ;", "\n\n", "\nQuestion", "Question:")
    early = generate_greedy(model, tok, ps, max_new_tokens=24, stops=stops,
                            batch_size=len(ps))
    assert [cut_at_stops(o, stops) for o in early] == [cut_at_stops(o, stops) for o in full]
    for e, f in zip(early, full):
        assert f.startswith(e) or cut_at_stops(e, stops) == cut_at_stops(f, stops)


@pytest.mark.slow
@pytest.mark.parametrize("style", ["bytelevel", "metaspace"])
def test_decoding_cleans_up_spaces_for_subword_tokenizers(zoo, style) -> None:
    """MUSE decodes with clean_up_tokenization_spaces=True; transformers 5 ignores that flag
    for BPE tokenizers, so the metrics apply the clean-up themselves."""
    from tests.zoo.cases import case_of
    from unlearnspec.metrics.core import decode_new

    _, tok = zoo.model(case_of("llama", style))
    ids = tok("Bivi : nithais ; stifun .", add_special_tokens=False)["input_ids"]
    assert tok.decode(ids, skip_special_tokens=True) == "Bivi : nithais ; stifun ."
    assert decode_new(tok, ids) == "Bivi : nithais ; stifun."
