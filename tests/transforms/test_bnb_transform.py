"""The `bnb` transform on the CPU: int8 (LLM.int8), NF4 and FP4 through transformers'
BitsAndBytesConfig, read back exactly, and guarded against bitsandbytes' AVX512-BF16 repack."""
from __future__ import annotations

import json

import pytest
import torch
from safetensors.torch import load_file

from unlearnspec.models.loading import load_causal_lm
from unlearnspec.transforms.base import TransformContext
from unlearnspec.transforms.bnb import BnbTransform
from unlearnspec.transforms.readback import logits_gap, readback_model, rebuild_float
from unlearnspec.transforms.registry import BnbConfig
from unlearnspec.transforms.roles import WeightInfo, checkpoint_roles

bnb = pytest.importorskip("bitsandbytes", reason="the bnb extra is not installed")
pytestmark = pytest.mark.slow
IDS = torch.tensor([[2, 5, 6, 7, 8, 9, 10, 11]])


@pytest.fixture(scope="module", params=["nf4", "fp4", "int8"])
def quantized(request, tiny64):
    t = BnbTransform(BnbConfig(mode=request.param))
    model, tok = load_causal_lm(tiny64)
    q = t.apply(model, TransformContext(tiny64, tok))
    before_forward = {r.name: r.value.clone() for r in t.readback(q)}
    with torch.no_grad():
        q(IDS)
    return request.param, t, q, before_forward


def test_quantizes_every_decoder_linear_with_bitsandbytes(quantized):
    mode, t, q, _ = quantized
    layer = bnb.nn.Linear8bitLt if mode == "int8" else bnb.nn.Linear4bit
    names = [n for n, m in q.named_modules() if isinstance(m, layer)]
    assert len(names) == 14 and all(".layers." in n for n in names)
    if mode != "int8":
        assert {m.weight.quant_state.quant_type for m in q.modules()
                if isinstance(m, layer)} == {mode}


def test_readback_survives_a_forward_pass(quantized):
    """bitsandbytes repacks 4-bit weights on the first CPU forward when AVX512-BF16 is there;
    the transform turns that off, so readback after a forward equals readback before."""
    mode, t, q, before = quantized
    after = {r.name: r.value for r in t.readback(q)}
    assert all(torch.equal(before[k], after[k]) for k in before)
    if mode != "int8":
        assert not any(getattr(m, "support_avx512bf16_for_cpu", False) for m in q.modules())


def test_streaming_quantize_tensor_matches_the_loaded_model(quantized, tiny64):
    mode, t, q, _ = quantized
    sd = load_file(str(tiny64 / "model.safetensors"))
    rb = {r.name: r for r in t.readback(q)}
    roles = checkpoint_roles(tiny64)
    for name, w in sd.items():
        qt = t.quantize_tensor(roles[name], w) if name in roles else None
        assert (qt is not None) == rb[name].quantized, name
        if qt is not None:
            assert torch.equal(qt.values, rb[name].value), name
            assert qt.codes.shape == w.shape


def test_logits_match_a_float_model_rebuilt_from_the_readback(quantized, tiny64):
    mode, t, q, _ = quantized
    rebuilt = rebuild_float(tiny64, readback_model(q))
    plain, _ = load_causal_lm(tiny64)
    gap = logits_gap(q, rebuilt, IDS)
    # 4-bit kernels dequantize and run in float32: exact, and far closer than the unquantized
    # model. LLM.int8 also rounds activations to int8 (its error is then as large as the
    # weights' own), so only close.
    if mode == "int8":
        assert gap <= 2e-2
    else:
        assert gap <= 1e-6
        assert logits_gap(q, plain, IDS) > 1e-3


def test_double_quant_changes_only_the_scales_not_the_codes(tiny64):
    w = load_file(str(tiny64 / "model.safetensors"))["model.layers.0.mlp.up_proj.weight"]
    info = WeightInfo.linear("model.layers.0.mlp.up_proj.weight", w.shape)
    a = BnbTransform(BnbConfig(mode="nf4")).quantize_tensor(info, w)
    b = BnbTransform(BnbConfig(mode="nf4", double_quant=True)).quantize_tensor(info, w)
    assert torch.equal(a.codes, b.codes)
    assert int(a.codes.min()) >= 0 and int(a.codes.max()) <= 15


def test_missing_bitsandbytes_names_the_extra(monkeypatch):
    import sys

    from unlearnspec.errors import MissingExtraError

    monkeypatch.setitem(sys.modules, "bitsandbytes", None)  # simulates the package missing
    with pytest.raises(MissingExtraError, match=r"unlearnspec\[bnb\]"):
        BnbTransform(BnbConfig()).quantize_tensor(
            WeightInfo.linear("model.layers.0.mlp.up_proj.weight", (4, 4)), torch.ones(4, 4))


def test_prequantized_bnb_checkpoint_reads_back_what_was_saved(tiny64, tmp_path):
    """A shipped NF4 artifact (saved after a forward pass) reloads to the same weights."""
    from unlearnspec.transforms.bnb import disable_cpu_repack

    t = BnbTransform(BnbConfig(mode="nf4"))
    model, tok = load_causal_lm(tiny64)
    q = t.apply(model, TransformContext(tiny64, tok))
    with torch.no_grad():
        q(IDS)
    q.save_pretrained(tmp_path / "nf4")
    tok.save_pretrained(tmp_path / "nf4")
    shipped, _ = load_causal_lm(tmp_path / "nf4", device_map="cpu")
    repackable = any(getattr(m, "support_avx512bf16_for_cpu", False) for m in shipped.modules())
    if repackable:  # this CPU has AVX512-BF16: unguarded readback is refused, not garbage
        from unlearnspec.errors import RunError

        with pytest.raises(RunError, match="repacked for AVX512-BF16"):
            list(readback_model(shipped))
    disable_cpu_repack(shipped)
    with torch.no_grad():
        shipped(IDS)
    want = {r.name: r.value for r in t.readback(q)}
    got = {r.name: r.value for r in readback_model(shipped)}
    assert want.keys() == got.keys()
    assert all(torch.equal(want[k], got[k]) for k in want)


def test_weight_metrics_stream_bnb_codes(tiny64, variant):
    from unlearnspec.transforms.weightspace import code_flip_rate, update_retention

    g = torch.Generator().manual_seed(0)
    # additive noise far below NF4's step (a uniform rescale would survive: scales absorb it)
    small = variant(tiny64, lambda n, w: w + 1e-5 * (2 * torch.rand(w.shape, generator=g) - 1)
                    if ".layers." in n and w.ndim == 2 else w)
    large = variant(tiny64, lambda n, w: w + 0.05 * torch.sign(w) if ".layers." in n else w)
    nf4 = BnbTransform(BnbConfig(mode="nf4"))
    tiny_flip = code_flip_rate(tiny64, small, nf4)
    big_flip = code_flip_rate(tiny64, large, nf4)
    assert tiny_flip.details["compared"] == "codes" and tiny_flip.n == big_flip.n > 0
    assert tiny_flip.value < 0.01 < 0.5 < big_flip.value
    # on weights not on the NF4 grid, rounding keeps a tiny update on average (γ near 1,
    # noisily): only grid-aligned targets undo it (see test_weightspace.py)
    assert 0.5 < update_retention(tiny64, large, nf4).value < 1.5


def test_importing_bitsandbytes_does_not_flood_the_run_with_torch_deprecations() -> None:
    # a fresh interpreter: bitsandbytes' import compiles its CPU ops, which imports torch
    # modules that warn 14 times about torch.jit.script_method (the user cannot act on it)
    import subprocess
    import sys

    done = subprocess.run([sys.executable, "-W", "always", "-c",
                           "from unlearnspec.transforms.bnb import _bnb; _bnb()"],
                          capture_output=True, text=True, check=True)
    assert "script_method" not in done.stderr, done.stderr


def test_fp4_is_exactly_what_load_in_4bit_gives():
    """The paper's code quantizes with BitsAndBytesConfig(load_in_4bit=True): FP4, float32
    compute, no double quantization. `{kind: bnb, mode: fp4}` must be that, field by field."""
    from transformers import BitsAndBytesConfig

    from unlearnspec.transforms.registry import TRANSFORMS

    t = BnbTransform(TRANSFORMS.get("bnb").make_config({"mode": "fp4"}))
    assert t._hf_config().to_dict() == BitsAndBytesConfig(load_in_4bit=True).to_dict()
    s = t.settings()
    assert (s["bnb_4bit_quant_type"], s["bnb_4bit_compute_dtype"],
            s["bnb_4bit_use_double_quant"], s["load_in_4bit"]) == ("fp4", "float32", False, True)


def test_settings_record_every_field_of_the_config_it_loads_with():
    from transformers import BitsAndBytesConfig

    for mode, hf in (("int8", BitsAndBytesConfig(load_in_8bit=True)),
                     ("nf4", BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="nf4"))):
        s = BnbTransform(BnbConfig(mode=mode)).settings()
        assert set(s) == set(hf.to_dict()), mode
        json.dumps(s)  # JSON-ready: dtypes as names
