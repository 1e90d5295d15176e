"""`confidence:` in a spec: where it applies, how it is switched off, and the claims it
refuses (a term with no evaluation samples to resample), each at the claim's line."""
from __future__ import annotations

import pytest

from spec_helpers import TINY
from unlearnspec.errors import SpecError
from unlearnspec.spec import load_spec
from unlearnspec.spec.evaluate import Verdict
from unlearnspec.spec.confidence import Interval

UTILITY = """  - name: utility-kept
    subjects: [ga_klr]
    assert: knowmem_retain under rtn4 >= 0.9 * knowmem_retain(target)
"""
GAMMA = """  - name: gamma-small
    subjects: [ga_klr]
    assert: gamma @ rtn4 < 0.2
"""


def claims(write_spec, text: str) -> dict:
    return {c.name: c for c in load_spec(write_spec(text)).claims}


def test_a_claim_sets_its_own_level(write_spec) -> None:
    text = TINY.replace(UTILITY, UTILITY + "    confidence: 0.9\n")
    got = claims(write_spec, text)
    assert got["utility-kept"].confidence == 0.9
    assert got["no-recovery-rtn4"].confidence is None  # the others: point estimates


def test_the_spec_wide_level_applies_unless_a_claim_switches_it_off(write_spec) -> None:
    text = TINY.replace("seed: 0\n", "seed: 0\nsettings: {confidence: 0.95}\n") \
        .replace(GAMMA, GAMMA + "    confidence: false\n")
    got = claims(write_spec, text)
    assert got["utility-kept"].confidence == 0.95
    assert got["no-recovery-rtn4"].confidence == 0.95
    assert got["gamma-small"].confidence is None


def test_a_weight_metric_under_confidence_is_an_error_naming_the_claim(write_spec) -> None:
    text = TINY.replace(GAMMA, GAMMA + "    confidence: 0.95\n")
    with pytest.raises(SpecError) as info:
        load_spec(write_spec(text))
    message = str(info.value)
    assert "claim 'gamma-small'" in message and "95% bootstrap interval" in message
    assert "'gamma' (update_retention) has no evaluation samples" in message
    assert "remove 'confidence:'" in message
    assert info.value.loc.line == TINY.splitlines().index("    assert: gamma @ rtn4 < 0.2") + 2


def test_spec_wide_confidence_over_a_weight_metric_says_how_to_opt_out(write_spec) -> None:
    text = TINY.replace("seed: 0\n", "seed: 0\nsettings: {confidence: 0.95}\n")
    with pytest.raises(SpecError, match="(?s)gamma-small.*write confidence: false on this claim"):
        load_spec(write_spec(text))


@pytest.mark.parametrize("value", ["1", "0.3", "95", "yes please", "1.0"])
def test_a_level_outside_half_to_one_is_refused(write_spec, value) -> None:
    text = TINY.replace(UTILITY, UTILITY + f"    confidence: {value}\n")
    with pytest.raises(SpecError, match=r"'confidence' must be a level in \[0.5, 1\)"):
        load_spec(write_spec(text))


def test_bootstrap_samples_has_a_floor(write_spec) -> None:
    text = TINY.replace("seed: 0\n", "seed: 0\nsettings: {bootstrap_samples: 10}\n")
    with pytest.raises(SpecError, match="bootstrap_samples' must be at least 100"):
        load_spec(write_spec(text))


def test_an_inconclusive_verdict_explains_its_interval() -> None:
    v = Verdict(passed=False, lhs=74.9, rhs=76.0, margin=-1.1, terms=(), op=">=",
                lhs_text="knowmem_retain[ga_gdr]", rhs_text="0.8 * knowmem_retain[target]",
                interval=Interval(-4.25, 2.5, 0.95, 2000, "60 samples of knowmem_retain"),
                decided="inconclusive")
    assert v.outcome == "inconclusive"
    first, second = v.explain().splitlines()[:2]
    assert first == ("knowmem_retain[ga_gdr] = 74.9  vs  0.8 * knowmem_retain[target] = 76.0"
                     "  (margin -1.1, 95% interval [-4.2, 2.5])")
    assert "INCONCLUSIVE" in second and \
        "2000 bootstrap resamples of 60 samples of knowmem_retain" in second


# ---------------------------------------------------------------- seeds

GA = "  ga_klr: {unlearn: ga_klr, from: target, lr: 2.0e-5, epochs: 15}\n"
SEEDED = TINY.replace(GA, "  ga_klr: {unlearn: ga_klr, from: target, lr: 2.0e-5, epochs: 15, "
                          "seeds: [0, 1, 2]}\n")


def test_seeds_make_one_model_per_seed(write_spec) -> None:
    spec = load_spec(write_spec(SEEDED))
    group = spec.models["ga_klr"]
    assert group.seeds == (0, 1, 2)
    children = [spec.models[f"ga_klr.seed{s}"] for s in (0, 1, 2)]
    assert [c.seed_of for c in children] == ["ga_klr"] * 3
    # the spec's own seed (0) is left implicit, so ga_klr.seed0 is the same artifact (same
    # cache key) as the unseeded ga_klr of this spec
    assert [c.config.seed for c in children] == [None, 1, 2]
    unseeded = load_spec(write_spec(TINY)).models["ga_klr"]
    assert children[0].config == unseeded.config
    assert all(c.method == "ga_klr" and c.from_ == "target" for c in children)


@pytest.mark.parametrize("change, message", [
    (lambda t: t.replace("seeds: [0, 1, 2]", "seeds: [0, 0]"), "lists a seed twice"),
    (lambda t: t.replace("seeds: [0, 1, 2]", "seeds: []"), "non-empty list of integers"),
    (lambda t: t.replace("seeds: [0, 1, 2]", "seeds: [0, 1, 2], seed: 4"),
     "has both 'seed' and 'seeds'"),
    (lambda t: t.replace("  npo_sure: {unlearn: npo_klr, from: target,",
                         "  npo_sure: {unlearn: npo_klr, from: ga_klr,"),
     "unlearned from 'ga_klr', which is a group of 3 seeds.*from: ga_klr.seed0"),
    (lambda t: t.replace(UTILITY, UTILITY.replace("subjects: [ga_klr]",
                                                  "subjects: [npo_sure]").replace(
        "knowmem_retain(target)", "knowmem_retain(ga_klr)")),
     "names 'ga_klr', a group of seeds.*'npo_sure' does not have the same seeds"),
    (lambda t: t.replace(UTILITY, UTILITY + "    aggregate: mode\n"),
     "'aggregate' must be one of every, mean, median"),
    (lambda t: t.replace(UTILITY, UTILITY.replace("[ga_klr]", "[npo_sure]") +
                         "    aggregate: mean\n"), "none of its subjects has seeds"),
    (lambda t: t.replace("  retrain: {builtin: tiny/retrain}\n",
                         "  retrain: {builtin: tiny/retrain}\n  ga_klr.seed1: "
                         "{builtin: tiny/retrain}\n"), "taken by a seed of model 'ga_klr'"),
])
def test_seed_mistakes(write_spec, change, message) -> None:
    with pytest.raises(SpecError, match="(?s)" + message):
        load_spec(write_spec(change(SEEDED)))


def test_a_claim_names_its_aggregate(write_spec) -> None:
    got = claims(write_spec, SEEDED.replace(UTILITY, UTILITY + "    aggregate: mean\n"))
    assert got["utility-kept"].aggregate == "mean"
    assert got["no-recovery-rtn4"].aggregate == "every"
