"""Properties of the RTN grid that claims at `@ rtn4` rely on: codes stay in the grid's range,
rounding error is at most half a step inside the range, quantizing twice changes nothing,
each group gets its own scale, and the symmetric / paper / zero-point grids differ as
documented."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from unlearnspec.transforms.rtn import code_range, rtn_codes, rtn_quantize

GRIDS = ["symmetric", "paper", "paper_clamped"]


@st.composite
def weights(draw, group_size=None):
    rows = draw(st.integers(1, 6))
    groups = draw(st.integers(1, 4))
    cols = groups * (group_size or draw(st.sampled_from([1, 3, 8])))
    a = draw(arrays(np.float32, (rows, cols),
                    elements=st.floats(-4, 4, width=32, allow_subnormal=False)))
    return torch.from_numpy(a)


settings.register_profile("rtn", max_examples=60, deadline=None)
settings.load_profile("rtn")

bits = st.integers(2, 8)
groups = st.sampled_from([None, 0, 4])


@given(w=weights(group_size=4), bits=bits, grid=st.sampled_from(GRIDS), gs=groups,
       zp=st.booleans())
def test_codes_stay_in_the_grids_range(w, bits, grid, gs, zp):
    c = rtn_codes(w, bits, gs, grid, zp)
    lo, hi = code_range(bits, grid, zp)
    assert c.codes.min() >= lo and c.codes.max() <= hi
    assert torch.equal(c.codes, c.codes.round())


@given(w=weights(group_size=4), bits=bits, grid=st.sampled_from(GRIDS), gs=groups,
       zp=st.booleans())
def test_error_is_at_most_half_a_step_inside_the_range(w, bits, grid, gs, zp):
    c = rtn_codes(w, bits, gs, grid, zp)
    q = rtn_quantize(w, bits, gs, grid, zp)
    g = w.reshape(c.codes.shape)
    raw = g / c.scale + c.zero
    lo, hi = code_range(bits, grid, zp)
    inside = (raw >= lo - 0.5) & (raw <= hi + 0.5)
    err = (q.reshape(g.shape) - g).abs()
    bound = (c.scale / 2) * (1 + 1e-5) + 1e-7
    assert bool((err <= bound)[inside].all())
    if not zp and grid != "paper_clamped":  # these grids reach max|w| exactly: all inside
        assert bool(inside.all())


@given(w=weights(group_size=4), bits=bits, grid=st.sampled_from(["symmetric", "paper"]),
       gs=groups)
def test_quantizing_twice_changes_nothing(w, bits, grid, gs):
    zp = False  # a zero-point grid is not idempotent: test_zero_point_grid_is_not_idempotent
    q = rtn_quantize(w, bits, gs, grid, zp)
    c1, c2 = rtn_codes(w, bits, gs, grid, zp), rtn_codes(q, bits, gs, grid, zp)
    assert torch.equal(c1.codes, c2.codes)
    # the scale is recomputed from Q(w)'s max, equal up to float rounding
    torch.testing.assert_close(rtn_quantize(q, bits, gs, grid, zp), q, rtol=1e-5, atol=1e-7)


def test_zero_point_grid_is_not_idempotent():
    """Why zero points are excluded above, as GPTQ's quantizer defines them (zero =
    round(−min/Δ), codes clamped to 0..2^b − 1): on [−4, 4] at 3 bits Δ = 8/7 and −min/Δ
    rounds to 3 in float32 (3.4999998), so 4 lands on code 6.5 → 6 and −4 on −0.5 → 0:
    Q(w) spans ±24/7, a narrower range, and quantizing it again picks another Δ and zero."""
    w = torch.tensor([[4.0, -4.0, 0.0, 0.0]])
    c = rtn_codes(w, 3, None, "symmetric", True)
    assert c.zero.flatten().tolist() == [3.0] and c.codes.tolist() == [[6.0, 0.0, 3.0, 3.0]]
    q = rtn_quantize(w, 3, None, "symmetric", True)
    assert q.abs().max().item() == pytest.approx(24 / 7)
    assert not torch.equal(rtn_codes(q, 3, None, "symmetric", True).codes, c.codes)


def test_paper_clamped_grid_is_not_idempotent():
    """Why `paper_clamped` is excluded above: clipping the top code shrinks max|Q(w)|."""
    w = torch.tensor([[1.0, -0.3, 0.2, 0.7]])
    q = rtn_quantize(w, 4, None, "paper_clamped")
    assert q.max() == pytest.approx(7 / 8)
    assert not torch.equal(rtn_quantize(q, 4, None, "paper_clamped"), q)


@given(w=weights(group_size=4), bits=bits, grid=st.sampled_from(GRIDS), zp=st.booleans())
def test_each_group_is_quantized_with_its_own_scale(w, bits, grid, zp):
    q = rtn_quantize(w, bits, 4, grid, zp)
    for j in range(w.shape[1] // 4):
        part = w[:, 4 * j:4 * j + 4]
        assert torch.equal(q[:, 4 * j:4 * j + 4], rtn_quantize(part, bits, None, grid, zp))


@given(w=weights(), bits=bits, grid=st.sampled_from(GRIDS))
def test_per_tensor_uses_one_scale_and_per_channel_one_per_row(w, bits, grid):
    assert rtn_codes(w, bits, 0, grid).scale.numel() == 1
    assert rtn_codes(w, bits, None, grid).scale.shape == (w.shape[0], 1)


@given(w=weights(), bits=bits)
def test_symmetric_grid_is_odd_and_uses_2n_minus_1_levels(w, bits):
    q, qn = rtn_quantize(w, bits), rtn_quantize(-w, bits)
    assert torch.equal(qn, -q)
    c = rtn_codes(w, bits)
    assert c.codes.abs().max() <= 2 ** (bits - 1) - 1


def test_grid_denominators_match_the_docs():
    w = torch.tensor([[8.0, 1.0, -3.0, 0.0]])
    assert rtn_codes(w, 4, None, "symmetric").scale.item() == pytest.approx(8 / 7)
    assert rtn_codes(w, 4, None, "paper").scale.item() == pytest.approx(1.0)
    # Eq. 2 reaches code 2^(N-1) = 8 at max|w|: 2^N + 1 levels in all
    assert rtn_codes(w, 4, None, "paper").codes.max().item() == 8
    assert rtn_codes(w, 4, None, "paper_clamped").codes.max().item() == 7
    assert code_range(4, "paper") == (-8, 8)


@given(w=weights(), bits=bits)
def test_zero_point_grid_maps_min_and_max_near_exactly(w, bits):
    c = rtn_codes(w, bits, None, zero_point=True)
    q = rtn_quantize(w, bits, None, zero_point=True)
    step = c.scale.squeeze(1)
    assert bool(((q.amax(1) - w.amax(1)).abs() <= step * 0.5 + 1e-6).all())
    assert bool(((q.amin(1) - w.amin(1)).abs() <= step * 0.5 + 1e-6).all())


def test_all_zero_group_quantizes_to_zero_not_nan():
    w = torch.zeros(2, 8)
    for zp in (False, True):
        assert torch.equal(rtn_quantize(w, 4, 4, zero_point=zp), w)


def test_default_grid_output_is_unchanged_for_shared_callers():
    """The benchmark's aligned models were built with rtn_quantize's defaults; pin them."""
    w = torch.tensor([[0.7, -0.33, 0.1, 0.04], [2.0, 1.1, -1.5, 0.2]])
    expected = torch.tensor([[0.7, -0.3, 0.1, 0.0], [2.0, 4 * 2 / 7, -5 * 2 / 7, 2 / 7]])
    torch.testing.assert_close(rtn_quantize(w), expected)


def test_non_dividing_group_size_names_the_fix():
    with pytest.raises(ValueError, match="does not divide the 6 inputs.*choose a group_size"):
        rtn_quantize(torch.ones(2, 6), 4, 4)


def test_keeps_dtype_and_works_on_half_precision():
    w = torch.randn(4, 8, generator=torch.Generator().manual_seed(0)).to(torch.bfloat16)
    q = rtn_quantize(w, 4)
    assert q.dtype == torch.bfloat16 and q.shape == w.shape


# ------------------------------------------------------------ layouts (transforms.roles)


def _rtn(**options):
    from unlearnspec.transforms.registry import RtnConfig
    from unlearnspec.transforms.rtn import RtnTransform

    return RtnTransform(RtnConfig(**options))


def _info(layout, shape):
    from unlearnspec.transforms.roles import WeightInfo

    return WeightInfo("model.layers.0.mlp.w.weight", "mlp", layout, tuple(shape), "x")


@given(w=weights(group_size=4), bits=bits, gs=st.sampled_from([None, 0, 4]), zp=st.booleans())
def test_a_conv1d_weight_is_quantized_as_its_transpose_would_be_as_a_linear(w, bits, gs, zp):
    """Conv1D stores [in, out]: its codes and values are a Linear's on w.T, transposed back."""
    t = _rtn(bits=bits, group_size=gs, zero_point=zp)
    conv = t.quantize_tensor(_info("conv1d", w.T.shape), w.T.contiguous())
    lin = t.quantize_tensor(_info("linear", w.shape), w)
    assert torch.equal(conv.codes, lin.codes.T) and torch.equal(conv.values, lin.values.T)


@given(w=weights(group_size=4), experts=st.integers(1, 3), bits=bits,
       gs=st.sampled_from([None, 0, 4]))
def test_each_expert_of_a_3d_tensor_is_quantized_as_its_own_matrix(w, experts, bits, gs):
    """One scale per expert x output channel (per expert matrix for group_size 0): quantizing
    the stacked experts equals quantizing each expert alone, so the split checkpoint streams
    the same numbers."""
    stacked = torch.stack([w * (e + 1) for e in range(experts)])
    t = _rtn(bits=bits, group_size=gs)
    q = t.quantize_tensor(_info("experts", stacked.shape), stacked)
    for e in range(experts):
        alone = t.quantize_tensor(_info("linear", w.shape), stacked[e].contiguous())
        assert torch.equal(q.codes[e], alone.codes) and torch.equal(q.values[e], alone.values)
