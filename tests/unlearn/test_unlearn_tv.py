"""Task-vector negation: the fine-tuning descends the forget loss, the saved weights are
θ_target − α·(θ_ft − θ_target) exactly, frozen parts are untouched, reruns are identical."""
from __future__ import annotations

import pytest
import torch
from safetensors.torch import load_file

from unlearnspec.unlearn import METHODS

pytestmark = pytest.mark.slow


def test_defaults_are_the_ones_muse_scripts_use() -> None:
    cfg = METHODS.get("tv").make_config({})
    assert (cfg.alpha, cfg.epochs) == (5.0, 10.0)


def test_tv_negates_the_forget_fine_tuning(unlearn, target, corpus) -> None:
    from test_unlearn_train import nll

    out, log = unlearn("tv", seed=0, max_steps=3, alpha=2.0)
    assert nll(out, corpus[0]) > nll(target, corpus[0])  # the forget set became less likely
    assert log["finish"]["scale"] == 2.0 and log["finish"]["task_vector_norm"] > 0
    base = load_file(target / "model.safetensors")
    got = load_file(out / "model.safetensors")
    # same seed, same fine-tuning: recover θ_ft from the α=2 run and check the formula on a
    # third run with α=1
    one, _ = unlearn("tv", seed=0, max_steps=3, alpha=1.0)
    got1 = load_file(one / "model.safetensors")
    for k in base:
        vector = base[k] - got1[k]  # α=1: θ = θ0 − v  =>  v = θ0 − θ
        assert torch.allclose(got[k], base[k] - 2.0 * vector, atol=1e-6), k


def test_tv_reruns_are_byte_identical_and_sure_freezes_the_rest(unlearn, target) -> None:
    a, _ = unlearn("tv", seed=4, max_steps=2)
    b, _ = unlearn("tv", seed=4, max_steps=2)
    assert (a / "model.safetensors").read_bytes() == (b / "model.safetensors").read_bytes()
    out, log = unlearn("tv", seed=4, max_steps=2, sure={"percentile": 90})
    base, got = load_file(target / "model.safetensors"), load_file(out / "model.safetensors")
    changed = {k.rsplit(".", 1)[0] for k in base if not torch.equal(base[k], got[k])}
    assert changed == set(log["sure"]["selected"])
