"""The bootstrap's refusals: a cached value that is not the statistic of its per-sample
scores, and two measurements of one sample space with different sizes. `_RunStandIn` gives
Bootstrap only the spec settings it reads; everything under test is the real code."""
from __future__ import annotations

from types import SimpleNamespace

import pytest

from unlearnspec.engine.confidence import Bootstrap
from unlearnspec.engine.measurement import Measurement
from unlearnspec.errors import RunError
from unlearnspec.metrics.result import MetricResult
from unlearnspec.metrics.scores import mia_auc


def _bootstrap() -> Bootstrap:
    run = SimpleNamespace(spec=SimpleNamespace(seed=0, settings=SimpleNamespace(
        bootstrap_samples=200)))
    return Bootstrap(run)  # type: ignore[arg-type]


M = Measurement("mia", "ga_klr", "noise4")


def test_an_auc_that_is_not_the_auc_of_its_scores_is_refused() -> None:
    """Matched-noise draws average their AUCs but keep the mean per-document scores: the
    AUC of those scores is another number, so resampling them would centre the interval on
    it. The bootstrap says so instead."""
    forget, holdout = [1.0, 2.0, 3.0], [2.5, 0.5, 1.5]
    result = MetricResult(value=0.25, n=6, per_sample=tuple(forget + holdout),
                          details={"n_forget": 3, "n_holdout": 3})
    assert mia_auc(forget, holdout) != pytest.approx(0.25)
    with pytest.raises(RunError, match=r"mia\[ga_klr @ noise4\] = 0.25 is not the auc of its "
                                       r"per-sample scores"):
        _bootstrap()._replicates("auc", M, result, "space", result.value)


def test_the_same_value_resamples() -> None:
    forget, holdout = [1.0, 2.0, 3.0], [2.5, 0.5, 1.5]
    auc = mia_auc(forget, holdout)
    result = MetricResult(value=auc, n=6, per_sample=tuple(forget + holdout),
                          details={"n_forget": 3, "n_holdout": 3})
    reps = _bootstrap()._replicates("auc", M, result, "space", auc)
    assert reps.shape == (200,) and 0 <= reps.min() <= reps.max() <= 1


def test_one_sample_space_with_two_sizes_cannot_be_paired() -> None:
    boot = _bootstrap()
    a = MetricResult(value=2.0, n=3, per_sample=(1.0, 2.0, 3.0))
    b = MetricResult(value=2.5, n=2, per_sample=(2.0, 3.0))
    boot._replicates("mean", Measurement("kf", "target"), a, "space", a.value)
    with pytest.raises(RunError, match="cannot be paired"):
        boot._replicates("mean", Measurement("kf", "ga_klr"), b, "space", b.value)


def test_missing_per_sample_scores_are_an_error_not_a_point() -> None:
    result = MetricResult(value=2.0, n=3, per_sample=())
    with pytest.raises(RunError, match=r"kf\[target\] cannot be resampled: 3 samples but 0 "
                                       r"per-sample scores"):
        _bootstrap()._replicates("mean", Measurement("kf", "target"), result, "s", 2.0)
