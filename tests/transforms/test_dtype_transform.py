"""Precision casts as transforms: the model computes in the cast dtype, and readback gives the
rounded weights it computes with."""
from __future__ import annotations

import pytest
import torch
from safetensors.torch import load_file

from unlearnspec.models.loading import load_causal_lm
from unlearnspec.transforms.base import TransformContext
from unlearnspec.transforms.dtype import DtypeTransform
from unlearnspec.transforms.readback import logits_gap, rebuild_float
from unlearnspec.transforms.registry import DtypeConfig
from unlearnspec.transforms.roles import WeightInfo

IDS = torch.tensor([[2, 5, 6, 7, 8]])


@pytest.mark.parametrize("dtype", ["bfloat16", "float16"])
def test_cast_model_matches_streamed_cast_and_rebuilt_model(tiny_checkpoint, dtype):
    t = DtypeTransform(DtypeConfig(dtype=dtype))
    model, tok = load_causal_lm(tiny_checkpoint)
    q = t.apply(model, TransformContext(tiny_checkpoint, tok))
    assert all(p.dtype == getattr(torch, dtype) for p in q.parameters())
    rb = {r.name: r for r in t.readback(q)}
    sd = load_file(str(tiny_checkpoint / "model.safetensors"))
    for name, w in sd.items():
        info = WeightInfo.linear(name, w.shape)  # a cast treats every tensor alike
        assert torch.equal(t.quantize_tensor(info, w).values, rb[name].value)
    rebuilt = rebuild_float(tiny_checkpoint, rb.values(), dtype=getattr(torch, dtype))
    assert logits_gap(q, rebuilt, IDS) == 0.0


def test_codes_are_bit_patterns_so_equal_codes_mean_equal_values():
    t = DtypeTransform(DtypeConfig(dtype="bfloat16"))
    w = torch.tensor([[1.0, 1.0 + 2**-10, 1.0 + 2**-6]])
    q = t.quantize_tensor(WeightInfo.linear("x.weight", w.shape), w)
    assert q.codes[0, 0] == q.codes[0, 1]  # 2^-10 is below bfloat16's resolution at 1.0
    assert q.codes[0, 0] != q.codes[0, 2]
    assert t.quantize_tensor(WeightInfo.linear("ids", (3,)), torch.arange(3)) is None  # integer tensors are left alone
