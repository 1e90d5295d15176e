"""KnowMem: can the model answer questions about the split? (MUSE C2; on `retain`, C4)

Prompt = every ICL pair as "Question: {q}\\nAnswer: {a}\\n\\n", then
"Question: {q}\\nAnswer: "; greedy, `max_new_tokens` = 32; the output is cut before the first
"\\n\\n", "\\nQuestion" or "Question:"; score = ROUGE-L F1 against `answer` × 100.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal, Sequence

from ..data import Corpus
from ..registry import check
from .registry import metric
from .result import MetricResult
from .scores import (KNOWMEM_STOPS, cut_at_stops, mean_result, require_samples,
                     require_some_output, rouge_l_f1)


@dataclass(frozen=True)
class KnowMemConfig:
    split: Literal["forget", "retain"] = "forget"
    max_new_tokens: int = 32
    icl: bool = True

    def __post_init__(self) -> None:
        check(self.split in ("forget", "retain"), "split must be 'forget' or 'retain'", "split")
        check(self.max_new_tokens > 0, "max_new_tokens must be positive", "max_new_tokens")


def qa_prompt(question: str, icl: Sequence[dict[str, str]]) -> str:
    shots = "".join(f"Question: {r['question']}\nAnswer: {r['answer']}\n\n" for r in icl)
    return shots + f"Question: {question}\nAnswer: "


@metric("knowmem", KnowMemConfig, unit="percent", tags={"data"})
def knowmem(model: Any, tokenizer: Any, corpus: Corpus, config: KnowMemConfig, *,
            batch_size: int | str = 32) -> MetricResult:
    from .core import generate_greedy

    records = corpus.knowmem(config.split)
    require_samples(records, corpus.root / "knowmem" / f"{config.split}_qa.json")
    icl = corpus.knowmem_icl(config.split) if config.icl else []
    raw = generate_greedy(model, tokenizer, [qa_prompt(r["question"], icl) for r in records],
                          max_new_tokens=config.max_new_tokens, stops=KNOWMEM_STOPS,
                          batch_size=batch_size)
    outputs = [cut_at_stops(o, KNOWMEM_STOPS) for o in raw]
    # on what is scored: "Question: ..." as every answer is cut to "" and would score 0
    require_some_output(outputs, what=f"knowmem[{config.split}]",
                        where=corpus.root / "knowmem" / f"{config.split}_qa.json", raw=raw)
    per = [100.0 * rouge_l_f1(r["answer"], o) for r, o in zip(records, outputs)]
    return mean_result(per, what=f"knowmem[{config.split}]", details={
        "split": config.split, "icl_pairs": len(icl),
        "examples": [{"question": r["question"], "output": o, "answer": r["answer"]}
                     for r, o in list(zip(records, outputs))[:3]],
    })
