"""Options for unlearning runs that do not fit one device as configured: gradient
checkpointing, bitsandbytes' 8-bit and paged AdamW, and the memory estimate that refuses a
run before its first step when it cannot fit."""
from __future__ import annotations

import pytest
import torch
from safetensors.torch import load_file

from unlearnspec.errors import RunError
from unlearnspec.unlearn.memory import BUDGET_ENV, parse_bytes

pytestmark = pytest.mark.slow


def weights(out):
    return load_file(out / "model.safetensors")


def test_gradient_checkpointing_recomputes_each_layer_and_trains_the_same(unlearn, monkeypatch):
    from transformers.models.llama import modeling_llama

    calls = {"n": 0}
    # counted inside the layer: transformers checkpoints the layer's forward, so its MLP runs
    # again in the backward pass
    real = modeling_llama.LlamaMLP.forward

    def counting(self, *a, **k):
        calls["n"] += 1
        return real(self, *a, **k)

    monkeypatch.setattr(modeling_llama.LlamaMLP, "forward", counting)
    plain, log_plain = unlearn("ga_gdr", max_steps=2)
    n_plain, calls["n"] = calls["n"], 0
    ckpt, log = unlearn("ga_gdr", max_steps=2, gradient_checkpointing=True)
    # the backward pass runs every layer's forward again (forget and retain batches)
    assert calls["n"] > n_plain
    assert log["gradient_checkpointing"] is True and log_plain["gradient_checkpointing"] is False
    a, b = weights(plain), weights(ckpt)
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=1e-5, atol=1e-6)
    assert log["memory_estimate"]["activations"] < log_plain["memory_estimate"]["activations"]


def test_adamw_8bit_runs_on_cpu_with_uint8_states(unlearn, monkeypatch):
    import bitsandbytes as bnb

    from unlearnspec.unlearn import UnlearnConfig
    from unlearnspec.unlearn.optim import build_optimizer

    p = torch.nn.Parameter(torch.randn(128, 64))  # >= 4096 weights: bnb keeps 8-bit state
    opt = build_optimizer([p], UnlearnConfig(optimizer="adamw_8bit", lr=1e-3))
    assert isinstance(opt, bnb.optim.AdamW8bit)
    p.grad = torch.randn_like(p)
    opt.step()
    assert opt.state[p]["state1"].dtype == torch.uint8

    steps = {"n": 0}
    real = bnb.optim.AdamW8bit.step

    def step(self, *a, **k):
        steps["n"] += 1
        return real(self, *a, **k)

    monkeypatch.setattr(bnb.optim.AdamW8bit, "step", step)
    plain, _ = unlearn("ga", max_steps=3)
    eight, log = unlearn("ga", max_steps=3, optimizer="adamw_8bit")
    assert log["optimizer"] == "adamw_8bit" and steps["n"] == 3
    a, b = weights(plain), weights(eight)
    for k in a:  # the tiny model's tensors are under 4096 weights: fp32 state, AdamW's steps
        torch.testing.assert_close(a[k], b[k], rtol=1e-4, atol=1e-5)
    assert log["memory_estimate"]["optimizer"] < 8 * log["trained_parameters"] + 1


@pytest.mark.parametrize("opt", ["paged_adamw", "paged_adamw_8bit"])
def test_paged_optimizers_on_cpu_are_refused_saying_why(unlearn, opt):
    with pytest.raises(RunError, match="CUDA unified memory.*adamw_8bit"):
        unlearn("ga", max_steps=1, optimizer=opt)


def test_an_unknown_optimizer_is_a_config_error():
    from unlearnspec.registry import ConfigError
    from unlearnspec.unlearn import UnlearnConfig

    with pytest.raises(ConfigError, match="optimizer must be one of adamw, adamw_8bit"):
        UnlearnConfig(optimizer="sgd")


def test_a_run_that_cannot_fit_is_refused_with_the_numbers(unlearn, monkeypatch, tmp_path):
    monkeypatch.setenv(BUDGET_ENV, "64KB")
    with pytest.raises(RunError) as err:
        unlearn("npo_klr", max_steps=1)
    msg = str(err.value)
    for part in ("would not fit", "weights", "optimizer", "reference", "activations",
                 "budget 0.1 MiB", BUDGET_ENV, "gradient_checkpointing"):
        assert part in msg, part
    monkeypatch.setenv(BUDGET_ENV, "64GB")
    _, log = unlearn("npo_klr", max_steps=1)
    est = log["memory_estimate"]
    # under a 64 GB budget the same run is not refused; the log holds no budget (the free
    # memory of the moment would make two runs' reports differ)
    assert "budget" not in est and est["reference"] == est["weights"]
    assert est["total"] == sum(est[k] for k in ("weights", "gradients", "optimizer",
                                                "reference", "activations"))


def test_the_estimate_is_printed_before_the_first_step(base, corpus, tmp_path, monkeypatch):
    import io
    import sys

    from unlearnspec.unlearn import METHODS, run_unlearning

    stream = io.StringIO()
    monkeypatch.setattr(sys, "__stderr__", stream)
    comp = METHODS.get("ga")
    run_unlearning(comp, comp.make_config({"max_steps": 1, "max_length": 16}), base=base,
                   forget=corpus[0], retain=corpus[1], out=tmp_path / "o", seed=0,
                   progress=True)
    assert "unlearn ga: memory estimate: needs about" in stream.getvalue()


@pytest.mark.parametrize("text,n", [("24GB", 24 * 2**30), ("512 MiB", 512 * 2**20),
                                    ("1e3", 1000), ("2kb", 2048)])
def test_budget_sizes(text, n):
    assert parse_bytes(text) == n


def test_a_budget_that_is_not_a_size_is_an_error():
    with pytest.raises(RunError, match="is not a size"):
        parse_bytes("lots")


def test_new_options_at_their_defaults_keep_the_cache_key():
    from unlearnspec.engine.context import config_dict
    from unlearnspec.engine.sources import _unlearn_key_config
    from unlearnspec.unlearn import UnlearnConfig

    plain = _unlearn_key_config(UnlearnConfig())
    assert "optimizer" not in plain and "gradient_checkpointing" not in plain
    assert "fsdp" not in plain and "processes" not in plain
    assert _unlearn_key_config(UnlearnConfig(processes=2, grad_accum=2, fsdp="full_shard"))[
        "fsdp"] == "full_shard"
    assert plain == {k: v for k, v in config_dict(UnlearnConfig()).items() if k in plain}
    assert _unlearn_key_config(UnlearnConfig(optimizer="adamw_8bit"))["optimizer"] == \
        "adamw_8bit"


@pytest.mark.parametrize("name, options", [
    ("npo_klr", {"weight_decay": 0.01, "lr_schedule": "linear"}),
    ("ga_gdr", {"sure": {"percentile": 90}}),
])
def test_multi_tensor_adamw_trains_the_weights_the_per_parameter_loop_trains(
        unlearn, monkeypatch, name, options):
    """The loop's AdamW runs torch's foreach (multi-tensor) update on CPU too; it must stay
    bit-identical to the per-parameter loop it replaced, or unlearned models' cache keys
    would have to change."""
    from unlearnspec.unlearn import loop

    fast_out, fast_log = unlearn(name, max_steps=4, **options)

    def per_parameter(params, config):
        return torch.optim.AdamW(params, lr=config.lr, weight_decay=config.weight_decay,
                                 foreach=False)

    monkeypatch.setattr(loop, "build_optimizer", per_parameter)
    slow_out, slow_log = unlearn(name, max_steps=4, **options)
    fast, slow = weights(fast_out), weights(slow_out)
    assert all(torch.equal(fast[k], slow[k]) for k in fast)
    assert fast_log["losses"] == slow_log["losses"]
