"""TOFU's metrics (Maini et al., 2024) as its reference code (`locuslab/tofu`,
`evaluate_util.py` + `utils.py`) computes them, on a corpus from `data.tofu`.

Per split (forget, retain, real_authors, world_facts), on the first `limit` (TOFU's `ds_size`,
300) records:

* Each answer is scored as TOFU's `convert_raw_data_to_model_format` builds it: the template's
  full text encoded with special tokens, cut to `max_length` (200) tokens, EOS appended when it
  was not cut; the loss is the summed NLL of every token after the question's own tokens
  (`len(tokenizer.tokenize(question_text, add_special_tokens=True))`), and the *average* loss
  divides it by that token count (EOS included).
* `tofu_prob`: mean of exp(−avg loss of the answer) on forget / retain; on real authors / world
  facts the answer's share exp(−ℓ_a) / (exp(−ℓ_a) + Σ exp(−ℓ_perturbed)).
* `tofu_truth_ratio`: R = mean_i exp(−ℓ_perturbed_i) / exp(−ℓ_base) (base: the paraphrased
  answer on forget / retain, the answer on the others); reported as mean(min(R, 1/R)) on the
  forget split and mean(max(0, 1 − R)) elsewhere, TOFU's directions.
* `tofu_rouge`: ROUGE-L recall (`rouge_score`, stemmer on) of a greedy generation against the
  answer. The prompt and the ground truth are TOFU's: the full text decoded
  (`skip_special_tokens`) and split at `" [/INST]"` (llama2, which re-appends it) or
  `"Answer: "` (every other template: the prompt ends before `Answer: `). TOFU generates with
  `max_length` = 200 *including the left-padded prompt*, so a row's budget depends on the
  longest prompt in its batch of 30: `budget: batch` (default) reproduces that exactly,
  `budget: prompt` gives every row 200 − its own prompt length.
* `tofu_forget_quality`: the two-sample KS test's p-value between the forget split's truth
  ratios exp(mean_i ℓ_perturbed_i − ℓ_base) of the subject and of the reference (the retain
  model), as TOFU's `get_forget_quality`.
* `tofu_model_utility`: the harmonic mean of the nine numbers prob / rouge / truth ratio on
  retain, real authors and world facts (`get_model_utility`).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal, Sequence

from ..data.tofu import TEMPLATES, Template, TofuItem, items, meta, tofu_root
from ..errors import RunError
from ..registry import check
from .registry import metric
from .result import MetricResult

if TYPE_CHECKING:
    import numpy as np

_ROUGE: Any = None


TofuSplit = Literal["forget", "retain", "real_authors", "world_facts"]


@dataclass(frozen=True)
class TofuUtilityConfig:
    """Options every TOFU metric shares, defaulted as TOFU's `config/eval_everything.yaml`:
    answers (and generations, prompt included) cut at `max_length` 200 tokens; the first
    `limit` 300 records of each split (`ds_size`; None: all, as open-unlearning evaluates);
    `budget: batch` gives each generation TOFU's left-padded budget within batches of
    `eval_batch_size` 30, `budget: prompt` 200 − its own prompt length (see metrics/tofu.py)."""

    max_length: int = 200
    limit: int | None = 300
    eval_batch_size: int = 30
    budget: Literal["batch", "prompt"] = "batch"

    def __post_init__(self) -> None:
        check(self.max_length >= 2, "max_length must be at least 2 tokens", "max_length")
        check(self.limit is None or self.limit > 0, "limit must be positive (or null: all "
              "records)", "limit")
        check(self.eval_batch_size >= 1, "eval_batch_size must be at least 1",
              "eval_batch_size")
        check(self.budget in ("batch", "prompt"), "budget must be 'batch' (TOFU's: max_length "
              "counts the left-padded batch) or 'prompt'", "budget")


@dataclass(frozen=True)
class TofuSplitConfig(TofuUtilityConfig):
    """A TOFU number on one split: `forget`, `retain`, `real_authors` or `world_facts`."""

    split: TofuSplit = "forget"

    def __post_init__(self) -> None:
        super().__post_init__()
        check(self.split in ("forget", "retain", "real_authors", "world_facts"),
              "split must be 'forget', 'retain', 'real_authors' or 'world_facts'", "split")


@dataclass(frozen=True)
class TofuForgetQualityConfig(TofuUtilityConfig):
    """Forget quality: the KS test's p-value of the subject's forget truth ratios against
    those of model `reference` (at full precision; TOFU's retain model)."""

    reference: str = "retrain"


def rouge_l_recall(reference: str, prediction: str) -> float:
    """`rouge_score` ROUGE-L recall with the Porter stemmer, as TOFU's `eval_rouge_recall`."""
    global _ROUGE
    if _ROUGE is None:
        from rouge_score import rouge_scorer

        _ROUGE = rouge_scorer.RougeScorer(["rougeL"], use_stemmer=True)
    return float(_ROUGE.score(reference, prediction)["rougeL"].recall)


@dataclass(frozen=True)
class Encoded:
    ids: list[int]  # the scored sequence (EOS appended unless cut)
    n_question: int  # tokens before the answer (masked out of the loss)


def encode_answer(tokenizer: Any, template: Template, question: str, answer: str,
                  max_length: int) -> Encoded:
    ids = list(tokenizer(template.full(question, answer), add_special_tokens=True)
               ["input_ids"])[:max_length]
    if len(ids) < max_length:
        if tokenizer.eos_token_id is None:
            raise RunError("TOFU's answer loss counts an end-of-sequence token, and the "
                           "tokenizer has no eos_token_id")
        ids.append(int(tokenizer.eos_token_id))
    nq = len(tokenizer.tokenize(template.question(question), add_special_tokens=True))
    if nq >= len(ids):
        raise RunError(f"the question {question[:60]!r} fills all of max_length={max_length} "
                       f"tokens, so its answer has no tokens to score: raise max_length")
    return Encoded(ids, nq)


def average_losses(model: Any, tokenizer: Any, encoded: Sequence[Encoded], *,
                   batch_size: int | str) -> np.ndarray:
    """Per sequence, the summed answer NLL divided by the answer's token count (TOFU's
    `gt_loss / num_token_gt`)."""
    import numpy as np

    from .core import score_ids

    scores = score_ids(model, tokenizer, [e.ids for e in encoded], batch_size=batch_size)
    out = []
    for e, s in zip(encoded, scores):
        start = max(e.n_question, 1) - 1  # logprobs[j] is token j + 1
        out.append(-float(np.sum(s.logprobs[start:])) / (len(e.ids) - e.n_question))
    return np.asarray(out, dtype=np.float64)


@dataclass(frozen=True)
class SplitLosses:
    """Average losses of each record's answer, base answer and perturbed answers."""

    answer: np.ndarray
    base: np.ndarray
    perturbed: tuple[np.ndarray, ...]


def _template(root: Any) -> tuple[str, Template]:
    name = meta(root)["template"]
    return name, TEMPLATES[name]


def split_items(corpus: Any, split: str, limit: int | None) -> list[TofuItem]:
    recs = items(tofu_root(corpus), split)
    recs = recs[:limit] if limit else recs
    if not recs:
        raise RunError(f"TOFU split '{split}' holds no records to score")
    return recs


def split_losses(model: Any, tokenizer: Any, corpus: Any, split: str, config: Any, *,
                 batch_size: int | str) -> SplitLosses:
    import numpy as np

    recs = split_items(corpus, split, config.limit)
    _, tpl = _template(tofu_root(corpus))
    pairs: dict[tuple[str, str], int] = {}
    for it in recs:
        for a in (it.answer, it.base, *it.perturbed):
            pairs.setdefault((it.question, a), len(pairs))
    enc = [encode_answer(tokenizer, tpl, q, a, config.max_length) for q, a in pairs]
    loss = average_losses(model, tokenizer, enc, batch_size=batch_size)
    return SplitLosses(
        np.array([loss[pairs[(it.question, it.answer)]] for it in recs]),
        np.array([loss[pairs[(it.question, it.base)]] for it in recs]),
        tuple(np.array([loss[pairs[(it.question, p)]] for p in it.perturbed]) for it in recs))


def probabilities(losses: SplitLosses, split: str) -> np.ndarray:
    import numpy as np

    true = np.exp(-losses.answer)
    if split in ("forget", "retain"):
        return true
    false = np.array([np.exp(-p).sum() for p in losses.perturbed])
    return true / (true + false)


def truth_ratios(losses: SplitLosses, split: str) -> np.ndarray:
    """Per record, TOFU's reported truth-ratio statistic for `split`."""
    import numpy as np

    r = np.array([np.exp(-p).mean() for p in losses.perturbed]) / np.exp(-losses.base)
    if split == "forget":
        return np.minimum(r, 1 / r)
    return np.maximum(0.0, 1 - r)


def forget_truth_ratios(losses: SplitLosses) -> np.ndarray:
    """The truth ratios forget quality compares: exp(mean_i ℓ_perturbed_i − ℓ_base)."""
    import numpy as np

    return np.exp(np.array([p.mean() for p in losses.perturbed]) - losses.base)


def generation_prompts(tokenizer: Any, template_name: str, template: Template,
                       recs: Sequence[TofuItem], max_length: int) -> list[tuple[str, str]]:
    """(prompt, ground truth) per record, as TOFU's `run_generation` derives them from the
    decoded full text."""
    symbol = " [/INST]" if template_name == "llama2" else "Answer: "
    out = []
    for it in recs:
        ids = list(tokenizer(template.full(it.question, it.answer), add_special_tokens=True)
                   ["input_ids"])[:max_length]
        parts = tokenizer.decode(ids, skip_special_tokens=True).split(symbol)
        if len(parts) < 2:
            raise RunError(f"TOFU's generation prompt is the text before {symbol!r}, and the "
                           f"decoded record {it.question[:60]!r} has none: check the "
                           f"template (#forgetNN:phi or :llama2) against the tokenizer")
        prompt = parts[0] + symbol if template_name == "llama2" else parts[0]
        out.append((prompt, parts[1]))
    return out


def budgets(lengths: Sequence[int], config: Any) -> list[int]:
    """New-token budget per row: TOFU's `max_length` counts the left-padded prompt, so with
    `budget: batch` a row gets max_length − the longest prompt of its batch of
    `eval_batch_size` (in data order)."""
    out = []
    for start in range(0, len(lengths), config.eval_batch_size):
        chunk = lengths[start:start + config.eval_batch_size]
        for n in chunk:
            out.append(config.max_length - (max(chunk) if config.budget == "batch" else n))
    if min(out) < 1:
        raise RunError(f"a TOFU prompt is {max(lengths)} tokens, leaving no room to generate "
                       f"within max_length={config.max_length}: raise max_length")
    return out


def rouge_scores(model: Any, tokenizer: Any, corpus: Any, split: str, config: Any, *,
                 batch_size: int | str) -> tuple[np.ndarray, list[dict[str, str]]]:
    import numpy as np

    from .core import generate_greedy_ids

    root = tofu_root(corpus)
    name, tpl = _template(root)
    recs = split_items(corpus, split, config.limit)
    pg = generation_prompts(tokenizer, name, tpl, recs, config.max_length)
    enc = [list(tokenizer(p, add_special_tokens=True)["input_ids"]) for p, _ in pg]
    budget = budgets([len(e) for e in enc], config)
    new = generate_greedy_ids(model, tokenizer, enc, max_new_tokens=max(budget),
                              batch_size=batch_size)
    outs = [tokenizer.decode(n[:b], skip_special_tokens=True) for n, b in zip(new, budget)]
    per = np.array([rouge_l_recall(gt, o) for (_, gt), o in zip(pg, outs)])
    examples = [{"prompt": p, "output": o, "answer": gt} for (p, gt), o in list(zip(pg, outs))[:3]]
    return per, examples


def _result(per: np.ndarray, what: str, details: dict[str, Any]) -> MetricResult:
    import numpy as np

    if not np.all(np.isfinite(per)):
        raise RunError(f"{what}: a per-record value is NaN or infinite (an answer with "
                       f"probability 0 under the model), so the mean has no value")
    return MetricResult(float(per.mean()), len(per), tuple(float(x) for x in per), details)


# each value is the mean of its per-record scores: `confidence:` can resample them
@metric("tofu_prob", TofuSplitConfig, unit="fraction", tags={"data", "statistic:mean"})
def tofu_prob(model: Any, tokenizer: Any, corpus: Any, config: TofuSplitConfig, *,
              batch_size: int | str = 32) -> MetricResult:
    losses = split_losses(model, tokenizer, corpus, config.split, config, batch_size=batch_size)
    return _result(probabilities(losses, config.split), f"tofu_prob[{config.split}]",
                   {"split": config.split,
                    "normalized": config.split not in ("forget", "retain")})


@metric("tofu_rouge", TofuSplitConfig, unit="fraction", tags={"data", "statistic:mean"})
def tofu_rouge(model: Any, tokenizer: Any, corpus: Any, config: TofuSplitConfig, *,
               batch_size: int | str = 32) -> MetricResult:
    per, examples = rouge_scores(model, tokenizer, corpus, config.split, config,
                                 batch_size=batch_size)
    return _result(per, f"tofu_rouge[{config.split}]", {
        "split": config.split, "budget": config.budget, "examples": examples})


@metric("tofu_truth_ratio", TofuSplitConfig, unit="fraction", tags={"data", "statistic:mean"})
def tofu_truth_ratio(model: Any, tokenizer: Any, corpus: Any, config: TofuSplitConfig, *,
                     batch_size: int | str = 32) -> MetricResult:
    losses = split_losses(model, tokenizer, corpus, config.split, config, batch_size=batch_size)
    return _result(truth_ratios(losses, config.split), f"tofu_truth_ratio[{config.split}]",
                   {"split": config.split, "statistic": "min(R, 1/R)" if config.split ==
                    "forget" else "max(0, 1 - R)"})


@metric("tofu_forget_quality", TofuForgetQualityConfig, unit="p-value", tags={"data", "reference"})
def tofu_forget_truth_ratios(model: Any, tokenizer: Any, corpus: Any,
                             config: TofuForgetQualityConfig, *,
                             batch_size: int | str = 32) -> MetricResult:
    """The raw measurement behind forget quality: per forget record, exp(mean ℓ_pert − ℓ_base);
    the engine pairs the subject's with the reference model's (`combine_reference`)."""
    losses = split_losses(model, tokenizer, corpus, "forget", config, batch_size=batch_size)
    return _result(forget_truth_ratios(losses), "tofu forget truth ratios", {})


def forget_quality(subject: Sequence[float], reference: Sequence[float]) -> tuple[float, float]:
    """(KS p-value, KS statistic) of the two truth-ratio samples (scipy's `ks_2samp`)."""
    import numpy as np
    from scipy.stats import ks_2samp

    if not subject or not reference:
        raise RunError("forget quality needs truth ratios of both models; one has none")
    res = ks_2samp(np.asarray(subject), np.asarray(reference))
    return float(res.pvalue), float(res.statistic)


def combine_reference(raw: MetricResult, reference: MetricResult, config: Any) -> MetricResult:
    p, stat = forget_quality(raw.per_sample, reference.per_sample)
    return MetricResult(value=p, n=raw.n, per_sample=raw.per_sample, details={
        "ks_statistic": stat, "reference": config.reference,
        "reference_n": reference.n})


UTILITY_SPLITS = ("retain", "real_authors", "world_facts")


@metric("tofu_model_utility", TofuUtilityConfig, unit="fraction", tags={"data"})
def tofu_model_utility(model: Any, tokenizer: Any, corpus: Any, config: TofuUtilityConfig, *,
                       batch_size: int | str = 32) -> MetricResult:
    from scipy.stats import hmean

    parts: dict[str, float] = {}
    n = 0
    for split in UTILITY_SPLITS:
        losses = split_losses(model, tokenizer, corpus, split, config, batch_size=batch_size)
        rouge, _ = rouge_scores(model, tokenizer, corpus, split, config, batch_size=batch_size)
        for stat, per in (("prob", probabilities(losses, split)),
                          ("rouge", rouge), ("truth_ratio", truth_ratios(losses, split))):
            parts[f"{split}.{stat}"] = float(_result(per, f"tofu {split} {stat}", {}).value)
        n += len(rouge)
    return MetricResult(float(hmean(list(parts.values()))), n, (), {"parts": parts,
                                                                     "budget": config.budget})
