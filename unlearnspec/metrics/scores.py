"""Pure scoring functions behind every text metric (torch-free; numpy, rouge_score and sklearn
are imported by the functions that use them, so registering a metric imports none of them).

Each one pins a detail that decides whether our numbers match MUSE's and the reference
paper's: ROUGE-L F1 *without* stemming, the stop strings KnowMem cuts at, Min-K%'s
`int(n·k)` count, and the AUC orientation (forget labelled 0, holdout 1, decision `-score`).
"""
from __future__ import annotations

import math
import re
import string
import zlib
from collections import Counter
from typing import Iterable, Mapping, Sequence

from ..errors import RunError
from .result import MetricResult

KNOWMEM_STOPS = ("\n\n", "\nQuestion", "Question:")
"""MUSE cuts a KnowMem answer before the first of these (applied in this order)."""


def cut_at_stops(text: str, stops: Iterable[str]) -> str:
    """The part of `text` before any of `stops`. Each stop cuts what the previous one left,
    so the result is the prefix before the earliest occurrence of any stop."""
    for stop in stops:
        text = text.split(stop)[0]
    return text


_ROUGE = None


def rouge_l_f1(reference: str, prediction: str) -> float:
    """`rouge_score` ROUGE-L F1 in [0, 1], `use_stemmer=False`, as MUSE scores it.

    rouge_score lowercases and keeps only [a-z0-9] tokens, so an output of only punctuation
    or an empty string scores 0 against any reference."""
    global _ROUGE
    if _ROUGE is None:
        from rouge_score import rouge_scorer

        _ROUGE = rouge_scorer.RougeScorer(["rougeL"], use_stemmer=False)
    return float(_ROUGE.score(reference, prediction)["rougeL"].fmeasure)


def mink_count(n: int, k: float) -> int:
    """How many of n token log-probs Min-K% averages: `int(n·k)`, at least 1 (MUSE's
    `int(n·k)` is 0 for short texts, where its mean would be NaN)."""
    if n <= 0:
        raise ValueError("Min-K% needs at least one scored token")
    return max(1, int(n * k))


def mink_score(logprobs: Sequence[float], k: float) -> float:
    """Min-K% Prob: minus the mean of the lowest `int(n·k)` token log-probs. Higher means the
    text is *less* likely under the model (more like a non-member)."""
    import numpy as np

    lp = np.sort(np.asarray(logprobs, dtype=np.float64))
    return float(-lp[: mink_count(len(lp), k)].mean())


def minkpp_score(logprobs: Sequence[float], mu: Sequence[float], sigma: Sequence[float],
                 k: float) -> float:
    """Min-K%++: tokens standardized by the model's own next-token distribution,
    z = (log p(x_t) − E[log p]) / std[log p], then minus the mean of the lowest k%. A token
    whose distribution has zero spread gives an undefined z; the score is NaN then."""
    import numpy as np

    lp, m, s = (np.asarray(a, dtype=np.float64) for a in (logprobs, mu, sigma))
    with np.errstate(divide="ignore", invalid="ignore"):
        z = np.sort((lp - m) / s)
    return float(-z[: mink_count(len(z), k)].mean())


def loss_score(logprobs: Sequence[float]) -> float:
    """LOSS attack: the mean token negative log-likelihood."""
    import numpy as np

    lp = np.asarray(logprobs, dtype=np.float64)
    if lp.size == 0:
        raise ValueError("LOSS needs at least one scored token")
    return float(-lp.mean())


def zlib_score(logprobs: Sequence[float], text: str) -> float:
    """zlib attack (Carlini et al.): the mean NLL divided by the zlib-compressed length of the
    text in bytes, so texts that are merely repetitive do not look memorized."""
    return loss_score(logprobs) / len(zlib.compress(text.encode("utf-8")))


def mia_auc(forget: Sequence[float], holdout: Sequence[float]) -> float:
    """ROC AUC of non-membership scores (higher = less likely seen), computed as MUSE does:
    `roc_curve(y, -score)` with forget labelled 0 and holdout labelled 1. A model that still
    remembers the forget set scores ≈ 0, one that never saw it ≈ 0.5, an over-unlearned one
    ≈ 1."""
    import numpy as np
    from sklearn.metrics import auc, roc_curve

    if not forget or not holdout:
        raise RunError(f"an AUC needs forget and holdout documents; got {len(forget)} forget "
                       f"and {len(holdout)} holdout")
    scores = np.asarray(list(forget) + list(holdout), dtype=np.float64)
    if not np.all(np.isfinite(scores)):
        raise RunError("a membership score is NaN or infinite, so the AUC cannot be computed")
    y = np.array([0] * len(forget) + [1] * len(holdout))
    fpr, tpr, _ = roc_curve(y, -scores)
    return float(auc(fpr, tpr))


def privleak_percent(auc_value: float, auc_retrain: float) -> float:
    """(AUC − AUC_retrain) / AUC_retrain × 100: ≈ 0 is good, ≈ −100 means it remembers."""
    if not (math.isfinite(auc_value) and math.isfinite(auc_retrain)) or auc_retrain <= 0:
        raise RunError(f"PrivLeak needs finite AUCs and AUC_retrain > 0; got AUC={auc_value}, "
                       f"AUC_retrain={auc_retrain}. An AUC_retrain of 0 means the retrain "
                       f"model itself separates forget from holdout perfectly: check its data.")
    return (auc_value - auc_retrain) / auc_retrain * 100.0


# --- utility -------------------------------------------------------------------------------

_SENTENCE_END = re.compile(r"(?<=[.!?])\s+")


def word_tokens(text: str) -> list[str]:
    """Treebank word tokens, sentence by sentence (NLTK's `word_tokenize` needs the punkt
    model, a download; a regex sentence split stands in for it)."""
    from nltk.tokenize import NLTKWordTokenizer

    tok = NLTKWordTokenizer()
    return [t for sent in _SENTENCE_END.split(text) if sent for t in tok.tokenize(sent)]


def ngram_entropy(text: str, ns: Sequence[int] = (2, 3),
                  weights: Sequence[float] = (2 / 3, 4 / 3)) -> float:
    """Weighted n-gram entropy in bits (Meng et al.'s fluency score): the mean over n of
    weight_n × H(n-gram distribution). A text too short for any n-gram contributes 0 for
    that n, so a one-word generation scores 0 (as degenerate text should)."""
    import numpy as np

    tokens = word_tokens(text)
    values = []
    for n, w in zip(ns, weights):
        counts = Counter(tuple(tokens[i:i + n]) for i in range(len(tokens) - n + 1))
        total = sum(counts.values())
        p = np.array([c / total for c in counts.values()]) if total else np.array([])
        values.append(w * float(-(p * np.log2(p)).sum()) if p.size else 0.0)
    return float(np.mean(values))


def normalize_answer(text: str) -> str:
    """SQuAD/TriviaQA normalization: lowercase, drop punctuation and articles, squash
    whitespace."""
    text = "".join(ch for ch in text.lower() if ch not in set(string.punctuation))
    text = re.sub(r"\b(a|an|the)\b", " ", text)
    return " ".join(text.split())


def qa_f1(prediction: str, answers: Iterable[str]) -> float:
    """Best token F1 of `prediction` against any accepted answer (in [0, 1]). If either side
    normalizes to nothing, F1 is 1 when both do and 0 otherwise (SQuAD v2's rule)."""
    pred = normalize_answer(prediction).split()
    best = 0.0
    for answer in answers:
        gold = normalize_answer(answer).split()
        if not pred or not gold:
            best = max(best, float(pred == gold))
            continue
        common = sum((Counter(pred) & Counter(gold)).values())
        if common:
            p, r = common / len(pred), common / len(gold)
            best = max(best, 2 * p * r / (p + r))
    return best


# --- results -------------------------------------------------------------------------------

def mean_result(per_sample: Sequence[float], *, what: str,
                details: Mapping[str, object] | None = None) -> MetricResult:
    """A MetricResult averaging `per_sample`. Zero samples is an error, never a value."""
    import numpy as np

    if not per_sample:
        raise RunError(f"{what}: no samples to score, so the metric has no value; "
                       f"check that the data file is not empty")
    values = tuple(float(x) for x in per_sample)
    return MetricResult(value=float(np.mean(values)), n=len(values), per_sample=values,
                        details=dict(details or {}))


def require_samples(items: Sequence[object], where: object) -> None:
    """RunError naming the file when a data file holds no records."""
    if not items:
        raise RunError(f"{where} holds no records: a metric over zero samples has no value. "
                       f"Add records to the file or drop the metric from the spec.")


def require_some_output(outputs: Sequence[str], *, what: str, where: object,
                        raw: Sequence[str] | None = None) -> None:
    """RunError when *every* scored output is empty (or only whitespace).

    A model that ends every answer at once scores 0 on every sample, which reads as "forgot
    everything" and would pass a forgetting claim. It is almost always a broken checkpoint
    or an EOS id that does not match the tokenizer, so it is an error with context; a few
    empty answers among others are ordinary model behaviour and are scored as 0. `outputs`
    are what is scored (after any cut at stop strings); `raw`, the generations before the
    cut, only shapes the message: a model answering every question with "Question: ..." is
    cut to nothing, and is as empty as one that generates nothing."""
    if not outputs or any(o.strip() for o in outputs):
        return
    if raw is not None and any(r.strip() for r in raw):
        sample = next(r for r in raw if r.strip()).strip()[:60]
        raise RunError(f"{what}: every one of the {len(outputs)} answers to the prompts in "
                       f"{where} is empty once cut at the stop strings (the model generated "
                       f"text, e.g. {sample!r}, but nothing before a stop string), so a score "
                       f"of 0 would be a silent, meaningless pass. The model does not answer "
                       f"in this prompt format; check the checkpoint and its tokenizer.")
    raise RunError(f"{what}: the model generated no text for any of the {len(outputs)} "
                   f"prompts in {where} (it emits end-of-sequence or only whitespace "
                   f"first), so a score of 0 would be a silent, meaningless pass. Check "
                   f"the checkpoint and that its eos_token_id matches its tokenizer.")
