"""RWKU's forget and neighbour probes (Table 8's FB, QA, AA columns), scored as RWKU's
`eval_forget` / `eval_neighbor` score them: a greedy answer of at most 30 tokens, stopped at
EOS or RWKU's stop tokens, decoded as RWKU decodes it (the prompt's text cut off the decoded
whole), stripped, `NOANSWER` when empty; then the `rouge` package's ROUGE-L **recall** of the
answer, × 100, averaged over probes (what `get_scores(..., avg=True)["rouge-l"]["r"]` gives).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from ..data.rwku import probes, rwku_root
from ..errors import RunError
from ..registry import check
from .registry import metric
from .result import MetricResult
from .rwku_prompts import probe_prompt, probe_stop_ids, uses_chat_template
from .scores import mean_result, require_samples, require_some_output

LEVELS = {"fb": 1, "qa": 2, "aa": 3}


@dataclass(frozen=True)
class RwkuConfig:
    """RWKU's probes for one target (the metric's data must be an RWKU target, see
    unlearnspec.data.rwku): `probe: fb` fill-in-the-blank (level 1), `qa` question answering
    (level 2), `aa` adversarial attacks (level 3, forget only); `split: forget` or `neighbor`
    (the neighbour set: locality). ROUGE-L recall × 100 of a greedy ≤ 30-token answer, as
    RWKU's `eval_forget` scores it."""

    probe: Literal["fb", "qa", "aa"] = "fb"
    split: Literal["forget", "neighbor"] = "forget"
    max_new_tokens: int = 30
    chat_template: bool | None = None

    def __post_init__(self) -> None:
        check(self.probe in ("fb", "qa", "aa"), "probe must be 'fb', 'qa' or 'aa'", "probe")
        check(self.split in ("forget", "neighbor"), "split must be 'forget' or 'neighbor'",
              "split")
        check(self.probe != "aa" or self.split == "forget",
              "RWKU has adversarial-attack probes for the forget set only", "probe")
        check(self.max_new_tokens > 0, "max_new_tokens must be positive", "max_new_tokens")


def rouge_l_recall(prediction: str, reference: str) -> float | None:
    """The `rouge` package's (pltrdy/rouge 1.0.1, RWKU's scorer) ROUGE-L recall in [0, 1];
    None where the package refuses the pair (an answer of only "." is empty to it, and RWKU's
    evaluation would stop with its ValueError)."""
    try:
        from rouge import Rouge
    except ImportError as exc:
        raise RunError("the rwku metric scores with the `rouge` package (RWKU's scorer): "
                       "pip install 'rouge>=1.0.1'") from exc
    try:
        return float(Rouge().get_scores(hyps=[prediction], refs=[reference])[0]["rouge-l"]["r"])
    except ValueError:
        return None


def _cut(ids: list[int], stops: set[int]) -> list[int]:
    for i, t in enumerate(ids):
        if t in stops:
            return ids[:i]
    return ids


@metric("rwku", RwkuConfig, unit="percent", tags={"data"})
def rwku_probe(model: Any, tokenizer: Any, corpus: Any, config: RwkuConfig, *,
               batch_size: int | str = 32) -> MetricResult:
    from .core import generate_greedy_ids

    root = rwku_root(corpus)
    items = probes(root, config.split, LEVELS[config.probe])
    where = root / "rwku" / f"{config.split}_level{LEVELS[config.probe]}.json"
    require_samples(items, where)
    chat = uses_chat_template(tokenizer, config.chat_template)
    enc = [list(tokenizer(probe_prompt(tokenizer, p.query, p.level, p.type, chat=chat))
                ["input_ids"]) for p in items]
    stop = probe_stop_ids(tokenizer)
    new = generate_greedy_ids(model, tokenizer, enc, max_new_tokens=config.max_new_tokens,
                              stop_ids=stop, batch_size=batch_size)
    stops = set(stop)
    outs = []
    for e, n in zip(enc, new):
        whole = tokenizer.decode(e + _cut(n, stops), skip_special_tokens=True)
        outs.append(whole[len(tokenizer.decode(e, skip_special_tokens=True)):])
    require_some_output(outs, what=f"rwku {config.probe}", where=where)
    preds = [o.strip() if o.strip() else "NOANSWER" for o in outs]
    recall = [rouge_l_recall(p, it.answer) for p, it in zip(preds, items)]
    per = [100.0 * (r or 0.0) for r in recall]
    return mean_result(per, what=f"rwku {config.probe} ({where})", details={
        "probe": config.probe, "split": config.split, "chat_template": chat,
        # answers the rouge package cannot tokenize (e.g. only "."), scored 0
        "unscorable": sum(r is None for r in recall),
        "examples": [{"query": it.query, "output": p, "answer": it.answer}
                     for p, it in list(zip(preds, items))[:3]]})
