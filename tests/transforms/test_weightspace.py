"""code_flip_rate and update_retention on real checkpoints: the numbers that tell a user,
before any generation, whether quantization will undo an unlearning update."""
from __future__ import annotations

import json
import math
import shutil

import pytest
import torch
from safetensors.torch import load_file

from unlearnspec.errors import RunError
from unlearnspec.metrics.registry import METRICS
from unlearnspec.models.loading import load_causal_lm
from unlearnspec.transforms.registry import DtypeConfig, RtnConfig
from unlearnspec.transforms.dtype import DtypeTransform
from unlearnspec.transforms.rtn import RtnTransform, rtn_codes, rtn_quantize
from unlearnspec.transforms.weightspace import code_flip_rate, update_retention


def is_decoder(name, w):
    """A decoder weight of the tiny Llama fixture (the matrices inside `layers.N.`)."""
    return ".layers." in name and w.ndim == 2

RTN4 = RtnTransform(RtnConfig(bits=4))


def on_grid(name, w):
    """A reference whose decoder weights lie on the 4-bit grid (a QAT / dequantized target)."""
    return rtn_quantize(w, 4) if is_decoder(name, w) else w


def update(scale_of_step, seed=0):
    """δ = scale × Δ × noise in [-1, 1) on decoder weights."""
    g = torch.Generator().manual_seed(seed)

    def change(name, w):
        if not is_decoder(name, w):
            return w
        step = rtn_codes(w, 4).scale  # per output channel
        return w + scale_of_step * step * (2 * torch.rand(w.shape, generator=g) - 1)
    return change


@pytest.fixture
def aligned(tiny_checkpoint, variant):
    return variant(tiny_checkpoint, on_grid)


def test_small_update_on_grid_aligned_target_is_undone(aligned, variant):
    subject = variant(aligned, update(0.2))
    gamma = update_retention(aligned, subject, RTN4)
    flips = code_flip_rate(aligned, subject, RTN4)
    assert gamma.ok and abs(gamma.value) < 0.05
    assert flips.ok and flips.value == 0.0
    assert flips.n == gamma.n == sum(
        v.numel() for k, v in load_file(str(aligned / "model.safetensors")).items()
        if is_decoder(k, v))


def test_large_update_survives_quantization(aligned, variant):
    subject = variant(aligned, update(6.0))
    gamma = update_retention(aligned, subject, RTN4)
    flips = code_flip_rate(aligned, subject, RTN4)
    assert 0.8 < gamma.value < 1.2
    assert flips.value > 0.5


def test_eight_bits_keep_an_update_that_four_bits_undo(aligned, variant):
    subject = variant(aligned, update(0.2))
    rtn8 = RtnTransform(RtnConfig(bits=8))
    assert update_retention(aligned, subject, rtn8).value > 0.5
    assert code_flip_rate(aligned, subject, rtn8).value > code_flip_rate(aligned, subject,
                                                                         RTN4).value


def test_per_layer_numbers_cover_each_quantized_tensor(aligned, variant):
    subject = variant(aligned, update(6.0))
    r = code_flip_rate(aligned, subject, RTN4)
    assert len(r.details["per_layer"]) == 14
    assert all(0 <= v <= 1 for v in r.details["per_layer"].values())
    json.dumps(r.to_json())  # goes into the cache and the report


def test_zero_update_is_nan_with_a_reason_never_one(aligned, variant):
    same = variant(aligned, lambda n, w: w)
    r = update_retention(aligned, same, RTN4)
    assert math.isnan(r.value) and not r.ok
    assert "zero update" in r.details["reason"]
    assert code_flip_rate(aligned, same, RTN4).value == 0.0


@pytest.mark.parametrize("metric", [code_flip_rate, update_retention])
def test_transform_that_touches_nothing_gives_no_result(tiny_checkpoint, variant, metric):
    subject = variant(tiny_checkpoint, update(1.0))
    nothing = RtnTransform(RtnConfig(bits=4))
    nothing._roles = set()  # a transform selecting no tensor (unit-test double)
    with pytest.raises(RunError, match=r"leaves 20,480 of the decoder's 20,480 weights \(100%\)"
                                       r".*self_attn\.q_proj\.weight \(Linear\): not selected"):
        metric(tiny_checkpoint, subject, nothing)


def test_weight_metrics_record_the_coverage_they_compared(aligned, variant):
    subject = variant(aligned, update(1.0))
    cov = code_flip_rate(aligned, subject, RTN4).details["coverage"]
    assert cov["source"] == "stream"
    assert cov["decoder"]["share"] == 1.0 and cov["decoder"]["weights"] == 20_480
    assert set(cov["roles"]) == {"attention", "mlp", "embed", "head"}
    assert cov["roles"]["head"]["selected"] == 0  # modules: decoder leaves the head alone


def test_sharded_checkpoint_gives_the_same_numbers(aligned, variant, tmp_path):
    subject = variant(aligned, update(1.0))
    model, tok = load_causal_lm(subject)
    sharded = tmp_path / "sharded"
    model.save_pretrained(sharded, max_shard_size="20KB")
    assert (sharded / "model.safetensors.index.json").exists()
    a = update_retention(aligned, subject, RTN4)
    b = update_retention(aligned, sharded, RTN4)
    assert a.value == b.value and a.n == b.n


def test_mismatched_tensor_names_are_a_clear_error(aligned, variant, tiny_checkpoint, tmp_path):
    from safetensors.torch import save_file

    other = tmp_path / "renamed"
    shutil.copytree(aligned, other)
    sd = load_file(str(aligned / "model.safetensors"))
    sd["model.layers.9.mlp.up_proj.weight"] = sd.pop("model.layers.1.mlp.up_proj.weight")
    save_file(sd, str(other / "model.safetensors"))
    with pytest.raises(RunError, match="only in the reference: model.layers.1.mlp.up_proj"):
        code_flip_rate(aligned, other, RTN4)


def test_mismatched_shapes_are_a_clear_error(aligned, variant):
    cut = variant(aligned, lambda n, w: w[:, :16] if n.endswith("0.mlp.up_proj.weight") else w)
    with pytest.raises(RunError, match=r"up_proj.weight has shape \(64, 16\) in the subject"):
        update_retention(aligned, cut, RTN4)


def test_checkpoint_without_safetensors_is_a_clear_error(aligned, tmp_path):
    with pytest.raises(RunError, match="no \\*.safetensors files"):
        code_flip_rate(aligned, tmp_path, RTN4)


def test_dtype_cast_flips_are_bit_pattern_changes(tiny_checkpoint, variant):
    subject = variant(tiny_checkpoint, lambda n, w: w * (1 + 1e-5))  # below bf16 resolution
    bf16 = DtypeTransform(DtypeConfig(dtype="bfloat16"))
    fp16 = DtypeTransform(DtypeConfig(dtype="float16"))
    assert code_flip_rate(tiny_checkpoint, subject, bf16).value < 0.05
    # a 0.2% update: above float16's half-ulp (0.05%), below bfloat16's (0.4%)
    bigger = variant(tiny_checkpoint, lambda n, w: w * (1 + 2e-3))
    assert update_retention(tiny_checkpoint, bigger, fp16).value > 0.8
    assert update_retention(tiny_checkpoint, bigger, bf16).value < 0.6


def test_metrics_are_registered_with_these_functions():
    assert METRICS.get("code_flip_rate").load() is code_flip_rate
    assert METRICS.get("update_retention").load() is update_retention
