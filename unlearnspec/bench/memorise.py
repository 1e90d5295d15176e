"""How much of its facts a model knows: exact-match accuracy of greedy answers to QA pairs,
asked the way KnowMem asks them. A stricter, easier-to-read companion of the KnowMem metric,
used by the benchmark's tests and docs: the prompt (`metrics.knowmem.qa_prompt`), the
batched greedy decoding (`metrics.core.generate_greedy`) and the stop strings are the
metric's own; only the score differs (exact match of the cut answer instead of ROUGE-L)."""
from __future__ import annotations

from typing import Any

from ..metrics.knowmem import qa_prompt
from ..metrics.scores import KNOWMEM_STOPS, cut_at_stops


def memorisation(model: Any, tokenizer: Any, qa: list[dict[str, str]],
                 icl: list[dict[str, str]], *, max_new_tokens: int = 16,
                 batch_size: int | str = 64) -> float:
    """Fraction of `qa` answered exactly (after cutting at KnowMem's stop strings). An empty
    `qa` is an error rather than 0 or 1: a fraction of nothing would pass any threshold."""
    from ..metrics.core import generate_greedy

    if not qa:
        raise ValueError("memorisation needs at least one QA pair")
    answers = generate_greedy(model, tokenizer, [qa_prompt(p["question"], icl) for p in qa],
                              max_new_tokens=max_new_tokens, stops=KNOWMEM_STOPS,
                              batch_size=batch_size)
    hits = sum(cut_at_stops(a, KNOWMEM_STOPS).strip() == p["answer"].strip()
               for a, p in zip(answers, qa))
    return hits / len(qa)


def memorisation_report(model: Any, tokenizer: Any, corpus: Any) -> dict[str, float]:
    """{'forget': ..., 'retain': ...} for a `unlearnspec.data.Corpus`."""
    return {split: memorisation(model, tokenizer, corpus.knowmem(split),
                                corpus.knowmem_icl(split))
            for split in ("forget", "retain")}
