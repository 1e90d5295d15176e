"""VerbMem: does the model continue a forget-set passage verbatim? (MUSE C1)

Per record: greedy continuation of `prompt` (encoded with BOS), `max_new_tokens` = 128; the
ground truth is `gt` encoded with BOS, cut to its first `gt_max_tokens` ids (BOS counts) and
decoded the way the output is; score = ROUGE-L F1(reference=gt, prediction=output) × 100.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..data import Corpus
from ..registry import check
from .registry import Split, metric
from .result import MetricResult
from .scores import mean_result, require_samples, require_some_output, rouge_l_f1


@dataclass(frozen=True)
class VerbMemConfig:
    split: Split = "forget"
    max_new_tokens: int = 128
    gt_max_tokens: int = 128

    def __post_init__(self) -> None:
        check(self.max_new_tokens > 0, "max_new_tokens must be positive", "max_new_tokens")


def truncate_gt(tokenizer: Any, gt: str, max_tokens: int) -> str:
    """`gt` as MUSE compares it: its first `max_tokens` ids *including* BOS, decoded."""
    from .core import decode_new

    ids = tokenizer(gt, add_special_tokens=True)["input_ids"][:max_tokens]
    return decode_new(tokenizer, list(ids))


@metric("verbmem", VerbMemConfig, unit="percent", tags={"data"})
def verbmem(model: Any, tokenizer: Any, corpus: Corpus, config: VerbMemConfig, *,
            batch_size: int | str = 32) -> MetricResult:
    from .core import generate_greedy

    records = corpus.verbmem(config.split)
    require_samples(records, corpus.root / "verbmem" / f"{config.split}.json")
    outputs = generate_greedy(model, tokenizer, [r["prompt"] for r in records],
                              max_new_tokens=config.max_new_tokens, batch_size=batch_size)
    require_some_output(outputs, what=f"verbmem[{config.split}]",
                        where=corpus.root / "verbmem" / f"{config.split}.json")
    gts = [truncate_gt(tokenizer, r["gt"], config.gt_max_tokens) for r in records]
    per = [100.0 * rouge_l_f1(gt, out) for gt, out in zip(gts, outputs)]
    return mean_result(per, what=f"verbmem[{config.split}]", details={
        "split": config.split,
        "examples": [{"prompt": r["prompt"][-200:], "output": o, "gt": g}
                     for r, o, g in list(zip(records, outputs, gts))[:3]],
    })
