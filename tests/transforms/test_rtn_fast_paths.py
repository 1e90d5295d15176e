"""The fast RTN paths give the numbers of the plain definition, bit for bit: `rtn_quantize`
(no clamp on grids whose codes cannot leave the range, no zero subtracted on symmetric
grids), `rtn_quantize_` in place, and `RtnTransform.apply` quantizing parameters where they
lie. The reference below is the definition as it stood before those passes were cut."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from unlearnspec.transforms.registry import RtnConfig
from unlearnspec.transforms.rtn import (RtnTransform, _denominator, code_range, rtn_quantize,
                                        rtn_quantize_)

GRIDS = ["symmetric", "paper", "paper_clamped"]


def tiny_model(arch):
    """A random Llama (nn.Linear weights) or GPT-2 (Conv1D weights, [in, out]) with 2 layers."""
    from transformers import GPT2Config, GPT2LMHeadModel, LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    if arch == "gpt2":
        return GPT2LMHeadModel(GPT2Config(n_layer=2, n_embd=32, n_head=4, vocab_size=64,
                                          n_positions=32))
    return LlamaForCausalLM(LlamaConfig(num_hidden_layers=2, hidden_size=32,
                                        intermediate_size=64, num_attention_heads=4,
                                        vocab_size=64))


def reference(w, bits, group_size, grid, zero_point):
    """Every pass spelled out: scale, divide, round, (zero,) clamp, subtract zero, rescale."""
    x = w.float().reshape(w.shape[0], -1)
    x = x.reshape(1, -1) if group_size == 0 else x if group_size is None \
        else x.reshape(-1, group_size)
    tiny = torch.finfo(torch.float32).tiny
    lo, hi = code_range(bits, grid, zero_point)
    if zero_point:
        lo_v = x.amin(1, keepdim=True).clamp_max(0)
        hi_v = x.amax(1, keepdim=True).clamp_min(0)
        scale = ((hi_v - lo_v) / hi).clamp_min(tiny)
        zero = torch.round(-lo_v / scale)
        codes = torch.div(x, scale).round_().add_(zero).clamp_(lo, hi)
    else:
        absmax = torch.maximum(x.amax(1, keepdim=True), -x.amin(1, keepdim=True))
        scale = (absmax / _denominator(bits, grid)).clamp_min(tiny)
        zero = torch.zeros_like(scale)
        codes = torch.div(x, scale).round_().clamp_(lo, hi)
    return codes.sub_(zero).mul_(scale).reshape(w.shape).to(w.dtype)


finite = st.floats(width=32, allow_nan=False, allow_infinity=False)  # subnormals, huge rows


@st.composite
def matrices(draw):
    rows, groups = draw(st.integers(1, 5)), draw(st.integers(1, 3))
    cols = groups * 4
    a = draw(arrays(np.float32, (rows, cols), elements=finite | st.sampled_from([0.0, -0.0])))
    return torch.from_numpy(a)


settings.register_profile("rtn-fast", max_examples=150, deadline=None)


@settings(settings.get_profile("rtn-fast"))
@given(w=matrices(), bits=st.integers(2, 8), grid=st.sampled_from(GRIDS),
       gs=st.sampled_from([None, 0, 4]), zp=st.booleans())
def test_fast_paths_equal_the_definition_bit_for_bit(w, bits, grid, gs, zp):
    want = reference(w, bits, gs, grid, zp)
    assert torch.equal(rtn_quantize(w, bits, gs, grid, zp).view(torch.int32),
                       want.view(torch.int32))
    inplace = w.clone()
    assert rtn_quantize_(inplace, bits, gs, grid, zp) is inplace
    assert torch.equal(inplace.view(torch.int32), want.view(torch.int32))


def test_in_place_leaves_nothing_behind_on_a_bf16_or_transposed_weight():
    w = torch.randn(8, 16, generator=torch.Generator().manual_seed(0))
    t = w.t().contiguous().t()  # a transposed view, as a Conv1D weight's rows are
    assert torch.equal(rtn_quantize_(t, 4), reference(w, 4, None, "symmetric", False))
    b = w.bfloat16()
    assert torch.equal(rtn_quantize_(b, 4), reference(b, 4, None, "symmetric", False))


@pytest.mark.parametrize("cfg", [RtnConfig(bits=4), RtnConfig(bits=4, group_size=8),
                                 RtnConfig(bits=3, zero_point=True),
                                 RtnConfig(bits=8, group_size=0, grid="paper"),
                                 RtnConfig(bits=4, grid="paper_clamped")])
@pytest.mark.parametrize("arch", ["llama", "gpt2"])
def test_apply_in_place_matches_the_definition(cfg, arch):
    from unlearnspec.transforms.roles import iter_parameters
    from unlearnspec.transforms.rtn import from_rows, to_rows

    model = tiny_model(arch)
    infos = {info.name: info for info, _ in iter_parameters(model)}
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    RtnTransform(cfg).apply(model, None)
    changed = 0
    for name, p in model.named_parameters():
        info = infos.get(name)
        if info is not None and info.decoder and info.layout != "other":
            rows = to_rows(before[name], info.layout)
            want = from_rows(reference(rows, cfg.bits, cfg.group_size, cfg.grid,
                                       cfg.zero_point), info.layout, tuple(p.shape))
            assert torch.equal(p.detach(), want), name
            changed += 1
        else:
            assert torch.equal(p.detach(), before[name]), name
    assert changed > 0


def test_group_size_that_does_not_divide_is_an_error_before_any_weight_changes():
    from unlearnspec.errors import RunError

    model = tiny_model("llama")
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    with pytest.raises(RunError, match="group_size 7 does not divide"):
        RtnTransform(RtnConfig(bits=4, group_size=7)).apply(model, None)
    assert all(torch.equal(p.detach(), before[n]) for n, p in model.named_parameters())


def test_zero_point_clamp_runs_when_rounding_pushes_a_code_past_the_top():
    """−min/Δ = 3.5 rounds to z = 4 and max/Δ = 11.5 to 12: code 16 on a 4-bit grid, which only
    the clamp brings back to 15. The fast path that skips the clamp must see that row."""
    from unlearnspec.transforms.rtn import _zero_point_grid, rtn_codes

    w = torch.tensor([[-3.5, 11.5, 0.3, -0.2], [-1.0, 2.0, 0.5, -0.25]])
    assert _zero_point_grid(w, 4)[2]  # the first row needs the clamp
    assert not _zero_point_grid(w[1:], 4)[2]
    assert rtn_codes(w, 4, zero_point=True).codes.max() == 15
    want = reference(w, 4, None, "symmetric", True)
    assert torch.equal(rtn_quantize(w, 4, zero_point=True).view(torch.int32), want.view(torch.int32))
    inplace = w.clone()
    rtn_quantize_(inplace, 4, zero_point=True)
    assert torch.equal(inplace.view(torch.int32), want.view(torch.int32))
    assert want[0, 1] == 11.0  # clipped to code 15: 11 steps above the zero point


def test_zero_point_keeps_positive_zero_where_small_negatives_round_to_it():
    """round(w/Δ) is −0.0 for a small negative weight; the definition's (code + z − z)·Δ is
    +0.0 there, and so must be the four-pass form."""
    w = torch.tensor([[-1e-3, 1.0, -2.0, 0.5]])
    got = rtn_quantize(w, 4, zero_point=True)
    assert torch.equal(got.view(torch.int32), reference(w, 4, None, "symmetric", True).view(torch.int32))
    assert not torch.signbit(got[0, 0])
