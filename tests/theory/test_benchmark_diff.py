"""`diff` on the embedded benchmark: a small-lr unlearning of the grid-aligned micro target is
undone by 4-bit RTN (γ near 0), of the natural target kept (γ near 1), and the generation
metric under 4-bit says the same (KnowMem_forget of Q(subject) equals Q(target)'s when γ ≈ 0).

Trains micro models on first use (≈ 2 min on 2 cores); set UNLEARNSPEC_TEST_BENCH_CACHE to
a cache directory to reuse models built before."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def cache(bench_cache: Path) -> Path:
    return bench_cache


def unlearn(cache: Path, base: Path, out: Path) -> Path:
    from unlearnspec.bench import ensure_data
    from unlearnspec.unlearn import METHODS, UnlearnConfig, run_unlearning

    data = ensure_data("micro", cache)
    forget = json.loads((data / "raw" / "forget.json").read_text())
    retain = json.loads((data / "raw" / "retain.json").read_text())
    run_unlearning(METHODS.get("ga_klr"), UnlearnConfig(lr=2e-5, max_steps=20), base=base,
                   forget=forget, retain=retain, out=out, seed=0, progress=False)
    return out


def knowmem_forget_rtn4(ckpt: Path, data: Path) -> float:
    from unlearnspec.data import Corpus
    from unlearnspec.metrics.knowmem import KnowMemConfig, knowmem
    from unlearnspec.models.loading import load_causal_lm
    from unlearnspec.transforms.base import TransformContext
    from unlearnspec.transforms.registry import RtnConfig
    from unlearnspec.transforms.rtn import RtnTransform

    model, tok = load_causal_lm(ckpt)
    model = RtnTransform(RtnConfig(bits=4)).apply(model, TransformContext(ckpt, tok))
    return knowmem(model, tok, Corpus(data), KnowMemConfig()).value


def test_diff_separates_aligned_from_natural_targets(cache, tmp_path):
    from unlearnspec.bench import ensure_data, ensure_model
    from unlearnspec.diff import diff_checkpoints

    data = ensure_data("micro", cache)
    gammas = {}
    for kind in ("target-qat", "target"):
        target = ensure_model(f"micro/{kind}", cache, progress=False)
        subject = unlearn(cache, target, tmp_path / kind)
        row = diff_checkpoints(target, subject, ["rtn4"]).overall()["rtn4"]
        gammas[kind] = row.gamma
        if kind == "target-qat":
            assert row.gamma < 0.3
            # what generation shows: Q(subject) answers exactly as Q(target) does
            assert knowmem_forget_rtn4(subject, data) == knowmem_forget_rtn4(target, data)
        else:
            assert row.gamma > 0.8
    print("micro γ under rtn4:", gammas)
