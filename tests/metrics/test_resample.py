"""The paired bootstrap behind `confidence:` claims: its statistics reproduce the metrics,
its intervals cover a known difference at about their level, and pairing narrows them when
the two sides move together."""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from unlearnspec.metrics import resample
from unlearnspec.metrics.scores import mia_auc
from unlearnspec.spec.confidence import decide, margins, percentile_interval

SCORES = st.lists(st.integers(-5, 5).map(float), min_size=1, max_size=25)


@settings(deadline=None)  # the first call imports sklearn
@given(forget=SCORES, holdout=SCORES)
def test_auc_of_the_original_sample_is_muses_roc_auc(forget, holdout):
    """Ties included (integer scores collide often): the resampled AUC on the identity
    resample is sklearn's roc_curve AUC, as the metric computes it."""
    idx_f, idx_h = resample.identity_indices((len(forget), len(holdout)))
    got = resample.auc_replicates(forget, holdout, idx_f, idx_h)[0]
    assert got == pytest.approx(mia_auc(forget, holdout), abs=1e-12)


@settings(deadline=None)
@given(forget=SCORES, holdout=SCORES, seed=st.integers(0, 2**32 - 1))
def test_auc_replicates_are_the_auc_of_each_resample(forget, holdout, seed):
    idx_f, idx_h = resample.draw_indices(seed, "docs", (len(forget), len(holdout)), 5)
    got = resample.auc_replicates(forget, holdout, idx_f, idx_h)
    f, h = np.asarray(forget), np.asarray(holdout)
    for b in range(5):
        assert got[b] == pytest.approx(mia_auc(list(f[idx_f[b]]), list(h[idx_h[b]])),
                                       abs=1e-12)


@given(seed=st.integers(0, 2**32 - 1), n=st.integers(1, 50))
def test_indices_are_a_function_of_seed_and_space(seed, n):
    a = resample.draw_indices(seed, "knowmem/forget", (n, 3), 50)
    b = resample.draw_indices(seed, "knowmem/forget", (n, 3), 50)
    assert all(np.array_equal(x, y) for x, y in zip(a, b))
    assert a[0].shape == (50, n) and a[1].shape == (50, 3)
    assert a[0].min() >= 0 and a[0].max() < n
    if n >= 5:  # another space (or seed) draws other indices
        c = resample.draw_indices(seed, "knowmem/retain", (n, 3), 50)
        d = resample.draw_indices(seed + 1, "knowmem/forget", (n, 3), 50)
        assert not np.array_equal(a[0], c[0]) and not np.array_equal(a[0], d[0])


def _difference_interval(x, y, *, paired: bool, seed: int, replicates: int = 2000,
                         confidence: float = 0.95, tag: str = ""):
    """The margin interval of `mean(y) >= mean(x)` as the engine builds it: one space for
    both sides when paired, one each when not."""
    n = len(x)
    (ix,) = resample.draw_indices(seed, "both" + tag if paired else "x" + tag, (n,), replicates)
    (iy,) = (ix,) if paired else resample.draw_indices(seed, "y" + tag, (n,), replicates)
    m = margins(">=", resample.mean_replicates(y, iy), resample.mean_replicates(x, ix))
    return percentile_interval(m, confidence)


@settings(max_examples=6, deadline=None)
@given(delta=st.floats(-3, 3), sd=st.floats(0.5, 3), seed=st.integers(0, 2**31))
def test_paired_interval_covers_a_known_difference(delta, sd, seed):
    """200 synthetic evaluations of 60 paired samples whose true mean difference is `delta`:
    the 95% interval covers it in about 95% of them (percentile bootstrap at n=60 runs a
    little under; 200 trials put 1.5 points of noise on the rate)."""
    rng = np.random.default_rng(seed)
    covered = 0
    for trial in range(200):
        shared = rng.normal(0, sd, 60)  # what both models find hard or easy
        x = shared + rng.normal(0, sd / 2, 60)
        y = shared + delta + rng.normal(0, sd / 2, 60)
        low, high = _difference_interval(x, y, paired=True, seed=seed, replicates=1000,
                                         tag=str(trial))
        covered += low <= delta <= high
    assert 0.88 <= covered / 200 <= 0.99


@settings(max_examples=25, deadline=None)
@given(rho=st.floats(0.5, 0.95), n=st.integers(30, 120), seed=st.integers(0, 2**31))
def test_paired_is_narrower_than_unpaired_for_positively_correlated_sides(rho, n, seed):
    rng = np.random.default_rng(seed)
    cov = [[1.0, rho], [rho, 1.0]]
    x, y = rng.multivariate_normal([0.0, 0.3], cov, size=n).T
    lp, hp = _difference_interval(x, y, paired=True, seed=seed)
    lu, hu = _difference_interval(x, y, paired=False, seed=seed)
    assert hp - lp < hu - lu


@given(values=st.lists(st.floats(-100, 100), min_size=2, max_size=40),
       low_level=st.floats(0.5, 0.9), gap=st.floats(0.01, 0.09))
def test_a_higher_level_gives_a_wider_interval_around_the_same_replicates(values, low_level,
                                                                          gap):
    narrow = percentile_interval(values, low_level)
    wide = percentile_interval(values, low_level + gap)
    assert wide[0] <= narrow[0] <= narrow[1] <= wide[1]


@given(x=st.lists(st.floats(0, 100), min_size=5, max_size=40), shift=st.floats(-50, 50),
       seed=st.integers(0, 2**31))
def test_shifting_one_side_shifts_the_interval(x, shift, seed):
    """`a >= b + c`: adding c moves every replicate's margin by exactly -c."""
    (idx,) = resample.draw_indices(seed, "s", (len(x),), 500)
    reps = resample.mean_replicates(x, idx)
    base = percentile_interval(margins(">=", reps, reps * 0.5), 0.9)
    moved = percentile_interval(margins(">=", reps, reps * 0.5 + shift), 0.9)
    assert moved[0] == pytest.approx(base[0] - shift, abs=1e-9)
    assert moved[1] == pytest.approx(base[1] - shift, abs=1e-9)


@pytest.mark.parametrize("op, low, high, outcome", [
    ("<=", 0.0, 3.0, "pass"), ("<", 0.0, 3.0, "inconclusive"), ("<", 0.1, 3.0, "pass"),
    (">=", -1.0, 2.0, "inconclusive"), (">=", -3.0, -0.5, "fail"), (">", -3.0, 0.0, "fail"),
    ("<=", -2.0, 0.0, "inconclusive"), ("==", -1e-12, 0.0, "pass"), ("==", -1.0, 0.0,
                                                                        "inconclusive"),
    ("==", -2.0, -1.0, "fail"),
])
def test_decide_on_the_whole_interval(op, low, high, outcome):
    assert decide(op, low, high, 1e-9) == outcome


def test_seeded_replicates_are_bit_identical_across_calls():
    x = np.linspace(0, 100, 60)
    a = _difference_interval(x, x[::-1], paired=True, seed=7)
    b = _difference_interval(x, x[::-1], paired=True, seed=7)
    assert a == b


def test_statistics_of_builtin_kinds():
    assert resample.statistic("knowmem") == "mean"
    assert resample.statistic("privleak") == "privleak"
    assert resample.statistic("mia_mink") == "auc"
    assert resample.statistic("update_retention") is None
    assert resample.statistic("sharpness") is None  # its per_sample are draws, not samples
    assert resample.statistic("my_plugin", frozenset({"statistic:mean"})) == "mean"
