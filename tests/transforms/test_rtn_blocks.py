"""`rtn_quantize` / `rtn_quantize_` quantize a block of rows at a time (`BLOCK_ELEMENTS`, columns
for a per-tensor scale), each block's scales computed on its own: the numbers must be the whole
tensor's definition bit for bit, whatever the block size. Blocks of 1-16 weights here make
every small example span many blocks; NaN, ±inf, ±0.0, constant rows, groups, a transposed
(Conv1D) view and bf16 included."""
from __future__ import annotations

from unittest import mock

import numpy as np
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from test_rtn_fast_paths import GRIDS, reference
from unlearnspec.transforms import rtn

values = (st.floats(width=32) | st.sampled_from([0.0, -0.0, 1.0, -1.0]))


@st.composite
def weights(draw):
    rows, groups = draw(st.integers(1, 6)), draw(st.integers(1, 3))
    a = draw(arrays(np.float32, (rows, groups * 4), elements=values))
    for r in draw(st.sets(st.integers(0, rows - 1))):  # constant rows
        a[r] = a[r, 0]
    return torch.from_numpy(a)


def same(got: torch.Tensor, want: torch.Tensor) -> bool:
    """Equal bits, NaN where the definition has NaN (its payload is not a number)."""
    nan = torch.isnan(want.float())
    if not torch.equal(torch.isnan(got.float()), nan):
        return False
    bits = torch.int16 if got.dtype == torch.bfloat16 else torch.int32
    return torch.equal(got.view(bits)[~nan], want.view(bits)[~nan])


@settings(max_examples=300, deadline=None)
@given(w=weights(), bits=st.integers(2, 8), grid=st.sampled_from(GRIDS),
       gs=st.sampled_from([None, 0, 4]), zp=st.booleans(), block=st.sampled_from([1, 3, 4, 16]),
       layout=st.sampled_from(["rows", "transposed", "bf16"]))
def test_blocks_give_the_whole_tensors_numbers(w, bits, grid, gs, zp, block, layout):
    if layout == "transposed":
        w = w.t().contiguous().t()  # a Conv1D weight's rows: not contiguous
    elif layout == "bf16":
        w = w.bfloat16()
    want = reference(w, bits, gs, grid, zp)
    with mock.patch.object(rtn, "BLOCK_ELEMENTS", block):
        got = rtn.rtn_quantize(w, bits, gs, grid, zp)
        inplace = w.clone()
        assert rtn.rtn_quantize_(inplace, bits, gs, grid, zp) is inplace
    assert same(got, want)
    assert same(inplace, want)


def test_a_block_that_needs_the_zero_point_clamp_gets_it_and_the_others_skip_it():
    """Row 0 rounds its max one code past the top (−min/Δ = 3.5, max/Δ = 11.5 at 4 bits); with
    one row per block only that block clamps, and every row is still the definition's."""
    w = torch.tensor([[-3.5, 11.5, 0.3, -0.2], [-1.0, 2.0, 0.5, -1e-3]])
    want = reference(w, 4, None, "symmetric", True)
    with mock.patch.object(rtn, "BLOCK_ELEMENTS", 4):
        assert same(rtn.rtn_quantize(w, 4, zero_point=True), want)
    assert want[0, 1] == 11.0 and not torch.signbit(want[1, 3])
