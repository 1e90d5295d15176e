"""Sharpness: the forget-set loss rise under random relative-size weight perturbations,
averaged over seeded draws; rho 0 measures exactly 0 and the model comes back bit for bit."""
from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings, strategies as st

from unlearnspec.data import Corpus
from unlearnspec.metrics.sharpness import SharpnessConfig, perturb_, perturbable, sharpness
from unlearnspec.models.loading import load_causal_lm


@pytest.fixture(scope="module")
def micro(bench_cache):
    """The micro benchmark's corpus and (trained) target."""
    from unlearnspec.bench import ensure_data, ensure_model

    return Corpus(ensure_data("micro", bench_cache)), ensure_model("micro/target", bench_cache,
                                                                   progress=False)


def _state(model):
    return {n: p.detach().clone() for n, p in model.state_dict().items()}


@pytest.mark.parametrize("source", ["knowmem", "documents"])
def test_rho_zero_is_exactly_zero_and_the_model_is_restored(micro, source):
    corpus, ckpt = micro
    model, tok = load_causal_lm(ckpt)
    before = _state(model)
    r = sharpness(model, tok, corpus, SharpnessConfig(rho=0.0, draws=2, source=source))
    assert r.value == 0.0 and r.n > 0 and set(r.per_sample) == {0.0}
    assert r.details["base_loss"] > 0
    after = _state(model)
    assert all(torch.equal(before[n], after[n]) for n in before)


def test_same_seed_same_number_and_weights_restored_after_real_noise(micro):
    corpus, ckpt = micro
    model, tok = load_causal_lm(ckpt)
    before = _state(model)
    cfg = SharpnessConfig(rho=0.05, draws=2, seed=1)
    a, b = sharpness(model, tok, corpus, cfg), sharpness(model, tok, corpus, cfg)
    assert a == b
    assert all(torch.equal(before[n], v) for n, v in _state(model).items())
    c = sharpness(model, tok, corpus, SharpnessConfig(rho=0.05, draws=2, seed=2))
    assert c.value != a.value


def test_a_trained_model_is_sharper_under_larger_perturbations(micro):
    """The trained target sits in a minimum of its forget loss: bigger nudges cost more."""
    corpus, ckpt = micro
    model, tok = load_causal_lm(ckpt)
    small = sharpness(model, tok, corpus, SharpnessConfig(rho=0.02, draws=2)).value
    large = sharpness(model, tok, corpus, SharpnessConfig(rho=0.2, draws=2)).value
    assert 0 < small < large
    assert len(sharpness(model, tok, corpus, SharpnessConfig(rho=0.02, draws=3)
                         ).details["draws"]) == 3


@settings(max_examples=10, deadline=None)
@given(rho=st.floats(0.0, 0.5), seed=st.integers(0, 1000), draw=st.integers(0, 5))
def test_each_tensor_moves_by_rho_times_its_norm(tiny_checkpoint, rho, seed, draw):
    model, _ = load_causal_lm(tiny_checkpoint)
    params = perturbable(model)
    before = {n: p.detach().clone() for n, p in params}
    perturb_(params, SharpnessConfig(rho=rho, seed=seed), draw)
    assert len(params) == 14  # the decoder's 2 × 7 matrices; embeddings and head stay
    for n, p in params:
        moved = float((p.detach() - before[n]).norm())
        assert moved == pytest.approx(rho * float(before[n].norm()), rel=1e-3, abs=1e-6)
