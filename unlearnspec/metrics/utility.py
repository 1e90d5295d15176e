"""Utility metrics on public benchmarks read from local files (section 6's Gen / Tru / Fac /
Flu columns): MMLU and TruthfulQA MC1 accuracy, QA F1 (TriviaQA), and fluency (weighted
bi-/tri-gram entropy of generations).

`protocol: rwku` (the default) builds prompts and scores as RWKU's evaluation code does, which
the paper's Tables 3, 4 and 9 follow; `protocol: loglik` / `plain` are the earlier
log-likelihood / plain-prompt variants. They ignore the spec's corpus. Relative `path`s are
resolved against the working directory.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from ..data.files import read_records
from ..errors import RunError
from .core import generate_greedy, next_token_logprobs, score_ids
from .registry import FluencyConfig, MultipleChoiceConfig, TriviaQAConfig, TruthfulQAConfig
from .rwku_prompts import (MMLU_LETTERS, fluency_user_text, mmlu_user_text, rwku_prompt,
                           truthfulqa_user_text, uses_chat_template)
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
    subject: str | None = None
    examples: tuple["ChoiceItem", ...] | None = None


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
        examples = rec.get("examples")
        return ChoiceItem(rec["question"], tuple(rec["choices"]), idx,
                          rec.get("subject", rec.get("task")),
                          None if examples is None
                          else tuple(_choice_item(e, path, i) for e in examples))
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


def _loglik_choices(model: Any, tokenizer: Any, shots: Sequence[ChoiceItem],
                    items: Sequence[ChoiceItem], agg: Any, *, batch_size: int | str
                    ) -> list[list[float]]:
    """Per item, the aggregated log-likelihood of `" " + choice` after `Question:`/`Answer:`
    shots and the question."""
    demo = "".join(f"Question: {s.question}\nAnswer: {s.choices[s.answer]}\n\n" for s in shots)
    pairs = [(demo + f"Question: {it.question}\nAnswer:", " " + c)
             for it in items for c in it.choices]
    lps = continuation_logprobs(model, tokenizer, pairs, batch_size=batch_size)
    out, k = [], 0
    for it in items:
        out.append([float(agg(lp)) for lp in lps[k:k + len(it.choices)]])
        k += len(it.choices)
    return out


def _subject(item: ChoiceItem, path: Path) -> str:
    """RWKU's header names the item's subject (`task`); MMLU's CSVs are one subject per file
    (`astronomy_test.csv`), so the file name stands in when the record has none."""
    if item.subject:
        return item.subject
    stem = path.stem
    for tail in ("_test", "_dev", "_val"):
        stem = stem.removesuffix(tail)
    return stem


def _letter_ids(tokenizer: Any, n: int) -> list[int]:
    """RWKU's candidates: the last token of `" " + letter` (no special tokens)."""
    ids = [_ids(tokenizer, " " + MMLU_LETTERS[j], False) for j in range(n)]
    if any(not i for i in ids) or len({i[-1] for i in ids}) < n:
        raise RunError(f"the tokenizer does not give the answer letters {MMLU_LETTERS[:n]} "
                       f"distinct tokens, so MMLU's letter protocol cannot tell them apart")
    return [i[-1] for i in ids]


def _own_examples(config: MultipleChoiceConfig) -> list[ChoiceItem] | None:
    """Every record of `path` when each carries its own `examples` (RWKU's layout), else None."""
    path = Path(config.path)
    items = [_choice_item(r, path, i) for i, r in enumerate(read_records(path))]
    if not items or any(it.examples is None for it in items):
        return None
    items = items[:config.limit] if config.limit else items
    return items


def mmlu(model: Any, tokenizer: Any, corpus: Any, config: MultipleChoiceConfig, *,
         batch_size: int | str = 32) -> MetricResult:
    if config.protocol == "lm_eval":
        from .lmeval import mmlu_lm_eval

        return mmlu_lm_eval(model, tokenizer, config, batch_size=batch_size)
    path = Path(config.path)
    if config.protocol == "loglik":
        shots, items = _split_shots(config, _choice_item)
        agg = np.sum if config.normalize == "sum" else np.mean
        ll = _loglik_choices(model, tokenizer, shots, items, agg, batch_size=batch_size)
        per = [100.0 * (int(np.argmax(x)) == it.answer) for x, it in zip(ll, items)]
        return mean_result(per, what=f"mmlu ({config.path})", details={
            "protocol": "loglik", "shots": len(shots), "normalize": config.normalize or "mean"})
    chat = uses_chat_template(tokenizer, config.chat_template)
    own = _own_examples(config)
    shots, items = ([], own) if own is not None else _split_shots(config, _choice_item)
    by_width: dict[int, list[int]] = {}
    for i, it in enumerate(items):
        by_width.setdefault(len(it.choices), []).append(i)
    pred: dict[int, int] = {}
    for width, idx in by_width.items():
        prompts = []
        for i in idx:
            it = items[i]
            demo = [(s.question, s.choices, s.answer) for s in (it.examples or shots)]
            user = mmlu_user_text(_subject(it, path), demo, it.question, it.choices)
            prompts.append(_ids(tokenizer, rwku_prompt(tokenizer, user, "Answer:", chat=chat),
                                True))
        lps = next_token_logprobs(model, tokenizer, prompts, _letter_ids(tokenizer, width),
                                  batch_size=batch_size)
        pred.update({i: int(np.argmax(lp)) for i, lp in zip(idx, lps)})
    per = [100.0 * (pred[i] == it.answer) for i, it in enumerate(items)]
    return mean_result(per, what=f"mmlu ({config.path})", details={
        "protocol": "rwku", "chat_template": chat,
        "shots": "per record" if own is not None else len(shots)})


def truthfulqa_mc1(model: Any, tokenizer: Any, corpus: Any, config: TruthfulQAConfig, *,
                   batch_size: int | str = 32) -> MetricResult:
    if config.protocol == "loglik":
        shots, items = _split_shots(config, _choice_item)
        agg = np.mean if config.normalize == "mean" else np.sum
        ll = _loglik_choices(model, tokenizer, shots, items, agg, batch_size=batch_size)
        per = [100.0 * (int(np.argmax(x)) == it.answer) for x, it in zip(ll, items)]
        return mean_result(per, what=f"truthfulqa_mc1 ({config.path})", details={
            "protocol": "loglik", "shots": len(shots), "normalize": config.normalize or "sum"})
    path = Path(config.path)
    items = [_choice_item(r, path, i) for i, r in enumerate(read_records(path))]
    items = items[:config.limit] if config.limit else items
    require_samples(items, path)
    chat = uses_chat_template(tokenizer, config.chat_template)
    prompts = [rwku_prompt(tokenizer, truthfulqa_user_text(it.question), "A:", chat=chat,
                           pad=" ") for it in items]
    pairs = [(p, " " + c) for p, it in zip(prompts, items) for c in it.choices]
    lps = continuation_logprobs(model, tokenizer, pairs, batch_size=batch_size)
    per, k = [], 0
    for it in items:
        ll = [float(np.sum(lp)) for lp in lps[k:k + len(it.choices)]]
        k += len(it.choices)
        false = [x for j, x in enumerate(ll) if j != it.answer]
        per.append(100.0 * (not false or ll[it.answer] > max(false)))
    return mean_result(per, what=f"truthfulqa_mc1 ({config.path})", details={
        "protocol": "rwku", "shots": 6, "chat_template": chat})


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
    outputs = [cut_at_stops(o, QA_STOPS).strip() for o in raw]
    require_some_output(outputs, what="triviaqa", where=config.path, raw=raw)
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
    if config.protocol == "rwku":
        chat = uses_chat_template(tokenizer, config.chat_template)
        prompts = [rwku_prompt(tokenizer, fluency_user_text(x), "", chat=chat)
                   for x in instructions]
        scale, unit, extra = 100.0, "bits x 100", {"chat_template": chat}
    else:
        template = config.template or "{instruction}\n"
        prompts = [template.format(instruction=x) for x in instructions]
        scale, unit, extra = 1.0, "bits", {}
    outputs = generate_greedy(model, tokenizer, prompts, max_new_tokens=config.new_tokens,
                              batch_size=batch_size)
    require_some_output(outputs, what="fluency", where=path)
    per = [scale * ngram_entropy(o) for o in outputs]
    return mean_result(per, what=f"fluency ({path})", details={
        "protocol": config.protocol, "unit": unit, "max_new_tokens": config.new_tokens, **extra,
        "examples": [{"instruction": x, "output": o}
                     for x, o in list(zip(instructions, outputs))[:3]]})
