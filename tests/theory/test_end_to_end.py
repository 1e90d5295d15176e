"""The interval argument on a real model: if every weight update stays inside its interval
(|δ| below the distance to the nearest edge, absmax rows untouched), the 4-bit RTN models of
target and subject are bit-identical, so every metric of them is too."""
from __future__ import annotations

import shutil

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from safetensors.torch import load_file, save_file

from unlearnspec.diff import diff_checkpoints
from unlearnspec.models.loading import load_causal_lm
from unlearnspec.transforms.base import TransformContext
from unlearnspec.transforms.registry import RtnConfig
from unlearnspec.transforms.rtn import RtnTransform, rtn_quantize

import theory_checks as tc


def is_decoder(name, w):
    """A decoder weight of the tiny Llama fixture (the matrices inside `layers.N.`)."""
    return ".layers." in name and w.ndim == 2


def inside_update(w: torch.Tensor, frac: float, seed: int) -> torch.Tensor:
    """w + δ with |δ| < frac × distance to the nearest 4-bit edge, and each row's absmax
    weight left alone (w+δ kept within ±m)."""
    g = torch.Generator().manual_seed(seed)
    d = tc.step(w, 4, "symmetric")
    room = (tc.boundary_distance(w, 4, "symmetric") - tc.TIE_MARGIN * d).clamp_min(0)
    delta = frac * room * (2 * torch.rand(w.shape, generator=g, dtype=torch.float64) - 1)
    m = w.double().abs().amax(1, keepdim=True)
    delta[w.double().abs() == m] = 0
    return ((w.double() + delta).clamp(-m, m)).float()


@pytest.mark.slow
@settings(max_examples=4, deadline=None, derandomize=True)
@given(aligned=st.booleans(), frac=st.floats(0.1, 0.99), seed=st.integers(0, 2**31 - 1))
def test_updates_inside_their_intervals_leave_the_4bit_model_bit_identical(
        tiny_checkpoint, tmp_path_factory, aligned, frac, seed):
    root = tmp_path_factory.mktemp("e2e")
    target, subject = root / "target", root / "subject"
    shutil.copytree(tiny_checkpoint, target)
    tensors = load_file(str(tiny_checkpoint / "model.safetensors"))
    decoder = {k for k, v in tensors.items() if is_decoder(k, v)}
    if aligned:
        tensors = {k: rtn_quantize(v, 4) if k in decoder else v for k, v in tensors.items()}
    save_file(tensors, str(target / "model.safetensors"), metadata={"format": "pt"})
    shutil.copytree(target, subject)
    moved = {k: inside_update(v, frac, seed) if k in decoder else v for k, v in tensors.items()}
    save_file(moved, str(subject / "model.safetensors"), metadata={"format": "pt"})

    rtn4 = RtnTransform(RtnConfig(bits=4))
    models = []
    for ckpt in (target, subject):
        model, tok = load_causal_lm(ckpt)
        models.append(rtn4.apply(model, TransformContext(ckpt, tok)))
    pa, pb = dict(models[0].named_parameters()), dict(models[1].named_parameters())
    assert all(torch.equal(pa[k], pb[k]) for k in pa)
    ids = torch.tensor([[2, 5, 9, 12, 7, 30, 31, 8]])
    with torch.no_grad():
        assert torch.equal(models[0](ids).logits, models[1](ids).logits)
        gen = [m.generate(ids, max_new_tokens=8, do_sample=False) for m in models]
    assert torch.equal(gen[0], gen[1])  # so VerbMem / KnowMem / PrivLeak inputs agree too
    row = diff_checkpoints(target, subject, ["rtn4"]).overall()["rtn4"]
    assert row.flip_rate == 0.0 and row.gamma == 0.0 and row.relative_update > 0
