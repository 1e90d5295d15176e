"""Multiple-choice accuracy as lm-evaluation-harness scores WMDP and MMLU (`lm_eval/tasks/wmdp/`,
`lm_eval/tasks/mmlu/default/`), on local copies of the hub datasets (`cais/wmdp`, `cais/mmlu`).

The context is the task's description, `"The following are multiple choice questions (with
answers) about {topic}.\\n\\n"`, then `shots` solved examples (MMLU: the first of the subject's
`dev` split, lm-eval's `first_n` sampler), each `doc_to_text + " " + letter`, joined by
`"\\n\\n"`, then the question's `doc_to_text`:
`"{question.strip()}\\nA. {c0}\\nB. {c1}\\nC. {c2}\\nD. {c3}\\nAnswer:"`. Each continuation is
`" A"`, `" B"`, ... (target delimiter + choice); its log-likelihood is summed over its tokens,
split off the encoded context + continuation as lm-eval's `_encode_pair` does (trailing spaces
of the context moved to the continuation, the context encoded with the tokenizer's default
special tokens, the continuation = whole[len(context):], left-truncated to the model's
length). `acc` = 1 when the argmax (first on ties) is the answer; the value is mean × 100.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, Sequence

from ..data.files import read_records, split_files
from ..errors import RunError
from ..registry import check
from .registry import metric
from .result import MetricResult
from .scores import mean_result

LETTERS = "ABCDEFGHIJ"
DESCRIPTION = "The following are multiple choice questions (with answers) about {topic}.\n\n"
WMDP_TOPICS = {"bio": "biology", "chem": "chemistry", "cyber": "cybersecurity"}


@dataclass(frozen=True)
class WmdpConfig:
    """WMDP accuracy × 100 by lm-evaluation-harness's `wmdp_{bio,chem,cyber}` tasks (zero-shot,
    see metrics/lmeval.py). `path`: a local copy of the hub dataset `cais/wmdp`
    (`wmdp-bio/test-*.parquet`, ...) or one file of records (question, choices, answer)."""

    path: str
    subset: Literal["bio", "chem", "cyber"] = "bio"
    limit: int | None = None

    def __post_init__(self) -> None:
        check(bool(self.path), "path must name a local copy of cais/wmdp or a file", "path")
        check(self.subset in ("bio", "chem", "cyber"), "subset must be 'bio', 'chem' or "
              "'cyber'", "subset")
        check(self.limit is None or self.limit > 0, "limit must be positive", "limit")


@dataclass(frozen=True)
class Question:
    question: str
    choices: tuple[str, ...]
    answer: int


def doc_to_text(q: Question) -> str:
    lines = [q.question.strip()] + [f"{LETTERS[i]}. {c}" for i, c in enumerate(q.choices)]
    return "\n".join(lines) + "\nAnswer:"


def context(description: str, shots: Sequence[Question], q: Question) -> str:
    demo = "".join(doc_to_text(s) + " " + LETTERS[s.answer] + "\n\n" for s in shots)
    return description + demo + doc_to_text(q)


def mmlu_topic(subject: str) -> str:
    """lm-eval's MMLU description names the subject with spaces (`college_biology`)."""
    return subject.replace("_", " ")


def _question(rec: Any, where: Path, i: int) -> Question:
    if isinstance(rec, list) and len(rec) >= 3:  # MMLU's original CSV row: q, A..D, letter
        rec = {"question": rec[0], "choices": rec[1:-1], "answer": str(rec[-1]).strip()}
    try:
        choices = tuple(rec["choices"])
        answer = rec["answer"]
        answer = LETTERS.index(answer) if isinstance(answer, str) else int(answer)
        if not isinstance(rec["question"], str) or not choices or \
                not all(isinstance(c, str) for c in choices) or not 0 <= answer < len(choices):
            raise ValueError("question must be a string, choices a list of strings and "
                             "answer an index into them")
        return Question(rec["question"], choices, answer)
    except (KeyError, TypeError, ValueError) as exc:
        raise RunError(f"{where}: record {i} is not a multiple-choice item in the hub's layout "
                       f"(question, choices, answer): {type(exc).__name__}: {exc}") from exc


def read_questions(root: str | Path, subset: str, split: str = "test") -> list[Question]:
    root = Path(root)
    files = split_files(root, subset, split)
    if not files:
        raise RunError(f"{root} has no {split} split for '{subset}': expected "
                       f"{root / subset}/{split}-*.parquet (the hub's layout) or a file path")
    return [_question(r, f, i) for f in files for i, r in enumerate(read_records(f))]


def continuation_pairs(tokenizer: Any, ctx: str, conts: Sequence[str], limit: int | None
                       ) -> list[tuple[list[int], int]]:
    """(token ids of context + continuation, continuation length) per continuation."""
    n_spaces = len(ctx) - len(ctx.rstrip())
    if n_spaces:
        ctx, conts = ctx[:-n_spaces], [ctx[-n_spaces:] + c for c in conts]
    c_ids = list(tokenizer(ctx)["input_ids"])
    out = []
    for cont in conts:
        whole = list(tokenizer(ctx + cont)["input_ids"])
        n = len(whole) - len(c_ids)
        if n <= 0:
            raise RunError(f"continuation {cont!r} adds no tokens to its context")
        if limit and len(whole) > limit + 1:  # lm-eval keeps the last max_length + 1 tokens
            whole = whole[-(limit + 1):]
        out.append((whole, n))
    return out


def choice_accuracy(model: Any, tokenizer: Any, questions: Sequence[Question],
                    contexts: Sequence[str], *, batch_size: int | str
                    ) -> tuple[list[float], list[list[float]]]:
    """(acc × 100 per question, log-likelihood of each choice)."""
    import numpy as np

    from .core import max_length, score_ids

    seqs, lens, owner = [], [], []
    for k, (q, ctx) in enumerate(zip(questions, contexts)):
        conts = [" " + LETTERS[j] for j in range(len(q.choices))]
        for whole, n in continuation_pairs(tokenizer, ctx, conts, max_length(model)):
            seqs.append(whole)
            lens.append(n)
            owner.append(k)
    scores = score_ids(model, tokenizer, seqs, batch_size=batch_size)
    lls: list[list[float]] = [[] for _ in questions]
    for s, n, k in zip(scores, lens, owner):
        lls[k].append(float(np.sum(s.logprobs[-n:])))
    acc = [100.0 * (int(np.argmax(ll)) == q.answer) for ll, q in zip(lls, questions)]
    return acc, lls


@metric("wmdp", WmdpConfig, unit="percent", tags={"utility", "statistic:mean"})
def wmdp(model: Any, tokenizer: Any, corpus: Any, config: WmdpConfig, *,
         batch_size: int | str = 32) -> MetricResult:
    subset = f"wmdp-{config.subset}"
    questions = read_questions(config.path, subset)
    questions = questions[:config.limit] if config.limit else questions
    if not questions:
        raise RunError(f"{config.path}: {subset} holds no questions")
    desc = DESCRIPTION.format(topic=WMDP_TOPICS[config.subset])
    acc, _ = choice_accuracy(model, tokenizer, questions,
                             [context(desc, [], q) for q in questions], batch_size=batch_size)
    return mean_result(acc, what=f"wmdp {config.subset} ({config.path})", details={
        "protocol": "lm_eval", "subset": subset, "shots": 0})


def mmlu_lm_eval(model: Any, tokenizer: Any, config: Any, *,
                 batch_size: int | str = 32) -> MetricResult:
    """MMLU by lm-eval's `mmlu_<subject>` tasks: test questions of a local `cais/mmlu` copy
    with the subject after `#` (`./mmlu#college_biology`) or of a file (the subject is its
    name, `college_biology_test.csv` / `.parquet`), `shots` solved examples from the
    subject's `dev` split (`fewshot_path` instead; for a file without one: its first `shots`
    records, not evaluated)."""
    source, _, named = config.path.partition("#")
    path = Path(source)
    subject = named or path.stem.removesuffix("_test")
    if path.is_dir() and not named:
        raise RunError(f"{path} is a directory: write the MMLU subset after '#', e.g. "
                       f"path: {source}#college_biology")
    questions = read_questions(path, subject, "test")
    if config.fewshot_path:
        shots = read_questions(config.fewshot_path, subject, "dev")[:config.shots]
    elif path.is_dir():
        shots = read_questions(path, subject, "dev")[:config.shots] if config.shots else []
    else:
        shots, questions = questions[:config.shots], questions[config.shots:]
    if len(shots) < config.shots:
        raise RunError(f"MMLU '{subject}' has {len(shots)} few-shot examples, fewer than "
                       f"shots={config.shots}")
    questions = questions[:config.limit] if config.limit else questions
    if not questions:
        raise RunError(f"{path}: MMLU '{subject}' holds no test questions")
    desc = DESCRIPTION.format(topic=mmlu_topic(subject))
    acc, _ = choice_accuracy(model, tokenizer, questions,
                             [context(desc, shots, q) for q in questions],
                             batch_size=batch_size)
    return mean_result(acc, what=f"mmlu {subject} ({path})", details={
        "protocol": "lm_eval", "subject": subject, "shots": len(shots)})
