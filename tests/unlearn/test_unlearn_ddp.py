"""Unlearning on 2 CPU processes (gloo, through accelerate's DDP) against 1 process, on the
embedded micro benchmark's aligned target: each process takes half of every step's
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


def test_two_gloo_processes_train_what_one_process_trains(micro, tmp_path):
    one, log1 = unlearn(micro, tmp_path, "npo_klr")
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
