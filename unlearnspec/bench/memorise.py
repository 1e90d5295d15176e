"""How much of its facts a model knows: exact-match accuracy of greedy answers to QA pairs,
asked in MUSE's KnowMem prompt format (few-shot pairs, then the question). A stricter,
easier-to-read companion of the KnowMem metric, used by the benchmark's tests and docs."""
from __future__ import annotations

from typing import Any

import torch

STOPS = ("\n\n", "\nQuestion", "Question:")


def knowmem_prompt(question: str, icl: list[dict[str, str]]) -> str:
    shots = "".join(f"Question: {p['question']}\nAnswer: {p['answer']}\n\n" for p in icl)
    return shots + f"Question: {question}\nAnswer: "


def cut_answer(text: str) -> str:
    """The answer part of a generation: everything before the first stop string, stripped."""
    for stop in STOPS:
        text = text.split(stop, 1)[0]
    return text.strip()


@torch.no_grad()
def greedy_answers(model: Any, tokenizer: Any, prompts: list[str], *, max_new_tokens: int = 16,
                   batch_size: int = 64) -> list[str]:
    """Greedy continuations, batched with left padding; special tokens dropped."""
    side = tokenizer.padding_side
    tokenizer.padding_side = "left"
    outs: list[str] = []
    try:
        for i in range(0, len(prompts), batch_size):
            enc = tokenizer(prompts[i:i + batch_size], return_tensors="pt", padding=True)
            gen = model.generate(**enc, max_new_tokens=max_new_tokens, do_sample=False,
                                 pad_token_id=tokenizer.pad_token_id)
            new = gen[:, enc["input_ids"].shape[1]:]
            outs += tokenizer.batch_decode(new, skip_special_tokens=True)
    finally:
        tokenizer.padding_side = side
    return outs


def memorisation(model: Any, tokenizer: Any, qa: list[dict[str, str]],
                 icl: list[dict[str, str]]) -> float:
    """Fraction of `qa` answered exactly (after cutting at MUSE's stop strings). An empty `qa`
    is an error rather than 0 or 1: a fraction of nothing would pass any threshold."""
    if not qa:
        raise ValueError("memorisation needs at least one QA pair")
    prompts = [knowmem_prompt(p["question"], icl) for p in qa]
    answers = greedy_answers(model, tokenizer, prompts)
    hits = sum(cut_answer(a) == p["answer"].strip() for a, p in zip(answers, qa))
    return hits / len(qa)


def memorisation_report(model: Any, tokenizer: Any, corpus: Any) -> dict[str, float]:
    """{'forget': ..., 'retain': ...} for a `unlearnspec.data.Corpus`."""
    return {split: memorisation(model, tokenizer, corpus.knowmem(split),
                                corpus.knowmem_icl(split))
            for split in ("forget", "retain")}
