"""Metrics a spec can name (`kind: knowmem`). Torch-free: configs only.

Tags the engine reads: "data" (needs the metric's corpus), "weights" (a weight-space metric:
compares the subject with its reference model under the claim's transform, reads no data),
"reference" (needs a reference model's measurement, e.g. PrivLeak's AUC_retrain).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from ..registry import Component, Registry, check

METRICS = Registry("metric", "unlearnspec.metrics")

Split = Literal["forget", "retain", "holdout"]


@dataclass(frozen=True)
class VerbMemConfig:
    split: Split = "forget"
    max_new_tokens: int = 128
    gt_max_tokens: int = 128

    def __post_init__(self) -> None:
        check(self.max_new_tokens > 0, "max_new_tokens must be positive", "max_new_tokens")


@dataclass(frozen=True)
class KnowMemConfig:
    split: Literal["forget", "retain"] = "forget"
    max_new_tokens: int = 32
    icl: bool = True

    def __post_init__(self) -> None:
        check(self.split in ("forget", "retain"), "split must be 'forget' or 'retain'", "split")
        check(self.max_new_tokens > 0, "max_new_tokens must be positive", "max_new_tokens")


@dataclass(frozen=True)
class PrivLeakConfig:
    """PrivLeak = (AUC - AUC_retrain) / AUC_retrain * 100, Min-K% (k) over forget vs holdout.
    AUC_retrain is measured on model `reference` (at full precision) unless `auc_retrain` is
    given as a number."""

    k: float = 0.4
    reference: str | None = "retrain"
    auc_retrain: float | None = None

    def __post_init__(self) -> None:
        check(0 < self.k <= 1, "k must lie in (0, 1]", "k")
        check(self.auc_retrain is None or 0 < self.auc_retrain <= 1,
              "auc_retrain must lie in (0, 1]", "auc_retrain")


@dataclass(frozen=True)
class MiaConfig:
    """A membership-inference AUC of forget (label 0) vs holdout (label 1)."""

    k: float = 0.4

    def __post_init__(self) -> None:
        check(0 < self.k <= 1, "k must lie in (0, 1]", "k")


@dataclass(frozen=True)
class WeightMetricConfig:
    """Compared against `reference` (default: the subject's `from:` model)."""

    reference: str | None = None


@dataclass(frozen=True)
class SharpnessConfig:
    """Forget-set loss increase under random weight perturbations of relative size `rho`
    (‖ε‖/‖w‖ per decoder tensor), averaged over `draws` seeded draws (see
    unlearnspec/metrics/sharpness.py). `source`: `knowmem` QA answers or privleak
    `documents` of `split`."""

    rho: float = 0.01
    draws: int = 8
    seed: int = 0
    source: Literal["knowmem", "documents"] = "knowmem"
    split: Split = "forget"
    distribution: Literal["gaussian", "uniform"] = "gaussian"

    def __post_init__(self) -> None:
        check(0 <= self.rho <= 1, "rho (the relative perturbation size) must lie in [0, 1]",
              "rho")
        check(1 <= self.draws <= 1000, "draws must be between 1 and 1000", "draws")
        check(self.seed >= 0, "seed must be 0 or more", "seed")
        check(self.source in ("knowmem", "documents"), "source must be 'knowmem' or "
              "'documents'", "source")
        check(self.source == "documents" or self.split in ("forget", "retain"),
              "knowmem has forget and retain QA only", "split")
        check(self.distribution in ("gaussian", "uniform"),
              "distribution must be 'gaussian' or 'uniform'", "distribution")


METRICS.add(Component("verbmem", VerbMemConfig, "unlearnspec.metrics.verbmem:verbmem",
                      tags=frozenset({"data"}), unit="percent"))
METRICS.add(Component("knowmem", KnowMemConfig, "unlearnspec.metrics.knowmem:knowmem",
                      tags=frozenset({"data"}), unit="percent"))
METRICS.add(Component("privleak", PrivLeakConfig, "unlearnspec.metrics.privleak:privleak_auc",
                      tags=frozenset({"data", "reference"}), unit="percent"))
for _kind in ("mia_loss", "mia_zlib", "mia_mink", "mia_minkpp"):
    METRICS.add(Component(_kind, MiaConfig, f"unlearnspec.metrics.mia:{_kind}",
                          tags=frozenset({"data"}), unit="auc"))
METRICS.add(Component("sharpness", SharpnessConfig, "unlearnspec.metrics.sharpness:sharpness",
                      tags=frozenset({"data"}), unit="nats"))
METRICS.add(Component("code_flip_rate", WeightMetricConfig,
                      "unlearnspec.transforms.weightspace:code_flip_rate",
                      tags=frozenset({"weights"}), unit="fraction"))
METRICS.add(Component("update_retention", WeightMetricConfig,
                      "unlearnspec.transforms.weightspace:update_retention",
                      tags=frozenset({"weights"}), unit="ratio"))


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


METRICS.add(Component("rwku", RwkuConfig, "unlearnspec.metrics.rwku:rwku_probe",
                      tags=frozenset({"data"}), unit="percent"))


# --- utility metrics: read a local file (`path:`) in a public dataset's format, not the corpus

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


METRICS.add(Component("fluency", FluencyConfig, "unlearnspec.metrics.utility:fluency",
                      tags=frozenset({"utility"}), unit="entropy"))
METRICS.add(Component("mmlu", MultipleChoiceConfig, "unlearnspec.metrics.utility:mmlu",
                      tags=frozenset({"utility"}), unit="percent"))
METRICS.add(Component("truthfulqa_mc1", TruthfulQAConfig,
                      "unlearnspec.metrics.utility:truthfulqa_mc1",
                      tags=frozenset({"utility"}), unit="percent"))
METRICS.add(Component("triviaqa", TriviaQAConfig, "unlearnspec.metrics.utility:qa_f1_score",
                      tags=frozenset({"utility"}), unit="percent"))


# --- TOFU (Maini et al., 2024): the metric's data must be a TOFU corpus (see data.tofu)

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


for _kind, _cfg, _fn in (("tofu_prob", TofuSplitConfig, "tofu_prob"),
                         ("tofu_rouge", TofuSplitConfig, "tofu_rouge"),
                         ("tofu_truth_ratio", TofuSplitConfig, "tofu_truth_ratio")):
    # each value is the mean of its per-record scores: `confidence:` can resample them
    METRICS.add(Component(_kind, _cfg, f"unlearnspec.metrics.tofu:{_fn}",
                          tags=frozenset({"data", "statistic:mean"}), unit="fraction"))
METRICS.add(Component("tofu_forget_quality", TofuForgetQualityConfig,
                      "unlearnspec.metrics.tofu:tofu_forget_truth_ratios",
                      tags=frozenset({"data", "reference"}), unit="p-value"))
METRICS.add(Component("tofu_model_utility", TofuUtilityConfig,
                      "unlearnspec.metrics.tofu:tofu_model_utility",
                      tags=frozenset({"data"}), unit="fraction"))


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


METRICS.add(Component("wmdp", WmdpConfig, "unlearnspec.metrics.lmeval:wmdp",
                      tags=frozenset({"utility", "statistic:mean"}), unit="percent"))
