"""The `rtn` transform on a real tiny Llama: which tensors it touches, that streaming a
checkpoint and quantizing a loaded model agree, and its errors."""
from __future__ import annotations

import pytest
import torch
from safetensors.torch import load_file

from unlearnspec.errors import RunError
from unlearnspec.models.loading import load_causal_lm
from unlearnspec.registry import ConfigError
from unlearnspec.transforms.base import TransformContext
from unlearnspec.transforms.registry import TRANSFORMS, RtnConfig
from unlearnspec.transforms.roles import WeightInfo, checkpoint_roles
from unlearnspec.transforms.rtn import RtnTransform


def build(kind: str, **options):
    comp = TRANSFORMS.get(kind)
    return comp.load()(comp.make_config(options))


def quantized_names(model, t):
    return {r.name for r in t.readback(model) if r.quantized}


@pytest.mark.parametrize("modules, extra", [
    ("decoder", set()), ("decoder+head", {"lm_head.weight"}),
    ("all", {"lm_head.weight", "model.embed_tokens.weight"}),
])
def test_modules_option_selects_decoder_linears_head_and_embeddings(tiny_checkpoint, modules,
                                                                    extra):
    model, tok = load_causal_lm(tiny_checkpoint)
    t = build("rtn", bits=4, modules=modules)
    t.apply(model, TransformContext(tiny_checkpoint, tok))
    names = quantized_names(model, t)
    decoder = {n for n, p in model.named_parameters() if ".layers." in n and p.ndim == 2}
    assert names == decoder | extra
    assert len(decoder) == 14  # 7 linears x 2 layers; norms are never quantized


def test_apply_matches_streaming_quantize_tensor_exactly(tiny_checkpoint):
    sd = load_file(str(tiny_checkpoint / "model.safetensors"))
    model, tok = load_causal_lm(tiny_checkpoint)
    t = build("rtn", bits=3, group_size=8, zero_point=True, modules="all")
    t.apply(model, TransformContext(tiny_checkpoint, tok))
    got = {r.name: r.value for r in t.readback(model) if r.quantized}
    roles = checkpoint_roles(tiny_checkpoint)
    streamed = {k: q.values for k, v in sd.items()
                if k in roles and (q := t.quantize_tensor(roles[k], v)) is not None}
    assert got.keys() == streamed.keys()
    for k in got:
        assert torch.equal(got[k], streamed[k]), k


def test_apply_changes_the_models_outputs_and_untouched_weights_stay(tiny_checkpoint):
    model, tok = load_causal_lm(tiny_checkpoint)
    ref, _ = load_causal_lm(tiny_checkpoint)
    ids = torch.tensor([[2, 5, 6, 7, 8]])
    t = build("rtn", bits=2)
    t.apply(model, TransformContext(tiny_checkpoint, tok))
    with torch.no_grad():
        assert not torch.allclose(model(ids).logits, ref(ids).logits)
    refp = dict(ref.named_parameters())
    for r in t.readback(model):
        if not r.quantized:
            assert torch.equal(r.value, refp[r.name]), r.name


def test_apply_is_deterministic(tiny_checkpoint):
    outs = []
    for _ in range(2):
        model, tok = load_causal_lm(tiny_checkpoint)
        build("rtn", bits=4, group_size=16).apply(model, TransformContext(tiny_checkpoint, tok))
        outs.append(model.state_dict())
    assert all(torch.equal(outs[0][k], outs[1][k]) for k in outs[0])


def test_group_size_that_does_not_divide_a_layer_names_the_tensor(tiny_checkpoint):
    model, tok = load_causal_lm(tiny_checkpoint)
    with pytest.raises(RunError, match=r"rtn cannot quantize model\.layers\.0\..*group_size 24"):
        build("rtn", group_size=24).apply(model, TransformContext(tiny_checkpoint, tok))


@pytest.mark.parametrize("options, key", [({"bits": 9}, "bits"), ({"bitz": 4}, "bitz"),
                                          ({"grid": "asym"}, "grid"),
                                          ({"modules": "head"}, "modules")])
def test_bad_options_are_config_errors_naming_the_option(options, key):
    with pytest.raises(ConfigError) as info:
        TRANSFORMS.get("rtn").make_config(options)
    assert info.value.key == key


def test_registry_lists_every_backend_under_the_entry_point_group():
    assert {"rtn", "bnb", "gptq", "awq", "dtype"} <= set(TRANSFORMS.names())
    assert TRANSFORMS.group == "unlearnspec.transforms"
    assert isinstance(build("rtn"), RtnTransform) and build("rtn").VERSION


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device; none here")
def test_cuda_matches_cpu():
    w = torch.randn(64, 128, generator=torch.Generator().manual_seed(0))
    t = RtnTransform(RtnConfig(bits=4, group_size=32))
    info = WeightInfo.linear("model.layers.0.mlp.up_proj.weight", w.shape)
    cpu = t.quantize_tensor(info, w)
    gpu = t.quantize_tensor(info, w.cuda())
    assert torch.equal(cpu.codes, gpu.codes.cpu())
    torch.testing.assert_close(cpu.values, gpu.values.cpu(), rtol=1e-6, atol=0)
