"""diff's fused RTN pass against the per-transform definition it replaces (`block_tally`:
quantize both tensors with `quantize_tensor`, compare int16 codes, sum in float64): equal bit
for bit on random blocks, and a whole diff gives the same JSON for any thread count."""
from __future__ import annotations

import json

import numpy as np
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from unlearnspec.diff import diff_checkpoints, parse_transform
from unlearnspec.transforms.tally import block_tally, fusable, fused_rtn_tally, sum_double
from unlearnspec.transforms.roles import WeightInfo

LABELS = ["rtn4", "rtn8", "rtn4-g4", "rtn3-paper", "rtn4-clamped", "rtn2-zp", "rtn4-g4-zp"]


@st.composite
def blocks(draw):
    rows, cols = draw(st.integers(1, 6)), 4 * draw(st.integers(1, 4))
    w = draw(arrays(np.float32, (rows, cols), elements=st.floats(-2, 2, width=32)))
    scale = draw(st.sampled_from([0.0, 1e-4, 0.05, 1.0]))
    noise = draw(arrays(np.float32, (rows, cols), elements=st.floats(-1, 1, width=32)))
    w = torch.from_numpy(w)
    return w, (w + scale * torch.from_numpy(noise)).contiguous()


@settings(max_examples=150, deadline=None)
@given(pair=blocks(), label=st.sampled_from(LABELS))
def test_fused_tally_equals_the_definition_bit_for_bit(pair, label):
    w, s = pair
    t = parse_transform(label)
    info = WeightInfo.linear("model.layers.0.mlp.up_proj.weight", tuple(w.shape))
    assert fusable(t, info)
    delta = s - w
    d64 = delta.reshape(-1).double()
    want = block_tally(t, info, w, s, delta)
    got = fused_rtn_tally(t, torch.stack([w, s]), d64, sum_double(d64, d64))
    assert (got.n, got.flips) == (want.n, want.flips)
    for field in ("dot", "dd", "ee"):  # == on floats: the same bits (NaN never arises here)
        assert getattr(got, field) == getattr(want, field), field


def test_any_thread_count_gives_the_same_report(tiny_checkpoint, tmp_path):
    from test_diff import rewrite, small_update

    subject = rewrite(tiny_checkpoint, tmp_path / "sub", small_update(0.3))
    reports = [json.dumps(diff_checkpoints(tiny_checkpoint, subject,
                                           ["rtn4", "rtn4-g16", "nf4"], chunk_elements=64,
                                           threads=n).to_json(), sort_keys=True)
               for n in (1, 2, 5)]
    assert reports[0] == reports[1] == reports[2]
    assert json.loads(reports[0])["overall"]["rtn4"]["flip_rate"] > 0


def test_threads_below_one_is_an_error(tiny_checkpoint):
    import pytest

    from unlearnspec.diff import DiffError

    with pytest.raises(DiffError, match="--threads must be at least 1"):
        diff_checkpoints(tiny_checkpoint, tiny_checkpoint, ["rtn4"], threads=0)


def test_threaded_blocks_sum_like_the_calling_thread(tmp_path):
    """Blocks large enough for MKL to split a float64 dot across its threads (64K weights):
    a worker thread that did not pin its own MKL threads summed them in another order than
    the calling thread, so `threads=2` moved γ in the last bits (seen under xdist)."""
    from transformers import LlamaConfig, LlamaForCausalLM

    from test_diff import rewrite

    torch.manual_seed(0)
    LlamaForCausalLM(LlamaConfig(num_hidden_layers=1, hidden_size=128, intermediate_size=512,
                                 num_attention_heads=4, vocab_size=32)).save_pretrained(tmp_path / "t")
    g = torch.Generator().manual_seed(1)
    subject = rewrite(tmp_path / "t", tmp_path / "s",
                      lambda k, v: v + 1e-3 * torch.randn(v.shape, generator=g))
    before = torch.get_num_threads()
    torch.set_num_threads(2)  # the caller's intra-op threads must not matter either
    try:
        reports = [diff_checkpoints(tmp_path / "t", subject, ["rtn4", "rtn8-g32"],
                                    threads=n).to_json() for n in (1, 2, 3)]
    finally:
        torch.set_num_threads(before)
    assert reports[0]["tensors"] == reports[1]["tensors"] == reports[2]["tensors"]
    assert reports[0]["overall"] == reports[1]["overall"] == reports[2]["overall"]


def test_flip_count_counts_nan_codes_as_flips():
    """NaN weights give NaN codes, which differ from every code (count_nonzero's answer)."""
    from unlearnspec.transforms.tally import _flips

    a = torch.tensor([1.0, -7.0, float("nan"), 3.0, 0.0])
    b = torch.tensor([1.0, -6.0, 2.0, -3.0, 0.0])
    assert _flips(a, b, torch.empty(5)) == 3
    assert _flips(a, a.clone(), torch.empty(5)) == 1  # NaN != NaN
