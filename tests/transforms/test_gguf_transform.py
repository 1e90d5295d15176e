"""`kind: gguf`: llama.cpp's block formats through the gguf package, on bare tensors (block
layout, ggml's reference rounding, codes) and on a real tiny Llama (which tensors, errors)."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

pytest.importorskip("gguf")
from gguf import GGML_QUANT_SIZES, GGMLQuantizationType, quants  # noqa: E402

from unlearnspec.errors import RunError  # noqa: E402
from unlearnspec.models.loading import load_causal_lm  # noqa: E402
from unlearnspec.registry import ConfigError  # noqa: E402
from unlearnspec.transforms.base import TransformContext  # noqa: E402
from unlearnspec.transforms.registry import GGUF_TYPES, TRANSFORMS  # noqa: E402
from unlearnspec.transforms.roles import WeightInfo, checkpoint_roles  # noqa: E402


def build(**options):
    comp = TRANSFORMS.get("gguf")
    return comp.load()(comp.make_config(options))


def quantize(type_name, w):
    return build(type=type_name).quantize_tensor(WeightInfo.linear("blk.w", tuple(w.shape)), w)


def blocks_of(type_name, w):
    return quants.quantize(w.numpy(), GGMLQuantizationType[type_name])


finite = st.floats(-4.0, 4.0, allow_nan=False, width=32)
# weights a model has: 0 or at least 2^-10 in magnitude (ggml's 1/d overflows on subnormal
# blocks, where the reference formulas below would compare NaNs)
normal = st.one_of(st.just(0.0), st.floats(2.0**-10, 4.0, width=32),
                   st.floats(-4.0, -2.0**-10, width=32))


@pytest.mark.parametrize("type_name", GGUF_TYPES)
def test_values_are_the_packages_round_trip_in_the_packages_block_size(type_name):
    w = torch.randn(8, 64, generator=torch.Generator().manual_seed(0))
    q = quantize(type_name, w)
    qt = GGMLQuantizationType[type_name]
    blocks = quants.quantize(w.numpy(), qt)
    bs, size = GGML_QUANT_SIZES[qt]
    assert bs == 32 and blocks.shape == (8, 64 // bs * size)  # two blocks per row
    assert torch.equal(q.values, torch.from_numpy(quants.dequantize(blocks, qt)))
    assert not torch.equal(q.values, w)


def _scale_and_min(type_name, blocks):
    """Each block's scale d and min m, read from ggml's block structs."""
    b = blocks.reshape(-1, GGML_QUANT_SIZES[GGMLQuantizationType[type_name]][1])
    if type_name == "MXFP4":  # e8m0 exponent, halved: 2^(e - 128)
        return np.ldexp(1.0, b[:, :1].astype(np.int64) - 128), 0.0
    d = b[:, 0:2].copy().view(np.float16).astype(np.float32)
    m = b[:, 2:4].copy().view(np.float16).astype(np.float32) if type_name.endswith("_1") else 0.0
    return d, m


@pytest.mark.parametrize("type_name", GGUF_TYPES)
@settings(max_examples=25, deadline=None)
@given(w=arrays(np.float32, (3, 64), elements=finite))
def test_codes_with_each_blocks_scale_give_the_values(type_name, w):
    t = torch.from_numpy(w)
    q = quantize(type_name, t)
    d, m = _scale_and_min(type_name, blocks_of(type_name, t))
    codes = q.codes.reshape(-1, 32).numpy().astype(np.float32)
    assert np.array_equal(q.values.reshape(-1, 32).numpy(), d * codes + m)
    lo, hi = {"Q4_0": (-8, 7), "Q4_1": (0, 15), "Q5_0": (-16, 15), "Q5_1": (0, 31),
              "Q8_0": (-127, 127), "MXFP4": (-12, 12)}[type_name]
    assert lo <= q.codes.min() and q.codes.max() <= hi


@settings(max_examples=50, deadline=None)
@given(w=arrays(np.float32, (2, 32), elements=normal))
def test_q8_0_is_ggmls_reference_rounding(w):
    # quantize_row_q8_0_ref: d = amax / 127 stored as fp16, q = roundf(x / d) (half away from 0)
    d = np.abs(w).max(axis=1, keepdims=True) / 127
    inv = np.where(d == 0, 0, 1 / np.where(d == 0, 1, d))
    x = w * inv
    q = np.sign(x) * np.floor(np.abs(x) + 0.5)
    want = q * d.astype(np.float16).astype(np.float32)
    got = quantize("Q8_0", torch.from_numpy(w)).values.numpy()
    assert np.allclose(got, want, rtol=0, atol=1e-6 * float(np.abs(w).max() + 1))


@settings(max_examples=50, deadline=None)
@given(w=arrays(np.float32, (2, 32), elements=normal))
def test_q4_0_is_ggmls_reference_rounding(w):
    # quantize_row_q4_0_ref: d = (signed max-magnitude value) / -8, q = min(15, (int)(x/d + 8.5))
    i = np.abs(w).argmax(axis=1)
    d = w[np.arange(2), i][:, None] / -8
    inv = np.where(d == 0, 0, 1 / np.where(d == 0, 1, d))
    q = np.minimum(15, np.trunc(w * inv + 8.5)).astype(np.float32)
    want = (q - 8) * d.astype(np.float16).astype(np.float32)
    got = quantize("Q4_0", torch.from_numpy(w)).values.numpy()
    assert np.array_equal(got, want.astype(np.float32))


@pytest.mark.parametrize("type_name", GGUF_TYPES)
def test_a_block_is_32_consecutive_inputs_of_one_row(type_name):
    w = torch.randn(4, 96, generator=torch.Generator().manual_seed(1))
    base = quantize(type_name, w).values
    w2 = w.clone()
    w2[2, 40] = 50.0  # row 2, block 1 (inputs 32..63)
    changed = (quantize(type_name, w2).values != base)
    changed[2, 40] = False
    rows, cols = torch.nonzero(changed, as_tuple=True)
    assert rows.numel() > 0  # the new maximum rescales its block
    assert set(rows.tolist()) == {2} and 32 <= cols.min() and cols.max() < 64


def test_a_row_length_not_a_multiple_of_the_block_is_an_error_naming_tensor_and_fix():
    t = build(type="Q5_1")
    info = WeightInfo.linear("model.layers.0.mlp.down_proj.weight", (8, 40))
    with pytest.raises(RunError) as exc:
        t.quantize_tensor(info, torch.randn(8, 40))
    msg = str(exc.value)
    assert "model.layers.0.mlp.down_proj.weight" in msg and "40 inputs" in msg
    assert "32" in msg and "kind: rtn" in msg


def test_type_is_checked_and_case_insensitive():
    comp = TRANSFORMS.get("gguf")
    assert comp.make_config({"type": "q8_0"}).type == "Q8_0"
    with pytest.raises(ConfigError, match="K-quants"):
        comp.make_config({"type": "Q4_K"})


@pytest.mark.slow
@pytest.mark.parametrize("modules, extra", [
    ("decoder", set()), ("all", {"lm_head.weight", "model.embed_tokens.weight"})])
def test_apply_quantizes_the_decoder_matrices_and_matches_streaming(tiny_checkpoint, modules,
                                                                    extra):
    from safetensors.torch import load_file

    model, tok = load_causal_lm(tiny_checkpoint)
    ref, _ = load_causal_lm(tiny_checkpoint)
    t = build(type="Q4_0", modules=modules)
    t.apply(model, TransformContext(tiny_checkpoint, tok))
    got = {r.name: r.value for r in t.readback(model) if r.quantized}
    decoder = {n for n, p in model.named_parameters() if ".layers." in n and p.ndim == 2}
    assert got.keys() == decoder | extra
    sd = load_file(str(tiny_checkpoint / "model.safetensors"))
    roles = checkpoint_roles(tiny_checkpoint)
    for name in got:
        assert torch.equal(got[name], t.quantize_tensor(roles[name], sd[name]).values), name
    norms = [n for n, p in model.named_parameters() if p.ndim == 1]
    assert norms and all(torch.equal(dict(model.named_parameters())[n],
                                     dict(ref.named_parameters())[n]) for n in norms)
    ids = torch.tensor([[2, 5, 6, 7, 8]])
    with torch.no_grad():
        assert not torch.equal(model(ids).logits, ref(ids).logits)


@pytest.mark.slow
def test_code_flip_rate_streams_gguf_codes(tiny_checkpoint, variant):
    from unlearnspec.transforms.weightspace import code_flip_rate, update_retention

    subject = variant(tiny_checkpoint, lambda n, w: w + 0.05 * torch.sign(w)
                      if ".layers." in n and w.ndim == 2 else w)
    t = build(type="Q8_0")
    flips = code_flip_rate(tiny_checkpoint, subject, t)
    gamma = update_retention(tiny_checkpoint, subject, t)
    assert 0 < flips.value <= 1
    assert flips.n == 2 * (4 * 32 * 32 + 3 * 32 * 64)  # every decoder weight of 2 layers
    assert flips.details["coverage"]["decoder"]["share"] == 1.0
    assert 0.5 < gamma.value < 1.5  # a 0.05 step is far above Q8_0's step: it survives
