"""Matched noise: on exactly the weights its quantizer changes, with that quantizer's error
norm per tensor, seeded; `scale: 0` is the identity; K draws through the engine are K
independent perturbations whose mean is the reported value."""
from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import torch
from hypothesis import given, settings, strategies as st

from unlearnspec.errors import RunError
from unlearnspec.metrics.result import MetricResult
from unlearnspec.models.loading import load_causal_lm
from unlearnspec.transforms.base import TransformContext
from unlearnspec.transforms.coverage import apply_measured
from unlearnspec.transforms.noise import NoiseTransform, combine_draws, matched_noise
from unlearnspec.transforms.registry import NoiseConfig, RtnConfig
from unlearnspec.transforms.roles import iter_parameters
from unlearnspec.transforms.rtn import RtnTransform


def _noise(rtn: RtnTransform | None = None, **options) -> NoiseTransform:
    t = NoiseTransform(NoiseConfig(matched_to="rtn4", **options))
    return t.bind({"rtn4": rtn or RtnTransform(RtnConfig(bits=4))})


def _apply(ckpt: Path, t: NoiseTransform):
    model, tok = load_causal_lm(ckpt)
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    out = t.apply(model, TransformContext(ckpt, tok))
    return before, dict(out.named_parameters()), out


@pytest.mark.parametrize("distribution", ["gaussian", "uniform"])
def test_each_tensor_gets_noise_with_the_quantizers_error_norm(tiny_checkpoint, distribution):
    rtn = RtnTransform(RtnConfig(bits=4))
    before, after, model = _apply(tiny_checkpoint, _noise(rtn, distribution=distribution))
    checked = 0
    for info, _ in iter_parameters(model):
        w = before[info.name]
        noise = after[info.name].detach() - w
        q = rtn.quantize_tensor(info, w)
        if q is None:  # rtn leaves the embeddings and the head alone, and so does the noise
            assert torch.equal(noise, torch.zeros_like(noise)), info.name
            continue
        want = float((q.values - w).norm())
        assert want > 0
        assert float(noise.norm()) == pytest.approx(want, rel=1e-4), info.name
        # noise, not the quantizer's own error in disguise
        assert float((noise - (q.values - w)).norm()) > 0.5 * want
        checked += 1
    assert checked == 14  # 2 layers × (4 attention + 3 MLP) matrices
    for name, w in before.items():  # norms (1-D) are never touched
        if w.ndim == 1:
            assert torch.equal(after[name].detach(), w), name


def test_same_seed_and_draw_give_identical_weights(tiny_checkpoint):
    _, a, _ = _apply(tiny_checkpoint, _noise(seed=3))
    _, b, _ = _apply(tiny_checkpoint, _noise(seed=3))
    assert all(torch.equal(a[n], b[n]) for n in a)


def test_seeds_and_draws_differ(tiny_checkpoint):
    name = "model.layers.0.mlp.down_proj.weight"
    _, a, _ = _apply(tiny_checkpoint, _noise(seed=0))
    _, b, _ = _apply(tiny_checkpoint, _noise(seed=1))
    _, c, _ = _apply(tiny_checkpoint, _noise(seed=0).with_draw(1))
    assert not torch.equal(a[name], b[name])
    assert not torch.equal(a[name], c[name])


def test_scale_zero_is_the_identity(tiny_checkpoint):
    before, after, _ = _apply(tiny_checkpoint, _noise(scale=0.0))
    assert all(torch.equal(after[n].detach(), before[n]) for n in before)


@settings(max_examples=30, deadline=None)
@given(rows=st.integers(1, 12), cols=st.integers(1, 12), norm=st.floats(0.0, 50.0),
       scale=st.floats(0.0, 4.0), seed=st.integers(0, 2**31),
       distribution=st.sampled_from(["gaussian", "uniform"]))
def test_matched_noise_has_the_requested_norm(rows, cols, norm, scale, seed, distribution):
    w = torch.zeros(rows, cols)
    eps = matched_noise(w, norm, distribution, seed, scale)
    assert eps.shape == w.shape
    assert float(eps.norm()) == pytest.approx(scale * norm, rel=1e-4, abs=1e-6)


def test_a_model_on_the_quantizers_grid_gets_no_noise_and_coverage_says_why(
        tiny_checkpoint, tmp_path):
    """rtn4's error on an rtn4-snapped model is 0, so the matched noise is 0: the control
    must refuse to give that model a number under its name, not measure it unperturbed."""
    ckpt = shutil.copytree(tiny_checkpoint, tmp_path / "grid")
    model, tok = load_causal_lm(ckpt)
    RtnTransform(RtnConfig(bits=4)).apply(model, TransformContext(ckpt, tok))
    t = _noise()
    out, cov = apply_measured(t, model, TransformContext(ckpt, tok))
    with pytest.raises(RunError) as info:
        cov.check("it", t)
    assert "the noise is 0 too" in str(info.value)
    assert all(v == 0.0 for v in t.errors.values())


def test_unbound_noise_is_an_error_naming_its_quantizer(tiny_checkpoint):
    model, tok = load_causal_lm(tiny_checkpoint)
    t = NoiseTransform(NoiseConfig(matched_to="rtn4"))
    with pytest.raises(RunError, match="matched_to 'rtn4' was never bound"):
        t.apply(model, TransformContext(tiny_checkpoint, tok))


def test_draws_combine_as_the_mean_and_keep_every_value():
    rs = [MetricResult(10.0, 2, (0.0, 20.0)), MetricResult(30.0, 2, (20.0, 40.0))]
    out = combine_draws(rs)
    assert out.value == 20.0 and out.per_sample == (10.0, 30.0) and out.n == 2
    assert out.details["draws"] == {"values": [10.0, 30.0], "min": 10.0, "max": 30.0,
                                    "combine": "mean"}
