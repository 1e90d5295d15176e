"""Utility metrics on public benchmarks read from local files (section 6's Gen / Tru / Fac /
Flu columns): multiple-choice accuracy by answer log-likelihood (MMLU, TruthfulQA MC1), QA F1
(TriviaQA), and fluency (weighted bi-/tri-gram entropy of generations).

They ignore the spec's corpus. Relative `path`s are resolved against the working directory.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from ..data.files import read_records
from ..errors import RunError
from .core import generate_greedy, score_ids
from .registry import FluencyConfig, MultipleChoiceConfig, TriviaQAConfig
from .result import MetricResult
from .scores import (cut_at_stops, mean_result, ngram_entropy, qa_f1, require_samples,
                     require_some_output)

QA_STOPS = ("\n", "Question:")
LETTERS = "ABCDEFGHIJ"


@dataclass(frozen=True)
class ChoiceItem:
    question: str
    choices: tuple[str, ...]
    answer: int


def _choice_item(rec: Any, path: Path, i: int) -> ChoiceItem:
    """One MC item from MMLU (hub: question/choices/answer; CSV: q, A..D, letter) or
    TruthfulQA (mc1_targets as {choices, labels} or {choice: label})."""
    try:
        if isinstance(rec, list):  # MMLU's original CSV row
            *opts, letter = rec[1:]
            return ChoiceItem(rec[0], tuple(opts), LETTERS.index(letter.strip()))
        if "mc1_targets" in rec:
            t = rec["mc1_targets"]
            choices, labels = ((t["choices"], t["labels"]) if "choices" in t
                               else (list(t), list(t.values())))
            return ChoiceItem(rec["question"], tuple(choices), list(labels).index(1))
        ans = rec["answer"]
        idx = LETTERS.index(ans) if isinstance(ans, str) else int(ans)
        return ChoiceItem(rec["question"], tuple(rec["choices"]), idx)
    except (KeyError, ValueError, TypeError, IndexError) as exc:
        raise RunError(f"{path}: record {i} is not a multiple-choice item in MMLU or "
                       f"TruthfulQA format ({type(exc).__name__}: {exc})") from exc


def _split_shots(cfg: Any, parse: Any) -> tuple[list[Any], list[Any]]:
    path = Path(cfg.path)
    items = [parse(r, path, i) for i, r in enumerate(read_records(path))]
    if cfg.fewshot_path:
        fpath = Path(cfg.fewshot_path)
        shots = [parse(r, fpath, i) for i, r in enumerate(read_records(fpath))][:cfg.shots]
    else:
        shots, items = items[:cfg.shots], items[cfg.shots:]
    if cfg.limit:
        items = items[:cfg.limit]
    require_samples(items, f"{path} (after taking {len(shots)} few-shot examples)")
    return shots, items


def _ids(tokenizer: Any, text: str, special: bool) -> list[int]:
    return list(tokenizer(text, add_special_tokens=special)["input_ids"])


def continuation_logprobs(model: Any, tokenizer: Any, pairs: Sequence[tuple[str, str]], *,
                          batch_size: int | str) -> list[np.ndarray]:
    """Log-probs of each continuation's tokens given its context (context with BOS). The
    continuation's tokens are those of context+continuation past the context's own tokens,
    so a tokenizer that merges across the boundary is scored on what it actually emits."""
    seqs, n_cont = [], []
    for ctx, cont in pairs:
        c, whole = _ids(tokenizer, ctx, True), _ids(tokenizer, ctx + cont, True)
        n = len(whole) - len(c)
        if n <= 0:
            raise RunError(f"answer {cont!r} adds no tokens to its prompt")
        seqs.append(whole)
        n_cont.append(n)
    scores = score_ids(model, tokenizer, seqs, batch_size=batch_size)
    return [s.logprobs[-n:] for s, n in zip(scores, n_cont)]


def mc_accuracy(model: Any, tokenizer: Any, corpus: Any, config: MultipleChoiceConfig, *,
                batch_size: int | str = 32) -> MetricResult:
    shots, items = _split_shots(config, _choice_item)
    demo = "".join(f"Question: {s.question}\nAnswer: {s.choices[s.answer]}\n\n" for s in shots)
    pairs = [(demo + f"Question: {it.question}\nAnswer:", " " + c)
             for it in items for c in it.choices]
    lps = continuation_logprobs(model, tokenizer, pairs, batch_size=batch_size)
    agg = np.mean if config.normalize == "mean" else np.sum
    per, k = [], 0
    for it in items:
        ll = [float(agg(lp)) for lp in lps[k:k + len(it.choices)]]
        k += len(it.choices)
        per.append(100.0 * (int(np.argmax(ll)) == it.answer))
    return mean_result(per, what=f"multiple choice ({config.path})",
                       details={"shots": len(shots), "normalize": config.normalize})


def _trivia_item(rec: Any, path: Path, i: int) -> tuple[str, list[str]]:
    try:
        q = rec.get("question", rec.get("Question"))
        a = rec.get("answer", rec.get("Answer"))
        if isinstance(a, str):
            return q, [a]
        value = a.get("value", a.get("Value"))
        aliases = a.get("aliases", a.get("Aliases")) or []
        if not isinstance(q, str) or not isinstance(value, str):
            raise TypeError("question and answer value must be strings")
        return q, [value, *aliases]
    except (AttributeError, TypeError) as exc:
        raise RunError(f"{path}: record {i} is not a TriviaQA item (question + answer "
                       f"{{value, aliases}}): {exc}") from exc


def qa_f1_score(model: Any, tokenizer: Any, corpus: Any, config: TriviaQAConfig, *,
                batch_size: int | str = 32) -> MetricResult:
    shots, items = _split_shots(config, _trivia_item)
    demo = "".join(f"Question: {q}\nAnswer: {answers[0]}\n\n" for q, answers in shots)
    raw = generate_greedy(model, tokenizer, [demo + f"Question: {q}\nAnswer: " for q, _ in items],
                          max_new_tokens=config.max_new_tokens, stops=QA_STOPS,
                          batch_size=batch_size)
    require_some_output(raw, what="triviaqa", where=config.path)
    outputs = [cut_at_stops(o, QA_STOPS).strip() for o in raw]
    per = [100.0 * qa_f1(o, answers) for o, (_, answers) in zip(outputs, items)]
    return mean_result(per, what=f"triviaqa ({config.path})", details={
        "shots": len(shots),
        "examples": [{"question": q, "output": o, "answer": a[0]}
                     for o, (q, a) in list(zip(outputs, items))[:3]]})


def _instruction(rec: Any, path: Path, i: int) -> str:
    value = rec.get("instruction") if isinstance(rec, dict) else rec
    if not isinstance(value, str):
        raise RunError(f"{path}: record {i} has no string 'instruction' (AlpacaEval format)")
    return value


def fluency(model: Any, tokenizer: Any, corpus: Any, config: FluencyConfig, *,
            batch_size: int | str = 32) -> MetricResult:
    path = Path(config.path)
    instructions = [_instruction(r, path, i) for i, r in enumerate(read_records(path))]
    instructions = instructions[:config.limit] if config.limit else instructions
    require_samples(instructions, path)
    outputs = generate_greedy(model, tokenizer,
                              [config.template.format(instruction=x) for x in instructions],
                              max_new_tokens=config.max_new_tokens, batch_size=batch_size)
    require_some_output(outputs, what="fluency", where=path)
    per = [ngram_entropy(o) for o in outputs]
    return mean_result(per, what=f"fluency ({path})",
                       details={"examples": [{"instruction": x, "output": o}
                                             for x, o in list(zip(instructions, outputs))[:3]]})
