"""Unlearning on 2 CPU processes (gloo; DDP through accelerate, or FSDP) against 1 process, on
the embedded micro benchmark's aligned target: each process takes half of every step's
micro-batches and the averaged gradient is the single-process one, so the checkpoints agree."""
from __future__ import annotations

import pytest
import torch
from safetensors.torch import load_file

from unlearnspec.errors import RunError
from unlearnspec.unlearn import METHODS, run_unlearning

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def micro(bench_cache):
    from unlearnspec.bench import ensure_data, ensure_model
    from unlearnspec.data import Corpus

    corpus = Corpus(ensure_data("micro", bench_cache))
    return ensure_model("micro/target-qat", bench_cache, progress=False), corpus


def unlearn(micro, tmp_path, name, **options):
    target, corpus = micro
    comp = METHODS.get(name)
    config = comp.make_config({"lr": 1e-3, "batch_size": 2, "grad_accum": 2, "max_steps": 3,
                               "max_length": 64, **options})
    out = tmp_path / f"{name}-{options.get('processes', 1)}"
    log = run_unlearning(comp, config, base=target, forget=corpus.raw("forget"),
                         retain=corpus.raw("retain"), out=out, seed=0, progress=False)
    return load_file(out / "model.safetensors"), log


@pytest.fixture(scope="module")
def npo_one_process(micro, tmp_path_factory):
    return unlearn(micro, tmp_path_factory.mktemp("one"), "npo_klr")


def test_two_gloo_processes_train_what_one_process_trains(micro, tmp_path, npo_one_process):
    one, log1 = npo_one_process
    two, log2 = unlearn(micro, tmp_path, "npo_klr", processes=2)
    assert log2["processes"] == 2 and log2["steps"] == log1["steps"] == 3
    moved = [k for k in one if not torch.equal(one[k], load_file(
        micro[0] / "model.safetensors")[k])]
    assert moved  # the run changed the weights ...
    for k in one:  # ... and the two runs changed them alike
        torch.testing.assert_close(two[k], one[k], rtol=1e-5, atol=1e-7)
    for a, b in zip(log1["losses"], log2["losses"]):
        assert a["total"] == pytest.approx(b["total"], rel=1e-6)


def test_processes_must_divide_grad_accum():
    from unlearnspec.registry import ConfigError

    with pytest.raises(ConfigError, match="processes 2 must divide grad_accum 3"):
        METHODS.get("ga").make_config({"grad_accum": 3, "processes": 2})


def test_rmu_on_several_processes_is_refused_saying_why(micro, tmp_path):
    with pytest.raises(RunError, match="reads the hidden states of named layers"):
        unlearn(micro, tmp_path, "rmu", processes=2)


@pytest.mark.parametrize("strategy", ["full_shard", "shard_grad_op"])
def test_fsdp_on_two_gloo_processes_trains_what_one_process_trains(micro, tmp_path, strategy,
                                                                 npo_one_process):
    """FSDP (one unit per decoder layer, gradients and optimizer states, with full_shard the
    weights too, sharded over 2 CPU processes) takes the single-process steps: the same
    weights to float rounding."""
    one, log1 = npo_one_process
    two, log2 = unlearn(micro, tmp_path / strategy, "npo_klr", processes=2, fsdp=strategy)
    assert log2["fsdp"] == strategy and log2["processes"] == 2 and "fsdp" not in log1
    assert set(two) == set(one)
    for k in one:
        torch.testing.assert_close(two[k], one[k], rtol=1e-5, atol=1e-7)
    for a, b in zip(log1["losses"], log2["losses"]):
        assert a["total"] == pytest.approx(b["total"], rel=1e-6)


def test_fsdp_is_deterministic_for_the_same_seed_and_processes(micro, tmp_path):
    first, log1 = unlearn(micro, tmp_path / "a", "ga_gdr", processes=2, fsdp="full_shard")
    again, log2 = unlearn(micro, tmp_path / "b", "ga_gdr", processes=2, fsdp="full_shard")
    assert log1["losses"] == log2["losses"]
    assert all(torch.equal(first[k], again[k]) for k in first)


def test_fsdp_needs_several_processes():
    from unlearnspec.registry import ConfigError

    with pytest.raises(ConfigError, match="shards the model over processes, and processes is 1"):
        METHODS.get("ga").make_config({"fsdp": "full_shard"})
    with pytest.raises(ConfigError, match="fsdp must be one of full_shard, shard_grad_op"):
        METHODS.get("ga").make_config({"fsdp": "zero3", "processes": 2, "grad_accum": 2})


def test_the_memory_estimate_counts_what_fsdp_shards(micro):
    from unlearnspec.models.loading import load_causal_lm
    from unlearnspec.unlearn.memory import estimate

    model, _ = load_causal_lm(micro[0], device="cpu")
    params = sum(p.numel() for p in model.parameters())

    def est(**options):
        config = METHODS.get("ga").make_config({"grad_accum": 2, "processes": 2, **options})
        return estimate(model, config, trained=params, needs_reference=False,
                        uses_retain=False, seq_len=16, bf16=False, device=torch.device("cpu"))

    ddp, grad_op, full = est(), est(fsdp="shard_grad_op"), est(fsdp="full_shard")
    assert ddp.weights == grad_op.weights == 4 * params  # whole between forward and backward
    assert grad_op.gradients == full.gradients == -(-ddp.gradients // 2)
    assert grad_op.optimizer == full.optimizer == -(-ddp.optimizer // 2)
    layers = model.config.num_hidden_layers
    assert full.weights == 2 * params + 4 * params // layers  # a half, plus one layer gathered
    assert full.activations == ddp.activations
