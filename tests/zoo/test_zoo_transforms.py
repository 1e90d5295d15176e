"""Every transform on every zoo case either quantizes (nearly) every decoder weight, whatever
module holds it, and reads back what the quantized model computes with, or refuses with an
error naming what it cannot handle. Coverage is measured here from the weights themselves
(a decoder weight = any tensor of 2 or more dimensions inside a decoder block), not from the
transform's own notion of what it selects."""
from __future__ import annotations

import re

import pytest

from tests.zoo.cases import params

DECODER = re.compile(r"(^|\.)(layers|h)\.\d+\.")
MIN_COVERAGE = 0.95  # share of decoder weights (by count) a transform must change
IDS = [[5, 9, 13, 17, 21, 25, 29, 33, 37, 41]]

RTN = {  # name -> RtnConfig options; CI runs the first three everywhere
    "rtn4": {"bits": 4},
    "rtn8-paper": {"bits": 8, "grid": "paper"},
    "rtn4-g32-zp": {"bits": 4, "group_size": 32, "zero_point": True},
    "rtn3-tensor": {"bits": 3, "group_size": 0},
    "rtn4-g16-clamped": {"bits": 4, "group_size": 16, "grid": "paper_clamped"},
    "rtn2-head": {"bits": 2, "modules": "decoder+head"},
}


def decoder_weights(model) -> dict:
    """Decoder tensors of a float model by name, each counted once (tied tensors share one)."""
    seen, out = set(), {}
    for name, p in model.named_parameters():
        if p.ndim >= 2 and DECODER.search(name) and id(p) not in seen:
            seen.add(id(p))
            out[name] = p.detach().clone()
    return out


def coverage(original: dict, readback: dict) -> tuple[float, list[str]]:
    """(share of decoder weights whose readback differs from the original, the names of
    those left unchanged or missing). A readback tensor of another shape (a Conv1D weight
    read back transposed) counts as not covered: weight metrics would misread it."""
    total = sum(w.numel() for w in original.values())
    changed, untouched = 0, []
    for name, w in original.items():
        r = readback.get(name)
        if r is not None and r.shape == w.shape and not bool((r.float() == w.float()).all()):
            changed += w.numel()
        else:
            untouched.append(name)
    return changed / total, untouched


def readback_parity(zoo, case, transform, q) -> float:
    import torch

    from unlearnspec.transforms.readback import logits_gap, rebuild_float

    rebuilt = rebuild_float(zoo.checkpoint(case), transform.readback(q))
    return logits_gap(q, rebuilt, torch.tensor(IDS))


def _ctx(zoo, case, tok, calibration=None):
    from unlearnspec.transforms.base import TransformContext

    return TransformContext(zoo.checkpoint(case), tok, calibration=calibration)


def _rtn_params() -> list:
    from tests.zoo.cases import full

    names = list(RTN) if full() else list(RTN)[:3]
    return [pytest.param(n, id=n) for n in names]


@pytest.mark.slow
@pytest.mark.zoo_capability("rtn")
@pytest.mark.parametrize("rtn", _rtn_params())
@pytest.mark.parametrize("case", params("rtn"))
def test_rtn_quantizes_every_decoder_weight(zoo, case, rtn) -> None:
    from unlearnspec.errors import RunError
    from unlearnspec.transforms.registry import RtnConfig
    from unlearnspec.transforms.rtn import RtnTransform

    model, tok = zoo.fresh(case)
    original = decoder_weights(model)
    t = RtnTransform(RtnConfig(**RTN[rtn]))
    try:
        q = t.apply(model, _ctx(zoo, case, tok))
    except RunError as exc:  # a refusal must say which tensor and what to write instead
        assert "rtn cannot quantize" in str(exc) and "group_size" in str(exc)
        return
    share, untouched = coverage(original, {r.name: r.value for r in t.readback(q)})
    assert share >= MIN_COVERAGE, f"{share:.0%} changed; untouched: {untouched[:4]}"
    assert readback_parity(zoo, case, t, q) == 0.0


@pytest.mark.slow
@pytest.mark.zoo_capability("bnb")
@pytest.mark.parametrize("mode", ["int8", "nf4", "fp4"])
@pytest.mark.parametrize("case", params("bnb"))
def test_bnb_quantizes_every_decoder_weight(zoo, case, mode) -> None:
    pytest.importorskip("bitsandbytes", reason="the bnb extra is not installed")
    from unlearnspec.transforms.bnb import BnbTransform
    from unlearnspec.transforms.registry import BnbConfig

    from tests.zoo.cases import refused
    from unlearnspec.errors import RunError

    model, tok = zoo.fresh(case)
    original = decoder_weights(model)
    t = BnbTransform(BnbConfig(mode=mode))
    if refused("bnb", case):
        with pytest.raises(RunError, match=r"would leave .* in float: .*kind: rtn"):
            t.apply(model, _ctx(zoo, case, tok))
        return
    q = t.apply(model, _ctx(zoo, case, tok))
    share, untouched = coverage(original, {r.name: r.value for r in t.readback(q)})
    assert share >= MIN_COVERAGE, f"{share:.0%} changed; untouched: {untouched[:4]}"
    # 4-bit kernels dequantize and compute in float32; LLM.int8 also rounds activations to
    # int8 (measured up to 2.7e-2 on Phi-3), so only close
    assert readback_parity(zoo, case, t, q) <= (5e-2 if mode == "int8" else 1e-5)


@pytest.mark.slow
@pytest.mark.zoo_capability("dtype")
@pytest.mark.parametrize("dtype", ["bfloat16", "float16"])
@pytest.mark.parametrize("case", params("dtype"))
def test_dtype_casts_every_weight(zoo, case, dtype) -> None:
    import torch

    from unlearnspec.transforms.dtype import DtypeTransform
    from unlearnspec.transforms.registry import DtypeConfig

    model, tok = zoo.fresh(case)
    original = decoder_weights(model)
    t = DtypeTransform(DtypeConfig(dtype=dtype))
    q = t.apply(model, _ctx(zoo, case, tok))
    assert {p.dtype for p in q.parameters()} == {getattr(torch, dtype)}
    share, _ = coverage(original, {r.name: r.value for r in t.readback(q)})
    assert share >= MIN_COVERAGE
    with torch.no_grad():
        assert torch.isfinite(q(torch.tensor(IDS)).logits.float()).all()


def _zoo_calibration(zoo) -> list[str]:
    return zoo.corpus.raw("retain")[:64]


def _gptq_awq_check(zoo, case, method: str) -> None:
    """GPTQ / AWQ through GPTQModel: every decoder weight is quantized and read back in the
    checkpoint's names and layout, and a float model rebuilt from the readback computes what
    the quantized model does; or the transform refuses the model before GPTQModel starts."""
    from tests.zoo.cases import refused
    from unlearnspec.errors import MissingExtraError, RunError
    from unlearnspec.transforms.gptq import AwqTransform, GptqTransform, _gptqmodel
    from unlearnspec.transforms.registry import GptqConfig

    try:
        _gptqmodel()
    except MissingExtraError:
        pytest.skip("the gptq extra is not installed (see docs/transforms.md)")
    model, tok = zoo.fresh(case)
    original = decoder_weights(model)
    t = (GptqTransform if method == "gptq" else AwqTransform)(
        GptqConfig(bits=4, group_size=32, n_samples=8, seq_len=64, calibration="zoo"))
    ctx = _ctx(zoo, case, tok, calibration=_zoo_calibration(zoo))
    if refused(method, case):
        with pytest.raises(RunError, match=f"{method} cannot quantize .*use (gptq or )?rtn"):
            t.apply(model, ctx)
        return
    q = t.apply(model, ctx)
    share, untouched = coverage(original, {r.name: r.value for r in t.readback(q)})
    assert share >= MIN_COVERAGE, f"{share:.0%} changed; untouched: {untouched[:4]}"
    # GPTQModel's CPU kernels compute in bfloat16: agreement to its precision (as in
    # tests/transforms/test_gptq_transform.py)
    assert readback_parity(zoo, case, t, q) < 1.5e-2


@pytest.mark.slow
@pytest.mark.zoo_capability("gptq")
@pytest.mark.parametrize("case", params("gptq", heavy=True))
def test_gptq_quantizes_every_decoder_weight(zoo, case) -> None:
    _gptq_awq_check(zoo, case, "gptq")


@pytest.mark.slow
@pytest.mark.zoo_capability("awq")
@pytest.mark.parametrize("case", params("awq", heavy=True))
def test_awq_quantizes_every_decoder_weight(zoo, case) -> None:
    _gptq_awq_check(zoo, case, "awq")
