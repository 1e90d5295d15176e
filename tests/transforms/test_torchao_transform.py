"""`kind: torchao` on a real tiny Llama: int8 weight-only is torchao's own quantize_ on the
decoder's linears (same logits, faithful readback, streaming parity, coverage), and int4 on a
machine without CUDA is an error saying why and what to use."""
from __future__ import annotations

import pytest
import torch

pytest.importorskip("torchao")

from unlearnspec.errors import RunError  # noqa: E402
from unlearnspec.models.loading import load_causal_lm  # noqa: E402
from unlearnspec.registry import ConfigError  # noqa: E402
from unlearnspec.transforms.base import TransformContext  # noqa: E402
from unlearnspec.transforms.registry import TRANSFORMS  # noqa: E402
from unlearnspec.transforms.roles import checkpoint_roles  # noqa: E402

pytestmark = pytest.mark.slow  # quantizes and runs a real tiny model

IDS = torch.tensor([[2, 5, 6, 7, 8, 9]])


def build(**options):
    comp = TRANSFORMS.get("torchao")
    return comp.load()(comp.make_config(options))


def decoder_linears(model):
    return {n.rsplit(".", 1)[0] for n, p in model.named_parameters()
            if ".layers." in n and p.ndim == 2}


def test_int8_is_torchaos_own_quantize_on_the_decoder_linears(tiny_checkpoint):
    from torchao.quantization import Int8WeightOnlyConfig, quantize_

    model, tok = load_causal_lm(tiny_checkpoint)
    t = build(mode="int8")
    model = t.apply(model, TransformContext(tiny_checkpoint, tok))
    direct, _ = load_causal_lm(tiny_checkpoint)
    chosen = decoder_linears(direct)
    quantize_(direct, Int8WeightOnlyConfig(), filter_fn=lambda m, fqn: fqn in chosen)
    with torch.no_grad():
        assert torch.equal(model(IDS).logits, direct(IDS).logits)
    quantized = {r.name for r in t.readback(model) if r.quantized}
    assert quantized == {f"{m}.weight" for m in chosen} and len(quantized) == 14
    assert type(model.lm_head.weight).__name__ == "Parameter"  # the head stays float
    w = model.model.layers[0].mlp.down_proj.weight
    assert w.qdata.dtype == torch.int8
    assert torch.equal(w.dequantize(), w.qdata.float() * w.scale.reshape(-1, 1))


def test_int8_readback_computes_what_the_quantized_model_does(tiny_checkpoint):
    from unlearnspec.transforms.readback import logits_gap, rebuild_float

    model, tok = load_causal_lm(tiny_checkpoint)
    t = build(mode="int8")
    model = t.apply(model, TransformContext(tiny_checkpoint, tok))
    rebuilt = rebuild_float(tiny_checkpoint, t.readback(model))
    assert logits_gap(model, rebuilt, IDS) < 1e-5
    fp, _ = load_causal_lm(tiny_checkpoint)
    assert logits_gap(model, fp, IDS) > 1e-5  # int8 did change the model


def test_int8_streams_the_same_values_and_codes_tensor_by_tensor(tiny_checkpoint):
    from safetensors.torch import load_file

    model, tok = load_causal_lm(tiny_checkpoint)
    t = build(mode="int8")
    model = t.apply(model, TransformContext(tiny_checkpoint, tok))
    got = {r.name: r.value for r in t.readback(model) if r.quantized}
    roles = checkpoint_roles(tiny_checkpoint)
    sd = load_file(str(tiny_checkpoint / "model.safetensors"))
    for name, value in got.items():
        q = t.quantize_tensor(roles[name], sd[name])
        assert torch.equal(q.values, value), name
        # scale = max|w| / 127.5, so the row's largest weight may round to -128
        assert -128 <= q.codes.min() and q.codes.max() <= 127 and q.codes.dtype == torch.int16
    assert t.quantize_tensor(roles["lm_head.weight"], sd["lm_head.weight"]) is None


def test_int8_coverage_is_the_whole_decoder(tiny_checkpoint):
    from unlearnspec.transforms.coverage import apply_measured

    model, tok = load_causal_lm(tiny_checkpoint)
    _, cov = apply_measured(build(mode="int8"), model, TransformContext(tiny_checkpoint, tok))
    assert cov.decoder_share == 1.0


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the error on a CPU-only machine")
def test_int4_without_cuda_is_an_error_naming_why_and_what_instead(tiny_checkpoint):
    model, tok = load_causal_lm(tiny_checkpoint)
    t = build(mode="int4")
    for call in (lambda: t.apply(model, TransformContext(tiny_checkpoint, tok)),
                 lambda: t.quantize_tensor(checkpoint_roles(tiny_checkpoint)[
                     "model.layers.0.mlp.up_proj.weight"], torch.randn(64, 32))):
        with pytest.raises(RunError) as exc:
            call()
        msg = str(exc.value)
        assert "no CPU kernel" in msg and "mode: int8" in msg and "kind: rtn" in msg


def test_int4_checks_the_group_size_divides_the_inputs(tiny_checkpoint):
    t = build(mode="int4", group_size=64)
    with pytest.raises(RunError, match="32 inputs are not a multiple of group_size 64"):
        t._check_shape("model.layers.0.self_attn.q_proj.weight", 32)


def test_options_are_checked():
    comp = TRANSFORMS.get("torchao")
    with pytest.raises(ConfigError, match="int4 or int8"):
        comp.make_config({"mode": "int2"})
    with pytest.raises(ConfigError, match="group_size"):
        comp.make_config({"mode": "int4", "group_size": 100})
