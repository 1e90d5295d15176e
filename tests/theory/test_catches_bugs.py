"""A test of the tests: plant a bug in the quantizer (monkeypatched into
`unlearnspec.transforms.rtn.rtn_codes`, which the checks call for codes and scales;
`rtn_quantize` computes its values block by block without it) and assert
that the interval properties fail. A property suite that passes a broken RTN is no evidence."""
from __future__ import annotations

import pytest
import torch
from hypothesis import Phase, settings

import test_intervals as props
from unlearnspec.transforms import rtn

REAL = rtn.rtn_codes


def floor_instead_of_round(w, bits=4, group_size=None, grid="symmetric", zero_point=False):
    c = REAL(w, bits, group_size, grid, zero_point)
    g = rtn._groups(w, group_size)
    lo, hi = rtn.code_range(bits, grid, zero_point)
    return rtn.RtnCodes(torch.floor(g / c.scale).clamp(lo, hi), c.scale, c.zero)


def eq2_step_on_the_symmetric_grid(w, bits=4, group_size=None, grid="symmetric",
                                   zero_point=False):
    """Δ = m/2^(N−1) with the symmetric grid's codes: the two conventions mixed up."""
    c = REAL(w, bits, group_size, "paper", zero_point)
    lo, hi = rtn.code_range(bits, grid, zero_point)
    return rtn.RtnCodes(c.codes.clamp(lo, hi), c.scale, c.zero)


def no_clamp(w, bits=4, group_size=None, grid="symmetric", zero_point=False):
    """The clamped grid forgets to clamp its top code."""
    return REAL(w, bits, group_size, "paper" if grid == "paper_clamped" else grid, zero_point)


def scale_from_first_weight(w, bits=4, group_size=None, grid="symmetric", zero_point=False):
    """Δ from |w[0]| instead of max|w| (the absmax-dependence the theory relies on is lost)."""
    c = REAL(w, bits, group_size, grid, zero_point)
    g = rtn._groups(w, group_size)
    scale = (g[:, :1].abs() / (c.scale.new_tensor(1) * (2 ** (bits - 1)))).clamp_min(1e-30)
    lo, hi = rtn.code_range(bits, grid, zero_point)
    return rtn.RtnCodes(torch.round(g / scale).clamp(lo, hi), scale, c.zero)


CORE = [props.test_every_weight_in_an_interval_maps_to_its_level,
        props.test_update_smaller_than_the_distance_to_an_edge_changes_nothing,
        props.test_grid_aligned_weights_need_half_a_step,
        props.test_uniform_weights_flip_with_probability_delta_over_step,
        props.test_raising_a_groups_absmax_rescales_the_whole_group,
        props.test_grid_conventions_and_clamping]


# no shrinking and no example database: only "does it fail?" matters here, and fast
FIND = settings(max_examples=40, deadline=None, derandomize=True, database=None,
                phases=[Phase.explicit, Phase.generate])


def caught(test, monkeypatch) -> bool:
    # hypothesis refuses a second @settings; swap the stored one for this test's duration
    monkeypatch.setattr(test, "_hypothesis_internal_use_settings", FIND)
    try:
        test()
    except (AssertionError, ExceptionGroup):  # hypothesis reports the shrunk counterexample
        return True
    return False


@pytest.mark.parametrize("bug", [floor_instead_of_round, eq2_step_on_the_symmetric_grid,
                                 no_clamp, scale_from_first_weight])
def test_a_planted_quantizer_bug_fails_the_interval_properties(bug, monkeypatch):
    monkeypatch.setattr(rtn, "rtn_codes", bug)
    failed = [t.__name__ for t in CORE if caught(t, monkeypatch)]
    print(bug.__name__, "caught by", failed)
    assert failed, f"{bug.__name__} passed every interval property"
    if bug is floor_instead_of_round:  # the headline bug: the membership property names it
        assert "test_every_weight_in_an_interval_maps_to_its_level" in failed


def test_the_unpatched_quantizer_passes_them(monkeypatch):
    """The control: the same loop with the real quantizer finds nothing."""
    assert not [t.__name__ for t in CORE if caught(t, monkeypatch)]
