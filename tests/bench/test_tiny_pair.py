"""The real `tiny` models that `specs/tiny.yaml` uses, trained once per test run (about two
minutes on one core): the target memorises, the retrain model does not know the forget facts,
and the aligned target is on the 4-bit grid. The micro tests check the same properties faster;
these make sure the README's benchmark itself still has them."""
from __future__ import annotations

from pathlib import Path

import pytest

from unlearnspec.bench import ensure_data, ensure_model
from unlearnspec.bench.memorise import memorisation_report
from unlearnspec.models.loading import load_causal_lm

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("tiny-bench")]


@pytest.fixture(scope="module")
def tiny(bench_cache: Path):
    from unlearnspec.data import Corpus

    corpus = Corpus(ensure_data("tiny", bench_cache))

    def mem(kind: str) -> tuple[dict[str, float], object]:
        model, tok = load_causal_lm(ensure_model(f"tiny/{kind}", bench_cache, progress=False))
        return memorisation_report(model, tok, corpus), model

    return mem


def test_tiny_target_memorises_and_retrain_does_not_know_the_forget_facts(tiny) -> None:
    # exact-match answers; measured 0.86 / 0.90 (target) and 0.07 / 0.93 (retrain)
    target, _ = tiny("target")
    retrain, _ = tiny("retrain")
    assert target["forget"] >= 0.8 and target["retain"] >= 0.8, target
    assert retrain["retain"] >= 0.8, retrain
    assert retrain["forget"] <= 0.2, retrain


def test_tiny_aligned_target_is_on_the_grid_and_still_memorises(tiny) -> None:
    from unlearnspec.bench.train import on_grid

    mem, model = tiny("target-qat")
    grid = on_grid(model)
    assert len(grid) == 7 * model.config.num_hidden_layers and all(grid.values())
    assert mem["forget"] >= 0.8 and mem["retain"] >= 0.8, mem
