"""RMU and RMU_LAT: the losses against a direct computation, the parameters they train (and
the ones they must leave bit-identical), the latent adversary's bound, and determinism."""
from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from safetensors.torch import load_file

from unlearnspec.errors import RunError
from unlearnspec.registry import ConfigError
from unlearnspec.unlearn import METHODS
from unlearnspec.unlearn.data import collate
from unlearnspec.unlearn import rmu

SMALL = {"layer": 1, "layers": [0, 1], "alpha": 10.0, "lr": 1e-2}  # the tiny model has 2 layers


@pytest.fixture(scope="module")
def model(target: Path) -> torch.nn.Module:
    from unlearnspec.models.loading import load_causal_lm

    return load_causal_lm(target)[0]


@pytest.fixture(scope="module")
def batch() -> object:
    return collate([[2, 10, 11, 12, 13, 14], [2, 20, 21]], pad_id=0)


def test_defaults_are_the_wmdp_papers() -> None:
    cfg = METHODS.get("rmu").make_config({})
    assert (cfg.layer, cfg.layers, cfg.steering_coeff, cfg.alpha, cfg.lr) == \
        (7, (5, 6, 7), 6.5, 1200.0, 5e-5)
    assert cfg.params == ("mlp.down_proj.weight",)
    lat = METHODS.get("rmu_lat").make_config({})
    assert (lat.layer, lat.layers, lat.adv_layer, lat.epsilon, lat.inner_steps) == \
        (8, (6, 7, 8), 7, 2.0, 16)


@pytest.mark.parametrize("options, key", [
    ({"layer": -1}, "layer"), ({"layers": []}, "layers"), ({"layers": ["x"]}, "layers"),
    ({"steering_coeff": 0}, "steering_coeff"), ({"params": []}, "params"),
])
def test_bad_rmu_options_name_the_option(options: dict, key: str) -> None:
    with pytest.raises(ConfigError) as err:
        METHODS.get("rmu").make_config(options)
    assert err.value.key == key


def test_an_adversary_after_the_steered_layer_is_a_config_error() -> None:
    with pytest.raises(ConfigError) as err:
        METHODS.get("rmu_lat").make_config({"layer": 1, "adv_layer": 2})
    assert err.value.key == "adv_layer"


def test_control_vector_is_c_times_a_seeded_unit_vector(model) -> None:
    cfg = METHODS.get("rmu").make_config(SMALL)
    a = rmu.RMU_METHOD.start(model, model, cfg, seed=3).control
    b = rmu.RMU_METHOD.start(model, model, cfg, seed=3).control
    c = rmu.RMU_METHOD.start(model, model, cfg, seed=4).control
    assert float(a.norm()) == pytest.approx(6.5, rel=1e-6)
    assert (a >= 0).all()  # WMDP draws u from torch.rand: uniform in [0, 1)
    assert torch.equal(a, b) and not torch.equal(a, c)


def test_forget_loss_is_the_mse_of_the_layer_output_to_the_control(model, batch) -> None:
    cfg = METHODS.get("rmu").make_config({**SMALL, "layer": 0})
    bound = rmu.RMU_METHOD.start(model, model, cfg, seed=0)
    got = float(bound.forget_loss(model, batch, model, cfg).detach())
    expected, count = 0.0, 0
    for row in range(len(batch)):
        ids = batch.input_ids[row][batch.attention_mask[row].bool()].unsqueeze(0)
        with torch.no_grad():  # hidden_states[1] is decoder layer 0's output
            h = model(input_ids=ids, output_hidden_states=True).hidden_states[1][0].float()
        expected += float((h - bound.control).pow(2).sum())
        count += h.numel()
    assert got == pytest.approx(expected / count, rel=1e-5)
    assert float(bound.retain_loss(model, batch, model, cfg).detach()) == 0.0


def test_a_layer_the_model_lacks_is_a_clear_error(unlearn) -> None:
    with pytest.raises(RunError, match=r"layer = 7, but the model has 2 decoder layers"):
        unlearn("rmu", max_steps=1)
    with pytest.raises(RunError, match="match no parameter"):
        unlearn("rmu", max_steps=1, **{**SMALL, "params": ["nothing.*"]})


@pytest.mark.slow
def test_rmu_steers_forget_activations_and_trains_only_its_layers(unlearn, target) -> None:
    out, log = unlearn("rmu", epochs=4, **SMALL)
    forget = [e["forget"] for e in log["losses"]]
    assert forget[-1] < forget[0]  # activations move towards c·u
    assert all(e["retain"] < 0.05 * forget[0] for e in log["losses"])  # retain kept
    before, after = load_file(target / "model.safetensors"), load_file(out / "model.safetensors")
    changed = sorted(k for k in before if not torch.equal(before[k], after[k]))
    assert changed == ["model.layers.0.mlp.down_proj.weight",
                       "model.layers.1.mlp.down_proj.weight"]
    assert log["frozen_parameters_verified"] == len(before) - 2


@pytest.mark.slow
def test_rmu_reruns_are_byte_identical(unlearn) -> None:
    a, _ = unlearn("rmu", seed=1, max_steps=3, **SMALL)
    b, _ = unlearn("rmu", seed=1, max_steps=3, **SMALL)
    assert (a / "model.safetensors").read_bytes() == (b / "model.safetensors").read_bytes()


def test_latent_adversary_stays_in_the_ball_and_recovers_the_forget_text(model, batch) -> None:
    from unlearnspec.unlearn.losses import mean_nll

    cfg = SimpleNamespace(adv_layer=0, epsilon=2.0, inner_steps=8, inner_lr=0.05)
    model.zero_grad(set_to_none=True)
    delta = rmu.latent_adversary(model, batch, cfg)
    assert float(delta.norm(dim=-1).max()) <= 2.0 + 1e-5
    assert float(delta[~batch.attention_mask.bool()].abs().max()) == 0.0  # none on padding
    assert all(p.grad is None for p in model.parameters())  # only δ got gradients
    with torch.no_grad():
        plain = float(mean_nll(model, batch))
        with rmu.perturbed(model, 0, delta):
            attacked = float(mean_nll(model, batch))
    assert attacked < plain  # the adversary pushes towards the forget text


@pytest.mark.slow
def test_rmu_lat_trains_only_its_layers_and_is_deterministic(unlearn, target) -> None:
    options = {**SMALL, "adv_layer": 0, "inner_steps": 2}
    a, log = unlearn("rmu_lat", seed=2, max_steps=3, **options)
    b, _ = unlearn("rmu_lat", seed=2, max_steps=3, **options)
    assert (a / "model.safetensors").read_bytes() == (b / "model.safetensors").read_bytes()
    before, after = load_file(target / "model.safetensors"), load_file(a / "model.safetensors")
    changed = {k for k in before if not torch.equal(before[k], after[k])}
    assert changed == {"model.layers.0.mlp.down_proj.weight",
                       "model.layers.1.mlp.down_proj.weight"}
    assert log["method"] == "rmu_lat"


@pytest.mark.slow
def test_sure_on_rmu_ranks_only_the_layers_rmu_trains(unlearn) -> None:
    _, log = unlearn("rmu", max_steps=2, sure={"percentile": 50}, **SMALL)
    assert set(log["sure"]["scores"]) == {"model.layers.0.mlp.down_proj",
                                          "model.layers.1.mlp.down_proj"}
    assert len(log["sure"]["selected"]) == 1
