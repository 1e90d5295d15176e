"""A third-party method plugs in through the `unlearnspec.methods` entry point, without
forking: examples/plugin_method registers `ga_capped` from its own package."""
from __future__ import annotations

from importlib.metadata import PackageNotFoundError, distribution

import pytest

from unlearnspec.registry import ConfigError
from unlearnspec.unlearn import METHODS

try:
    distribution("unlearnspec-capped-ga")
except PackageNotFoundError:
    pytest.skip("the example plug-in is not installed; run "
                "`pip install -e examples/plugin_method` to test method entry points",
                allow_module_level=True)


def test_the_entry_point_registers_the_method() -> None:
    comp = METHODS.get("ga_capped")
    assert comp.target == "unlearnspec_capped_ga.method:GA_CAPPED"
    assert "ga_capped" in METHODS.names()
    cfg = comp.make_config({"cap": 3.0, "lr": 1e-4})
    assert cfg.cap == 3.0 and cfg.lr == 1e-4
    with pytest.raises(ConfigError) as err:
        comp.make_config({"cpa": 3.0})
    assert err.value.hint == "did you mean 'cap'?"
    with pytest.raises(ConfigError, match="cap must be positive"):
        comp.make_config({"cap": -1})


@pytest.mark.slow
def test_run_unlearning_runs_the_plugin_method(unlearn) -> None:
    out, log = unlearn("ga_capped", cap=2.0, epochs=2)
    assert log["method"] == "ga_capped" and (out / "model.safetensors").is_file()
    assert log["retain"] is not None  # the plug-in reuses the built-in GDR regularizer
    assert all(entry["forget"] >= -2.0 - 1e-6 for entry in log["losses"])  # the cap holds
    assert log["losses"][-1]["forget"] < log["losses"][0]["forget"]  # and it did ascend


@pytest.mark.slow
def test_sure_works_on_the_plugin_method_too(unlearn) -> None:
    _, log = unlearn("ga_capped", max_steps=2, sure={"percentile": 90})
    assert log["sure"]["selected"]
