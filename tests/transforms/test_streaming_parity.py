"""Streamed = in-model: what the weight metrics compute from checkpoint tensors
(`quantize_tensor`) is, tensor by tensor, what the quantized model holds, on every
architecture (GPT-2's Conv1D, Mixtral's fused experts saved as per-expert tensors, ...)."""
from __future__ import annotations

import pytest
import torch
from safetensors.torch import load_file

from arch_helpers import ARCHS, load_arch
from unlearnspec.transforms.base import TransformContext
from unlearnspec.transforms.registry import BnbConfig, RtnConfig
from unlearnspec.transforms.roles import checkpoint_roles
from unlearnspec.transforms.rtn import RtnTransform


@pytest.mark.parametrize("arch", ARCHS)
@pytest.mark.parametrize("options", [dict(bits=4), dict(bits=3, group_size=16, zero_point=True),
                                     dict(bits=8, modules="all")])
def test_rtn_streamed_tensors_equal_the_quantized_models(arch_checkpoints, tmp_path, arch,
                                                          options):
    path = arch_checkpoints[arch]
    t = RtnTransform(RtnConfig(**options))
    q = t.apply(load_arch(path), TransformContext(path, None))
    q.save_pretrained(tmp_path / "q")  # back in the checkpoint's own layout and names
    saved = load_file(str(tmp_path / "q" / "model.safetensors"))
    original = load_file(str(path / "model.safetensors"))
    roles = checkpoint_roles(path)
    compared = 0
    for name, w in original.items():
        info = roles.get(name)
        streamed = t.quantize_tensor(info, w) if info is not None else None
        if streamed is None:
            assert torch.equal(saved[name], w), f"{name} changed but is not streamed"
            continue
        assert torch.equal(streamed.values, saved[name]), name
        # codes: the in-model weight sits on the same grid points (rtn is idempotent)
        assert torch.equal(t.quantize_tensor(info, saved[name]).codes, streamed.codes), name
        compared += w.numel()
    assert compared >= sum(i.numel for i in roles.values() if i.decoder)


@pytest.mark.parametrize("arch", ["gpt2", "llama"])
@pytest.mark.parametrize("mode", ["nf4", "fp4", "int8"])
def test_bnb_streamed_tensors_equal_the_quantized_models(arch_checkpoints, arch, mode):
    pytest.importorskip("bitsandbytes")
    from unlearnspec.transforms.bnb import BnbTransform

    path = arch_checkpoints[arch]
    t = BnbTransform(BnbConfig(mode=mode))
    q = t.apply(load_arch(path), TransformContext(path, None))
    rb = {r.name: r for r in t.readback(q)}
    original = load_file(str(path / "model.safetensors"))
    roles = checkpoint_roles(path)
    decoder = 0
    for name, w in original.items():
        info = roles.get(name)
        streamed = t.quantize_tensor(info, w) if info is not None else None
        assert (streamed is not None) == rb[name].quantized, name
        if streamed is not None:
            assert streamed.values.shape == w.shape  # Conv1D: back in [in, out]
            assert torch.equal(streamed.values, rb[name].value), name
            decoder += w.numel()
    assert decoder == sum(i.numel for i in roles.values() if i.decoder)


def test_bnb_gpt2_readback_rebuilds_the_quantized_models_logits(arch_checkpoints):
    pytest.importorskip("bitsandbytes")
    from unlearnspec.transforms.bnb import BnbTransform
    from unlearnspec.transforms.readback import logits_gap, rebuild_float

    path = arch_checkpoints["gpt2"]
    t = BnbTransform(BnbConfig(mode="fp4"))
    q = t.apply(load_arch(path), TransformContext(path, None))
    rebuilt = rebuild_float(path, t.readback(q))
    ids = torch.tensor([[3, 5, 7, 11, 13]])
    assert logits_gap(q, rebuilt, ids) <= 1e-5
    assert logits_gap(q, load_arch(path), ids) > 1e-4  # and the quantization did something
