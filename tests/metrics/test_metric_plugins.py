"""The plug-in surface: `unlearnspec.metrics` registers every built-in metric from the module
that implements it, without torch, and `@metric` is how a plug-in adds one."""
from __future__ import annotations

import subprocess
import sys
import types
from dataclasses import dataclass

import pytest

import unlearnspec.metrics as metrics
from unlearnspec import registry as registry_module
from unlearnspec.errors import UnlearnSpecError
from unlearnspec.metrics import METRICS, MetricResult, metric


@dataclass(frozen=True)
class HalfConfig:
    scale: float = 0.5


def half(model, tokenizer, corpus, config, *, batch_size=32):
    return MetricResult(value=config.scale, n=1)


@pytest.fixture()
def clean_registry(monkeypatch: pytest.MonkeyPatch) -> None:
    METRICS.names()  # entry points first, so undoing the patch restores exactly this
    monkeypatch.setattr(METRICS, "_items", dict(METRICS._items))


def test_each_builtin_metric_is_declared_where_it_is_implemented() -> None:
    for comp in METRICS:
        module = comp.target.partition(":")[0]
        if "weights" in comp.tags:  # streamed kernels in transforms/weightspace.py
            assert comp.config.__module__ == "unlearnspec.metrics.weights"
            continue
        assert comp.config.__module__ == module, comp.name


def test_importing_the_surface_imports_neither_torch_nor_numpy() -> None:
    code = ("import sys, unlearnspec.metrics as m; assert len(m.METRICS.names()) > 20; "
            "print(sorted({'torch', 'numpy', 'transformers'} & set(sys.modules)))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True)
    assert out.stdout.strip() == "[]"


def test_the_core_helpers_come_from_the_scoring_core() -> None:
    from unlearnspec.metrics import core

    assert metrics.generate_greedy is core.generate_greedy
    assert metrics.token_scores is core.token_scores
    with pytest.raises(AttributeError, match="no attribute 'generate_gredy'"):
        metrics.generate_gredy  # noqa: B018


def test_metric_registers_the_function_by_its_dotted_path(clean_registry: None) -> None:
    assert metric("half", HalfConfig, unit="fraction", tags={"data"})(half) is half
    comp = METRICS.get("half")
    assert comp.target == f"{__name__}:half" and comp.load() is half
    assert (comp.config, comp.unit, comp.tags) == (HalfConfig, "fraction", frozenset({"data"}))
    assert comp.make_config({"scale": 2.0}) == HalfConfig(2.0)
    metric("half", HalfConfig, unit="fraction")(half)  # the same function again: a no-op


def test_a_second_function_under_a_taken_name_is_refused(clean_registry: None) -> None:
    with pytest.raises(UnlearnSpecError, match="'knowmem' is registered twice: by "
                       "unlearnspec.metrics.knowmem:knowmem and by "):
        metric("knowmem", HalfConfig, unit="percent")(half)
    assert METRICS.get("knowmem").target == "unlearnspec.metrics.knowmem:knowmem"


def test_an_entry_point_may_name_the_module_whose_decorators_register(
        clean_registry: None, monkeypatch: pytest.MonkeyPatch) -> None:
    plugin = types.ModuleType("half_plugin")

    class EntryPoint:  # test double for an installed package's entry point
        name = "half"

        def load(self) -> types.ModuleType:
            metric("half", HalfConfig, unit="fraction")(half)  # what importing it does
            return plugin

    monkeypatch.setattr(registry_module, "entry_points", lambda group: [EntryPoint()])
    monkeypatch.setattr(METRICS, "_loaded_entry_points", False)
    assert "half" in METRICS.names()


def test_the_documented_plugin_example_registers_and_checks_its_options(
        clean_registry: None, monkeypatch: pytest.MonkeyPatch) -> None:
    from pathlib import Path

    from unlearnspec.registry import ConfigError

    doc = (Path(__file__).parents[2] / "docs" / "metrics.md").read_text()
    code = doc.split("# my_pkg/metrics.py\n", 1)[1].split("```", 1)[0]
    module = types.ModuleType("my_pkg_metrics")
    monkeypatch.setitem(sys.modules, module.__name__, module)  # dataclasses look it up
    exec(compile(code, "docs/metrics.md", "exec"), module.__dict__)
    comp = METRICS.get("refusal")
    assert (comp.target, comp.unit, comp.tags) == ("my_pkg_metrics:refusal", "percent",
                                                   frozenset({"data"}))
    with pytest.raises(ConfigError, match="max_new_tokens must be positive"):
        comp.make_config({"max_new_tokens": 0})
