"""Method names and options are checked when a spec is read, before any training."""
from __future__ import annotations

import subprocess
import sys

import pytest
from hypothesis import given
from hypothesis import strategies as st

from unlearnspec.registry import ConfigError, UnknownComponent
from unlearnspec.unlearn import METHODS, SureConfig, UnlearnConfig

BUILTIN = ["ga", "ga_gdr", "ga_klr", "npo", "npo_gdr", "npo_klr"]


def test_the_six_methods_of_the_paper_are_registered() -> None:
    assert set(BUILTIN) <= set(METHODS.names())


def test_unknown_method_names_the_closest_one() -> None:
    with pytest.raises(UnknownComponent) as err:
        METHODS.get("npo_kl")
    assert "unknown unlearning method 'npo_kl'" in str(err.value)
    assert "did you mean 'npo_klr'?" in str(err.value)


@given(st.floats(max_value=0.0, allow_nan=False))
def test_non_positive_lr_is_a_config_error(lr: float) -> None:
    with pytest.raises(ConfigError) as err:
        METHODS.get("ga").make_config({"lr": lr})
    assert err.value.key == "lr" and "lr must be positive" in str(err.value)


@given(st.one_of(st.floats(max_value=0.0), st.floats(min_value=100.0),
                 st.just(float("nan"))))
def test_percentile_outside_0_100_is_a_config_error(p: float) -> None:
    with pytest.raises(ConfigError) as err:
        METHODS.get("npo_klr").make_config({"sure": {"percentile": p}})
    assert err.value.key == "percentile" and "strictly between 0 and 100" in str(err.value)


@given(st.floats(min_value=0.0, max_value=100.0, exclude_min=True, exclude_max=True))
def test_percentile_inside_0_100_is_accepted(p: float) -> None:
    cfg = METHODS.get("npo_klr").make_config({"sure": {"percentile": p}})
    assert cfg.sure == SureConfig(percentile=p)


def test_sure_options() -> None:
    assert UnlearnConfig(sure=True).sure == SureConfig()
    assert UnlearnConfig(sure=False).sure is None
    assert UnlearnConfig(sure={"modules": ["*.mlp.*"]}).sure.modules == ("*.mlp.*",)
    with pytest.raises(ConfigError, match="non-empty list"):
        UnlearnConfig(sure={"modules": []})
    with pytest.raises(ConfigError) as err:
        UnlearnConfig(sure={"percentil": 90})
    assert err.value.key == "percentil" and err.value.hint == "did you mean 'percentile'?"


@pytest.mark.parametrize("options, key", [
    ({"batch_size": 0}, "batch_size"), ({"grad_accum": 0}, "grad_accum"),
    ({"alpha": -1}, "alpha"), ({"beta": 0}, "beta"), ({"max_length": 1}, "max_length"),
    ({"lr_schedule": "cosine"}, "lr_schedule"), ({"precision": "fp16"}, "precision"),
    ({"epochs": 0}, "epochs"), ({"max_steps": 0}, "max_steps"),
])
def test_bad_training_options_name_the_option(options: dict, key: str) -> None:
    with pytest.raises(ConfigError) as err:
        METHODS.get("ga_gdr").make_config(options)
    assert err.value.key == key


def test_reading_methods_and_configs_does_not_import_torch() -> None:
    code = ("import sys; from unlearnspec.unlearn import METHODS; "
            "METHODS.get('npo_klr').make_config({'sure': {'percentile': 95}}); "
            "assert 'torch' not in sys.modules, 'torch was imported'")
    subprocess.run([sys.executable, "-c", code], check=True)


@pytest.mark.parametrize("name, reference, retain", [
    ("ga", False, False), ("ga_gdr", False, True), ("ga_klr", True, True),
    ("npo", True, False), ("npo_gdr", True, True), ("npo_klr", True, True),
])
def test_each_registered_method_loads_with_its_losses(name: str, reference: bool,
                                                      retain: bool) -> None:
    method = METHODS.get(name).load()
    assert method.name == name
    assert method.needs_reference is reference
    assert method.uses_retain is retain


def test_klr_direction_defaults_to_the_references_forward_kl() -> None:
    for name in ("ga_klr", "npo_klr"):
        assert METHODS.get(name).make_config({}).kl == "forward"
        assert METHODS.get(name).make_config({"kl": "reverse"}).kl == "reverse"
    with pytest.raises(ConfigError) as err:
        METHODS.get("ga_klr").make_config({"kl": "backward"})
    assert err.value.key == "kl" and "'forward'" in str(err.value)


def test_kl_is_not_an_option_of_methods_without_klr() -> None:
    with pytest.raises(ConfigError) as err:
        METHODS.get("ga_gdr").make_config({"kl": "forward"})
    assert err.value.key == "kl"
