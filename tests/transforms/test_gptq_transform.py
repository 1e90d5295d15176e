"""GPTQ and AWQ through GPTQModel on the CPU, calibrated on texts from the spec: the shipped
artifact is read back weight by weight, and its logits match a float model rebuilt from that
readback (for AWQ only when the rescaled norms are copied too)."""
from __future__ import annotations

import random
import sys

import pytest
import torch

from unlearnspec.errors import MissingExtraError, RunError
from unlearnspec.models.loading import load_causal_lm
from unlearnspec.transforms.base import TransformContext
from unlearnspec.transforms.gptq import AwqTransform, GptqTransform
from unlearnspec.transforms.readback import logits_gap, readback_model, rebuild_float
from unlearnspec.transforms.registry import GptqConfig

IDS = torch.tensor([[2, 5, 6, 7, 8, 9, 10, 11]])
CONFIG = GptqConfig(bits=4, group_size=32, n_samples=8, seq_len=64)


WORDS = ("the a of and is was to in on at name city river color year alpha beta gamma delta "
         "red blue green north south born lives works likes owns").split()


def calibration() -> list[str]:
    rng = random.Random(0)
    return [" ".join(rng.choice(WORDS) for _ in range(40)) for _ in range(8)]


def needs_gptqmodel():
    from unlearnspec.transforms.gptq import _gptqmodel

    try:
        return _gptqmodel()  # imports it the way the transform does (worker count set)
    except MissingExtraError:
        pytest.skip("the gptq extra is not installed (pip install --no-deps gptqmodel==7.7.0 "
                    "and its requirements, see docs/transforms.md)")


@pytest.fixture(scope="module", params=[GptqTransform, AwqTransform], ids=["gptq", "awq"])
def quantized(request, tiny64):
    needs_gptqmodel()
    t = request.param(CONFIG)
    model, tok = load_causal_lm(tiny64)
    q = t.apply(model, TransformContext(tiny64, tok, calibration=calibration()))
    return t, q


@pytest.mark.slow
def test_quantizes_every_decoder_linear(quantized):
    t, q = quantized
    names = [r.name for r in t.readback(q) if r.quantized]
    assert len(names) == 14 and all(".layers." in n for n in names)


@pytest.mark.slow
def test_logits_match_a_float_model_rebuilt_from_the_readback(quantized, tiny64):
    t, q = quantized
    rb = list(t.readback(q))
    gap = logits_gap(q, rebuild_float(tiny64, rb), IDS)
    plain, _ = load_causal_lm(tiny64)
    # the quantized kernels run in bfloat16 here: agreement to its precision, and much
    # closer than the unquantized model
    assert gap < 1.5e-2
    assert logits_gap(q, plain, IDS) > 2 * gap
    only_linears = rebuild_float(tiny64, [r for r in rb if r.quantized])
    if isinstance(t, AwqTransform):  # AWQ folds its scales into the norms: they must be copied
        assert logits_gap(q, only_linears, IDS) > 2 * gap


@pytest.mark.slow
@pytest.mark.parametrize("method", ["gptq", "awq"])
def test_prequantized_checkpoint_loads_and_reads_back(method, tiny64, tmp_path):
    """A user's shipped GPTQ/AWQ artifact, loaded through transformers like any model entry
    (GPTQ checkpoints need `optimum` besides gptqmodel)."""
    gm = needs_gptqmodel()
    if method == "gptq":
        pytest.importorskip("optimum", reason="transformers loads GPTQ checkpoints via optimum")
    art = tmp_path / f"{method}-artifact"
    kw = {"method": method} if method == "awq" else {}
    qm = gm.GPTQModel.load(str(tiny64), gm.QuantizeConfig(bits=4, group_size=32, **kw),
                           device="cpu")
    tok = load_causal_lm(tiny64)[1]
    qm.quantize([{"input_ids": ids, "attention_mask": [1] * len(ids)} for ids in
                 (tok(t)["input_ids"] for t in calibration())])
    qm.save(str(art))
    shipped, _ = load_causal_lm(art)
    rb = list(readback_model(shipped))
    assert sum(r.quantized for r in rb) == 14
    gap = logits_gap(shipped, rebuild_float(tiny64, rb), IDS)
    assert gap < 1.5e-2
    assert logits_gap(shipped, load_causal_lm(tiny64)[0], IDS) > 2 * gap


@pytest.mark.slow
def test_weight_metrics_quantize_whole_models_for_awq(tiny64, variant):
    needs_gptqmodel()
    from unlearnspec.transforms.weightspace import code_flip_rate

    subject = variant(tiny64, lambda n, w: w + 0.05 * torch.sign(w)
                      if ".layers." in n and w.ndim == 2 else w)
    r = code_flip_rate(tiny64, subject, AwqTransform(CONFIG),
                       calibration=calibration())
    assert r.ok and r.n == sum(p.numel() for n, p in load_causal_lm(tiny64)[0]
                               .named_parameters() if ".layers." in n and p.ndim == 2)
    assert r.value > 0.5 and r.details["compared"] == "dequantized values"


def test_no_calibration_texts_is_a_clear_error(tiny64, monkeypatch):
    # a stand-in module when gptqmodel is absent: these errors come before any use of it
    monkeypatch.setitem(sys.modules, "gptqmodel", sys.modules.get("gptqmodel", object()))
    model, tok = load_causal_lm(tiny64)
    with pytest.raises(RunError, match="gptq transform needs calibration texts.*calibration:"):
        GptqTransform(CONFIG).apply(model, TransformContext(tiny64, tok))


def test_awq_refuses_shapes_gptqmodel_would_crash_on(tiny_checkpoint, monkeypatch):
    # a stand-in module when gptqmodel is absent: these errors come before any use of it
    monkeypatch.setitem(sys.modules, "gptqmodel", sys.modules.get("gptqmodel", object()))
    model, tok = load_causal_lm(tiny_checkpoint)  # hidden size 32
    with pytest.raises(RunError, match="awq cannot quantize model.layers.0.self_attn.q_proj: "
                                       ".*multiple of 64 outputs and it has 32"):
        AwqTransform(CONFIG).apply(model, TransformContext(tiny_checkpoint, tok,
                                                           calibration=["a b"]))
    with pytest.raises(RunError, match="group_size 48 does not divide its 32 inputs"):
        GptqTransform(GptqConfig(group_size=48)).apply(
            model, TransformContext(tiny_checkpoint, tok, calibration=["a b"]))


def test_missing_gptqmodel_names_the_extra(tiny64, monkeypatch):
    monkeypatch.setitem(sys.modules, "gptqmodel", None)  # simulates the package missing
    model, tok = load_causal_lm(tiny64)
    with pytest.raises(MissingExtraError, match=r"unlearnspec\[gptq\]"):
        AwqTransform(CONFIG).apply(model, TransformContext(tiny64, tok, calibration=["a"]))


@pytest.mark.slow
def test_no_gptqmodel_worker_thread_outlives_the_transform(quantized):
    """GPTQModel's device pool runs torch ops in threads of its own; while they live, every
    later op of the process waits on OpenMP wake-ups (measured 1.8x slower on two cores), so
    the transform ends them. The import-time stream pool's worker is not one of them."""
    import threading

    import gptqmodel

    assert gptqmodel._DEVICE_THREAD_POOL is None
    workers = sorted(t.name for t in threading.enumerate() if t.name.startswith("DPWorker-"))
    assert workers in ([], ["DPWorker-cpu#0"])
