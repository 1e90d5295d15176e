"""Coverage: rtn quantizes every decoder weight whatever module holds it, the coverage is
measured on the transformed model, and a transform that leaves the decoder untouched is a
RunError naming the modules, never a number."""
from __future__ import annotations

import pytest
import torch

from arch_helpers import ARCHS, load_arch
from unlearnspec.errors import RunError
from unlearnspec.transforms.base import TransformContext
from unlearnspec.transforms.coverage import Coverage, apply_measured
from unlearnspec.transforms.registry import BnbConfig, RtnConfig
from unlearnspec.transforms.roles import parameter_roles
from unlearnspec.transforms.rtn import RtnTransform


def measured(path, transform):
    return apply_measured(transform, load_arch(path), TransformContext(path, None))


@pytest.mark.parametrize("arch", ARCHS)
@pytest.mark.parametrize("bits", [4, 8])
def test_rtn_covers_the_whole_decoder_of_every_architecture(arch_checkpoints, arch, bits):
    _, cov = measured(arch_checkpoints[arch], RtnTransform(RtnConfig(bits=bits)))
    d = cov.decoder
    assert d.weights > 0 and d.selected == d.weights and d.covered == d.weights
    assert cov.untouched == ()
    assert cov.check("rtn", None) is cov


def test_gpt2_conv1d_is_quantized_per_output_channel_of_its_transpose(arch_checkpoints):
    path = arch_checkpoints["gpt2"]
    before = load_arch(path).transformer.h[0].mlp.c_fc.weight.detach().clone()  # [in, out]
    q, _ = measured(path, RtnTransform(RtnConfig(bits=4)))
    after = q.transformer.h[0].mlp.c_fc.weight.detach()
    # each output channel (a column) has its own scale: max |w| of the column is kept
    torch.testing.assert_close(after.abs().amax(dim=0), before.abs().amax(dim=0), rtol=1e-6, atol=0)
    # and every column holds at most 15 levels (±7 steps of that column's scale)
    steps = after / (before.abs().amax(dim=0, keepdim=True) / 7)
    assert torch.allclose(steps, steps.round(), atol=1e-4)


def test_moe_experts_get_one_scale_per_expert_and_output_channel(arch_checkpoints):
    path = arch_checkpoints["mixtral"]
    before = load_arch(path).model.layers[0].mlp.experts.down_proj.detach().clone()
    q, cov = measured(path, RtnTransform(RtnConfig(bits=4)))
    after = q.model.layers[0].mlp.experts.down_proj.detach()
    torch.testing.assert_close(after.abs().amax(dim=-1), before.abs().amax(dim=-1), rtol=1e-6,
                               atol=0)
    assert cov.roles["experts"].covered == cov.roles["experts"].weights == 196_608


def test_a_tied_head_is_quantized_once(arch_checkpoints):
    path = arch_checkpoints["gpt2"]
    before = load_arch(path).transformer.wte.weight.detach().clone()
    q, cov = measured(path, RtnTransform(RtnConfig(bits=4, modules="decoder+head")))
    assert q.lm_head.weight is q.transformer.wte.weight
    assert cov.roles["head"].weights == before.numel()  # counted once, not twice
    # quantizing twice would not change an on-grid tensor, so compare with one pass
    info = parameter_roles(q)["transformer.wte.weight"]
    once = RtnTransform(RtnConfig(bits=4))._quantize(info, before)[0]
    assert torch.equal(q.transformer.wte.weight.detach(), once)


def test_a_transform_that_changes_nothing_is_an_error_naming_the_modules(arch_checkpoints):
    nothing = RtnTransform(RtnConfig(bits=4))
    nothing._roles = {"attention"}  # a transform that misses the MLPs (unit-test double)
    _, cov = measured(arch_checkpoints["gpt2"], nothing)
    assert cov.decoder.covered == 32_768 and cov.decoder.weights == 98_304
    with pytest.raises(RunError, match=r"leaves 65,536 of the decoder's 98,304 weights \(67%\)"
                                       r".*transformer\.h\.\*\.mlp\.c_fc\.weight \(Conv1D\): "
                                       r"not selected.*kind: rtn"):
        cov.check("it", nothing)


def test_selected_but_unchanged_weights_count_only_when_already_on_the_grid(arch_checkpoints):
    """rtn4 on a checkpoint already on the 4-bit grid changes nothing and is covered; a
    transform that claims to quantize but leaves weights as they were is not."""
    path = arch_checkpoints["llama"]
    rtn4 = RtnTransform(RtnConfig(bits=4))
    on_grid, _ = measured(path, rtn4)
    again = apply_measured(rtn4, on_grid, TransformContext(path, None))[1]
    assert again.decoder.changed == 0 and again.decoder.on_grid == again.decoder.weights

    class Lazy(RtnTransform):  # claims every weight, quantizes none (unit-test double)
        def apply(self, model, ctx):
            return model

    _, cov = measured(path, Lazy(RtnConfig(bits=4)))
    assert cov.decoder.selected == cov.decoder.weights and cov.decoder.covered == 0
    assert "selected but left unchanged" in cov.untouched[0]


@pytest.mark.parametrize("arch", ["mixtral", "qwen2_moe", "falcon"])
def test_bnb_refuses_models_whose_decoder_it_would_leave_float(arch_checkpoints, arch):
    pytest.importorskip("bitsandbytes")
    from unlearnspec.transforms.bnb import BnbTransform

    module = {"mixtral": "MixtralExperts", "qwen2_moe": "Qwen2MoeExperts",
              "falcon": "FalconLinear"}[arch]
    with pytest.raises(RunError, match=rf"bnb nf4 would leave .* in float: .*\({module}\)"
                                       r".*kind: rtn"):
        measured(arch_checkpoints[arch], BnbTransform(BnbConfig(mode="nf4")))


def test_coverage_round_trips_through_json(arch_checkpoints):
    _, cov = measured(arch_checkpoints["qwen2_moe"], RtnTransform(RtnConfig(bits=4)))
    j = cov.to_json()
    assert Coverage.from_json(j) == cov
    assert j["decoder"]["share"] == 1.0 and j["decoder"]["weights"] == 156_288
