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
from typing import TYPE_CHECKING, Any, Literal, Sequence

from ..data.files import read_records
from ..errors import RunError
from ..registry import check
from .registry import metric
from .choice_items import ChoiceItem, choice_item, own_examples, split_shots, subject_of
from .rwku_prompts import (MMLU_LETTERS, fluency_user_text, mmlu_user_text, rwku_prompt,
                           truthfulqa_user_text, uses_chat_template)
from .result import MetricResult
from .scores import (cut_at_stops, mean_result, ngram_entropy, qa_f1, require_samples,
                     require_some_output)

if TYPE_CHECKING:
    import numpy as np

QA_STOPS = ("\n", "Question:")

Protocol = Literal["rwku", "loglik", "lm_eval"]


@dataclass(frozen=True)
class FluencyConfig:
    """Weighted bi-/tri-gram entropy of greedy generations for instructions in `path`
    (AlpacaEval's JSON: records with an `instruction` field; or a list of strings).

    `protocol: rwku` (default): RWKU's `eval_fluency` — prompt `Instruction: {instruction}\n`
    (in the chat template when the tokenizer has one), 256 new tokens, value in bits × 100 as
    the paper's tables print it (e.g. 573.3). `protocol: plain`: prompt `template`
    (default `{instruction}\n`), 128 new tokens, value in bits."""

    path: str
    protocol: Literal["rwku", "plain"] = "rwku"
    max_new_tokens: int | None = None
    template: str | None = None
    chat_template: bool | None = None
    limit: int | None = None

    def __post_init__(self) -> None:
        check(bool(self.path), "path must name a local instructions file", "path")
        check(self.protocol in ("rwku", "plain"), "protocol must be 'rwku' or 'plain'",
              "protocol")
        check(self.max_new_tokens is None or self.max_new_tokens > 0,
              "max_new_tokens must be positive", "max_new_tokens")
        check(self.template is None or self.protocol == "plain",
              "template applies to protocol: plain (RWKU's prompt is fixed)", "template")
        check(self.chat_template is None or self.protocol == "rwku",
              "chat_template applies to protocol: rwku", "chat_template")
        check(self.template is None or "{instruction}" in self.template,
              "template must contain '{instruction}'", "template")
        check(self.limit is None or self.limit > 0, "limit must be positive", "limit")

    @property
    def new_tokens(self) -> int:
        return self.max_new_tokens or (256 if self.protocol == "rwku" else 128)


@dataclass(frozen=True)
class MultipleChoiceConfig:
    """MMLU accuracy × 100. `path`: hub records (question/choices/answer, optionally
    `subject`/`task` and RWKU's per-item `examples`) or the original headerless CSV.

    `protocol: rwku` (default, RWKU's `eval_mmlu`): the subject header, `shots` solved
    examples listing the choices as `A. …` lines with `Answer: X`, the question with its
    choices, then `Answer:`; the prediction is the letter among A–D (…) with the highest
    next-token probability. `protocol: loglik`: the choice whose text `" " + choice` has the
    highest log-likelihood after `Question: {q}\nAnswer:` (choices not listed); `normalize`
    "mean" (default: answer perplexity) or "sum". `protocol: lm_eval`: lm-evaluation-harness's
    `mmlu_<subject>` task (metrics/lmeval.py): its description, the choices listed, " A"…" D"
    scored, `acc`; `path` a file, or a local copy of `cais/mmlu` with the subject after `#`
    (`./mmlu#college_biology`), few-shot examples from that subject's dev split.

    Few-shot examples: a record's own `examples` (RWKU's layout), else `fewshot_path`, else the
    first `shots` records of `path` (not evaluated)."""

    path: str
    protocol: Protocol = "rwku"
    shots: int = 5
    fewshot_path: str | None = None
    normalize: Literal["mean", "sum"] | None = None
    chat_template: bool | None = None
    limit: int | None = None

    def __post_init__(self) -> None:
        check(bool(self.path), "path must name a local data file", "path")
        check(self.protocol in ("rwku", "loglik", "lm_eval"),
              "protocol must be 'rwku', 'loglik' or 'lm_eval'", "protocol")
        check(self.shots >= 0, "shots must be 0 or more", "shots")
        check(self.normalize in (None, "mean", "sum"), "normalize must be 'mean' or 'sum'",
              "normalize")
        check(self.normalize is None or self.protocol == "loglik",
              "normalize applies to protocol: loglik (rwku compares the answer letters)",
              "normalize")
        check(self.chat_template is None or self.protocol == "rwku",
              "chat_template applies to protocol: rwku", "chat_template")
        check(self.limit is None or self.limit > 0, "limit must be positive", "limit")


@dataclass(frozen=True)
class TruthfulQAConfig(MultipleChoiceConfig):
    """TruthfulQA MC1 accuracy × 100 (records with `mc1_targets`).

    `protocol: rwku` (default, RWKU's `eval_truthfulqa`): the fixed QA preset's six `Q:`/`A:`
    shots, then `Q: {question}` and `A:`; the summed log-likelihood of `" " + choice`; an item
    counts only if the true answer scores *strictly* higher than every false one (a tie is
    wrong). `shots`/`fewshot_path` must stay unset (the preset is the shots) and every record
    is evaluated. `protocol: loglik`: `shots` solved examples from the file as
    `Question:`/`Answer:`, `normalize` (default "sum"), ties go to the first choice."""

    shots: int = 6

    def __post_init__(self) -> None:
        super().__post_init__()
        check(self.protocol != "lm_eval", "truthfulqa_mc1 has protocols 'rwku' and 'loglik' "
              "(lm_eval applies to mmlu)", "protocol")
        check(self.protocol == "loglik" or (self.shots == 6 and self.fewshot_path is None),
              "protocol: rwku uses TruthfulQA's fixed six-shot QA preset; shots and "
              "fewshot_path apply to protocol: loglik", "shots")


@dataclass(frozen=True)
class TriviaQAConfig:
    """Token F1 × 100 (best over accepted aliases) of a greedy answer after `shots` examples.
    `path`: TriviaQA records (`question` + `answer: {value, aliases}`, or the original
    `{"Data": [{"Question", "Answer": {"Value", "Aliases"}}]}`)."""

    path: str
    shots: int = 6
    fewshot_path: str | None = None
    max_new_tokens: int = 32
    limit: int | None = None

    def __post_init__(self) -> None:
        check(bool(self.path), "path must name a local data file", "path")
        check(self.shots >= 0, "shots must be 0 or more", "shots")
        check(self.max_new_tokens > 0, "max_new_tokens must be positive", "max_new_tokens")
        check(self.limit is None or self.limit > 0, "limit must be positive", "limit")


def _ids(tokenizer: Any, text: str, special: bool) -> list[int]:
    return list(tokenizer(text, add_special_tokens=special)["input_ids"])


def continuation_logprobs(model: Any, tokenizer: Any, pairs: Sequence[tuple[str, str]], *,
                          batch_size: int | str) -> list[np.ndarray]:
    """Log-probs of each continuation's tokens given its context (context with BOS). The
    continuation's tokens are those of context+continuation past the context's own tokens,
    so a tokenizer that merges across the boundary is scored on what it actually emits."""
    from .core import score_ids

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


def _letter_ids(tokenizer: Any, n: int) -> list[int]:
    """RWKU's candidates: the last token of `" " + letter` (no special tokens)."""
    ids = [_ids(tokenizer, " " + MMLU_LETTERS[j], False) for j in range(n)]
    if any(not i for i in ids) or len({i[-1] for i in ids}) < n:
        raise RunError(f"the tokenizer does not give the answer letters {MMLU_LETTERS[:n]} "
                       f"distinct tokens, so MMLU's letter protocol cannot tell them apart")
    return [i[-1] for i in ids]


def _instruction(rec: Any, path: Path, i: int) -> str:
    value = rec.get("instruction") if isinstance(rec, dict) else rec
    if not isinstance(value, str):
        raise RunError(f"{path}: record {i} has no string 'instruction' (AlpacaEval format)")
    return value


@metric("fluency", FluencyConfig, unit="entropy", tags={"utility"})
def fluency(model: Any, tokenizer: Any, corpus: Any, config: FluencyConfig, *,
            batch_size: int | str = 32) -> MetricResult:
    from .core import generate_greedy

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


@metric("mmlu", MultipleChoiceConfig, unit="percent", tags={"utility"})
def mmlu(model: Any, tokenizer: Any, corpus: Any, config: MultipleChoiceConfig, *,
         batch_size: int | str = 32) -> MetricResult:
    import numpy as np

    from .core import next_token_logprobs

    if config.protocol == "lm_eval":
        from .lmeval import mmlu_lm_eval

        return mmlu_lm_eval(model, tokenizer, config, batch_size=batch_size)
    path = Path(config.path)
    if config.protocol == "loglik":
        shots, items = split_shots(config, choice_item)
        agg = np.sum if config.normalize == "sum" else np.mean
        ll = _loglik_choices(model, tokenizer, shots, items, agg, batch_size=batch_size)
        per = [100.0 * (int(np.argmax(x)) == it.answer) for x, it in zip(ll, items)]
        return mean_result(per, what=f"mmlu ({config.path})", details={
            "protocol": "loglik", "shots": len(shots), "normalize": config.normalize or "mean"})
    chat = uses_chat_template(tokenizer, config.chat_template)
    own = own_examples(config)
    shots, items = ([], own) if own is not None else split_shots(config, choice_item)
    by_width: dict[int, list[int]] = {}
    for i, it in enumerate(items):
        by_width.setdefault(len(it.choices), []).append(i)
    pred: dict[int, int] = {}
    for width, idx in by_width.items():
        prompts = []
        for i in idx:
            it = items[i]
            demo = [(s.question, s.choices, s.answer) for s in (it.examples or shots)]
            user = mmlu_user_text(subject_of(it, path), demo, it.question, it.choices)
            prompts.append(_ids(tokenizer, rwku_prompt(tokenizer, user, "Answer:", chat=chat),
                                True))
        lps = next_token_logprobs(model, tokenizer, prompts, _letter_ids(tokenizer, width),
                                  batch_size=batch_size)
        pred.update({i: int(np.argmax(lp)) for i, lp in zip(idx, lps)})
    per = [100.0 * (pred[i] == it.answer) for i, it in enumerate(items)]
    return mean_result(per, what=f"mmlu ({config.path})", details={
        "protocol": "rwku", "chat_template": chat,
        "shots": "per record" if own is not None else len(shots)})


@metric("truthfulqa_mc1", TruthfulQAConfig, unit="percent", tags={"utility"})
def truthfulqa_mc1(model: Any, tokenizer: Any, corpus: Any, config: TruthfulQAConfig, *,
                   batch_size: int | str = 32) -> MetricResult:
    import numpy as np

    if config.protocol == "loglik":
        shots, items = split_shots(config, choice_item)
        agg = np.mean if config.normalize == "mean" else np.sum
        ll = _loglik_choices(model, tokenizer, shots, items, agg, batch_size=batch_size)
        per = [100.0 * (int(np.argmax(x)) == it.answer) for x, it in zip(ll, items)]
        return mean_result(per, what=f"truthfulqa_mc1 ({config.path})", details={
            "protocol": "loglik", "shots": len(shots), "normalize": config.normalize or "sum"})
    path = Path(config.path)
    items = [choice_item(r, path, i) for i, r in enumerate(read_records(path))]
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


@metric("triviaqa", TriviaQAConfig, unit="percent", tags={"utility"})
def qa_f1_score(model: Any, tokenizer: Any, corpus: Any, config: TriviaQAConfig, *,
                batch_size: int | str = 32) -> MetricResult:
    from .core import generate_greedy

    shots, items = split_shots(config, _trivia_item)
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
