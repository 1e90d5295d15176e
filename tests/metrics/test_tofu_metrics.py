"""TOFU's metrics (metrics/tofu.py) against the numbers TOFU's own evaluation code gives.

REFERENCE_* were produced by running locuslab/tofu's `evaluate_util.get_all_evals`,
`utils.get_model_utility` and `utils.get_forget_quality` (commit bdc209e) unchanged, with
`model_family: phi`, `ds_size: 300`, `generation.max_length` as named, eval `batch_size: 4`,
in float32 on the CPU, on the miniature of tests/metrics/tofu_miniature.py with
`make_tofu_model(seed=0)` as the model evaluated and `make_tofu_model(seed=1)` as the retain
model (datasets.load_dataset pointed at the miniature's files; nothing else changed).
REFERENCE_LLAMA2 is the same run with `model_family: llama2-7b` on the BPE-tokenized model.
"""
from __future__ import annotations

import importlib.util
import math
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from unlearnspec.errors import RunError
from unlearnspec.metrics.tofu import TofuForgetQualityConfig, TofuSplitConfig, TofuUtilityConfig

ROOT = Path(__file__).resolve().parents[2]

# TOFU's numbers for the seed-0 model (forget quality against the seed-1 model); its code gives
# exactly these at max_length 200 (the default) and 64: the random model's generations reach
# their ROUGE plateau within 50 tokens
REFERENCE = {
    "forget.prob": 0.01584387274740429, "forget.rouge": 0.2222222222222222,
    "forget.truth_ratio": 0.9745156779318868,
    "retain.prob": 0.015337217285799993, "retain.rouge": 0.25925925925925924,
    "retain.truth_ratio": 0.007652618706810135,
    "real_authors.prob": 0.25027677788245867, "real_authors.rouge": 0.5,
    "real_authors.truth_ratio": 0.021871377116332746,
    "world_facts.prob": 0.2503099605664673, "world_facts.rouge": 0.2,
    "world_facts.truth_ratio": 0.017499442989881375,
    "model_utility": 0.02833847742211588, "forget_quality": 0.9307359307359307,
}
REFERENCE_FORGET_ROUGE = (1 / 3, 0.0, 1 / 3, 0.0, 1 / 3, 1 / 3)  # per record, max_length 200


def _mini():
    spec = importlib.util.spec_from_file_location("_tofu_mini_metrics",
                                                  ROOT / "tests" / "metrics" / "tofu_miniature.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)  # type: ignore[union-attr]
    return module


@pytest.fixture(scope="module")
def tofu_setup(tmp_path_factory: pytest.TempPathFactory):
    from unlearnspec.data import load_corpus
    from unlearnspec.models.loading import load_causal_lm

    tmp = tmp_path_factory.mktemp("tofu")
    mini = _mini()
    corpus = load_corpus(f"{mini.write_tofu(tmp / 'tofu')}#forget10", tmp / "cache")
    model, tok = load_causal_lm(mini.make_tofu_model(tmp / "m0", seed=0), device="cpu")
    retain, rtok = load_causal_lm(mini.make_tofu_model(tmp / "m1", seed=1), device="cpu")
    return corpus, (model, tok), (retain, rtok)


def _close(ours: float, ref: float) -> bool:
    # losses are float32 sums: a truth ratio near 1 - R ≈ 0 keeps ~1e-7 of absolute noise
    return math.isclose(ours, ref, rel_tol=1e-4, abs_tol=1e-6)


@pytest.mark.slow
def test_loss_based_numbers_match_tofus_code(tofu_setup) -> None:
    from unlearnspec.metrics import tofu

    corpus, (model, tok), (retain, rtok) = tofu_setup
    ours = {}
    for split in ("forget", "retain", "real_authors", "world_facts"):
        cfg = TofuSplitConfig(split=split, eval_batch_size=4)
        ours[f"{split}.prob"] = tofu.tofu_prob(model, tok, corpus, cfg).value
        ours[f"{split}.truth_ratio"] = tofu.tofu_truth_ratio(model, tok, corpus, cfg).value
    fq = TofuForgetQualityConfig()
    ours["forget_quality"] = tofu.combine_reference(
        tofu.tofu_forget_truth_ratios(model, tok, corpus, fq),
        tofu.tofu_forget_truth_ratios(retain, rtok, corpus, fq), fq).value
    bad = {k: (ours[k], v) for k, v in REFERENCE.items() if k in ours and not _close(ours[k], v)}
    assert not bad


@pytest.mark.slow
def test_rouge_matches_tofus_code_at_its_default_length(tofu_setup) -> None:
    from unlearnspec.metrics import tofu

    corpus, (model, tok), _ = tofu_setup
    result = tofu.tofu_rouge(model, tok, corpus, TofuSplitConfig(split="forget",
                                                                 eval_batch_size=4))
    assert result.per_sample == pytest.approx(REFERENCE_FORGET_ROUGE, abs=1e-12)
    # TOFU's prompt ends before "Answer: " (phi's split symbol), and its truth is the answer
    assert result.details["examples"][0]["prompt"].startswith("Question: ")
    assert "Answer:" not in result.details["examples"][0]["prompt"]


@pytest.mark.slow
def test_every_number_matches_tofus_code_at_max_length_64(tofu_setup) -> None:
    from unlearnspec.metrics import tofu

    corpus, (model, tok), (retain, rtok) = tofu_setup
    ours = {}
    for split in ("forget", "retain", "real_authors", "world_facts"):
        cfg = TofuSplitConfig(split=split, eval_batch_size=4, max_length=64)
        for stat, fn in (("prob", tofu.tofu_prob), ("rouge", tofu.tofu_rouge),
                         ("truth_ratio", tofu.tofu_truth_ratio)):
            ours[f"{split}.{stat}"] = fn(model, tok, corpus, cfg).value
    util = tofu.tofu_model_utility(model, tok, corpus,
                                   TofuUtilityConfig(eval_batch_size=4, max_length=64))
    ours["model_utility"] = util.value
    assert util.details["parts"]["retain.rouge"] == ours["retain.rouge"]
    fq = TofuForgetQualityConfig(max_length=64)
    ours["forget_quality"] = tofu.combine_reference(
        tofu.tofu_forget_truth_ratios(model, tok, corpus, fq),
        tofu.tofu_forget_truth_ratios(retain, rtok, corpus, fq), fq).value
    bad = {k: (ours[k], v) for k, v in REFERENCE.items() if not _close(ours[k], v)}
    assert not bad


# ---------------------------------------------------------------- the pure parts

def _losses(answer, base, perturbed):
    from unlearnspec.metrics.tofu import SplitLosses

    return SplitLosses(np.array(answer, float), np.array(base, float),
                       tuple(np.array(p, float) for p in perturbed))


@settings(deadline=None)
@given(st.lists(st.floats(0.01, 8.0), min_size=1, max_size=5), st.floats(0.01, 8.0))
def test_forget_truth_ratio_is_symmetric_and_at_most_one(perturbed, base) -> None:
    from unlearnspec.metrics.tofu import truth_ratios

    tr = truth_ratios(_losses([1.0], [base], [perturbed]), "forget")[0]
    assert 0 < tr <= 1 + 1e-12
    # swapping which side is likelier gives the same forget statistic (min(R, 1/R))
    r = np.mean(np.exp(-np.array(perturbed))) / np.exp(-base)
    assert tr == pytest.approx(min(r, 1 / r))


def test_retain_truth_ratio_rewards_preferring_the_true_answer() -> None:
    from unlearnspec.metrics.tofu import truth_ratios

    # the paraphrase far likelier than the perturbed answers: 1 - R close to 1
    good = truth_ratios(_losses([1.0], [0.1], [[5.0, 6.0]]), "retain")[0]
    bad = truth_ratios(_losses([1.0], [5.0], [[0.1, 0.2]]), "retain")[0]
    assert good > 0.98 and bad == 0.0  # max(0, 1 - R) clips at 0


def test_probability_is_normalized_only_on_real_authors_and_world_facts() -> None:
    from unlearnspec.metrics.tofu import probabilities

    losses = _losses([np.log(2)], [0.0], [[np.log(2), np.log(4)]])
    assert probabilities(losses, "forget")[0] == pytest.approx(0.5)
    assert probabilities(losses, "world_facts")[0] == pytest.approx(0.5 / (0.5 + 0.5 + 0.25))


def test_forget_quality_is_one_for_the_same_distribution_and_small_for_disjoint() -> None:
    from unlearnspec.metrics.tofu import forget_quality

    same = [0.3, 0.5, 0.7, 0.9]
    assert forget_quality(same, same)[0] == pytest.approx(1.0)
    p, stat = forget_quality([0.1, 0.11, 0.12, 0.13, 0.14], [0.9, 0.91, 0.92, 0.93, 0.94])
    assert stat == 1.0 and p < 0.01
    with pytest.raises(RunError, match="needs truth ratios of both"):
        forget_quality([], same)


def test_generation_budget_counts_the_padded_batch_as_tofu_does() -> None:
    from unlearnspec.metrics.tofu import budgets

    lengths = [10, 30, 12, 5, 7]
    batch = TofuSplitConfig(eval_batch_size=2, max_length=40)
    assert budgets(lengths, batch) == [10, 10, 28, 28, 33]
    prompt = TofuSplitConfig(eval_batch_size=2, max_length=40, budget="prompt")
    assert budgets(lengths, prompt) == [30, 10, 28, 35, 33]
    with pytest.raises(RunError, match="raise max_length"):
        budgets([40, 3], batch)


def test_answer_loss_masks_the_question_and_counts_eos(tofu_setup) -> None:
    from unlearnspec.data.tofu import TEMPLATES
    from unlearnspec.metrics.tofu import encode_answer

    _, (_, tok), _ = tofu_setup
    enc = encode_answer(tok, TEMPLATES["phi"], "where does alpha live ?", "the north city .",
                        200)
    # <s> Question: where does alpha live ? | Answer: the north city . </s>
    assert enc.n_question == 7
    assert tok.convert_ids_to_tokens(enc.ids[enc.n_question:]) == \
        ["Answer:", "the", "north", "city", ".", "</s>"]
    cut = encode_answer(tok, TEMPLATES["phi"], "where does alpha live ?", "the north city .", 8)
    assert len(cut.ids) == 8 and cut.ids[-1] != tok.eos_token_id  # cut: no EOS, as TOFU
    with pytest.raises(RunError, match="raise max_length"):
        encode_answer(tok, TEMPLATES["phi"], "where does alpha live ?", "the north", 6)


def test_a_non_tofu_corpus_is_refused(tmp_path: Path) -> None:
    from unlearnspec.metrics.tofu import split_items

    with pytest.raises(RunError, match="not a TOFU corpus"):
        split_items(tmp_path, "forget", 300)


def test_which_tofu_numbers_a_confidence_interval_can_resample() -> None:
    from unlearnspec.metrics.registry import METRICS
    from unlearnspec.metrics.resample import statistic

    def stat(kind: str) -> str | None:
        return statistic(kind, METRICS.get(kind).tags)

    assert [stat(k) for k in ("tofu_prob", "tofu_rouge", "tofu_truth_ratio", "wmdp")] == \
        ["mean"] * 4
    # a KS p-value and a harmonic mean of means are no mean over records
    assert stat("tofu_forget_quality") is None and stat("tofu_model_utility") is None


# TOFU's code with `model_family: llama2-7b` (split at " [/INST]", re-appended to the prompt),
# max_length 64, eval batch_size 4, on make_tofu_bpe_model(seed=0) (forget quality against
# seed 1). Model utility is 0 as TOFU's hmean makes it: the random model's ROUGE on real
# authors and world facts is 0.
REFERENCE_LLAMA2 = {
    "forget.prob": 0.0032362970761267537, "forget.rouge": 0.08333333333333333,
    "forget.truth_ratio": 0.9882936375146004,
    "retain.prob": 0.003254159787901454, "retain.rouge": 0.09259259259259259,
    "retain.truth_ratio": 0.008239955470730444,
    "real_authors.prob": 0.250432068502668, "real_authors.rouge": 0.0,
    "real_authors.truth_ratio": 0.015046054785919,
    "world_facts.prob": 0.2510629120809214, "world_facts.rouge": 0.0,
    "world_facts.truth_ratio": 0.031697043116794575,
    "model_utility": 0.0, "forget_quality": 0.474025974025974,
}
REFERENCE_LLAMA2_FORGET_ROUGE = (1 / 6, 0.0, 1 / 6, 0.0, 1 / 6, 0.0)


@pytest.mark.slow
def test_llama2_template_matches_tofus_code(tmp_path: Path) -> None:
    from unlearnspec.data import load_corpus
    from unlearnspec.metrics import tofu
    from unlearnspec.models.loading import load_causal_lm

    mini = _mini()
    corpus = load_corpus(f"{mini.write_tofu(tmp_path / 'tofu')}#forget10:llama2",
                         tmp_path / "cache")
    model, tok = load_causal_lm(mini.make_tofu_bpe_model(tmp_path / "b0", seed=0),
                                device="cpu")
    retain, rtok = load_causal_lm(mini.make_tofu_bpe_model(tmp_path / "b1", seed=1),
                                  device="cpu")
    ours = {}
    for split in ("forget", "retain", "real_authors", "world_facts"):
        cfg = TofuSplitConfig(split=split, eval_batch_size=4, max_length=64)
        for stat, fn in (("prob", tofu.tofu_prob), ("rouge", tofu.tofu_rouge),
                         ("truth_ratio", tofu.tofu_truth_ratio)):
            result = fn(model, tok, corpus, cfg)
            ours[f"{split}.{stat}"] = result.value
            if (split, stat) == ("forget", "rouge"):
                assert result.per_sample == pytest.approx(REFERENCE_LLAMA2_FORGET_ROUGE,
                                                          abs=1e-12)
                assert result.details["examples"][0]["prompt"].endswith("? [/INST]")
    ours["model_utility"] = tofu.tofu_model_utility(
        model, tok, corpus, TofuUtilityConfig(eval_batch_size=4, max_length=64)).value
    fq = TofuForgetQualityConfig(max_length=64)
    ours["forget_quality"] = tofu.combine_reference(
        tofu.tofu_forget_truth_ratios(model, tok, corpus, fq),
        tofu.tofu_forget_truth_ratios(retain, rtok, corpus, fq), fq).value
    bad = {k: (ours[k], v) for k, v in REFERENCE_LLAMA2.items() if not _close(ours[k], v)}
    assert not bad
