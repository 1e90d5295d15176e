"""`device_map:` on a checkpoint model: accelerate's placement over several GPUs for models
larger than one, parsed with the spec's errors, passed to loading, and on a CPU run a model
that loads and computes exactly as without it."""
from __future__ import annotations

import pytest
import torch

from unlearnspec.errors import SpecError
from unlearnspec.spec import load_spec


def spec_text(ckpt, extra: str) -> str:
    return ("version: 1\ndata:\n  tiny: {builtin: tiny}\nmodels:\n"
            f"  target: {{path: {ckpt}{extra}}}\n  retrain: {{path: {ckpt}}}\n"
            "metrics:\n  knowmem_forget: {kind: knowmem, split: forget}\n"
            "claims:\n  - name: c\n    subjects: [target]\n"
            "    assert: knowmem_forget <= retrain + 100\n")


def test_device_map_is_parsed_and_a_typo_is_an_error(write_spec, tiny_checkpoint):
    spec = load_spec(write_spec(spec_text(tiny_checkpoint, ", device_map: auto")))
    assert spec.models["target"].device_map == "auto"
    assert spec.models["retrain"].device_map is None
    with pytest.raises(SpecError, match="device_map must be one of auto") as err:
        load_spec(write_spec(spec_text(tiny_checkpoint, ", device_map: autoo")))
    assert "did you mean 'auto'" in str(err.value)


def test_schema_lists_the_strategies():
    from unlearnspec.spec.schema import spec_json_schema as json_schema

    assert '"device_map"' in str(json_schema()).replace("'", '"')


def test_a_cpu_run_loads_it_on_the_cpu_with_the_same_numbers(write_spec, tiny_checkpoint,
                                                            tmp_path, monkeypatch):
    from unlearnspec.engine.run import Run
    from unlearnspec.models import loading

    seen = []
    real = loading.load_causal_lm

    def spy(path, **kw):  # records what the engine asks for, then really loads
        seen.append(kw.get("device_map"))
        return real(path, **kw)

    monkeypatch.setattr(loading, "load_causal_lm", spy)
    spec = load_spec(write_spec(spec_text(tiny_checkpoint, ", device_map: auto")))
    run = Run(spec, cache_dir=tmp_path / "cache", device="cpu", progress=False)
    placed, _ = run.loaded.load("target", None)
    plain, _ = run.loaded.load("retrain", None)
    # on a CPU run accelerate is told to put every layer on the CPU, not on a visible GPU
    assert seen == [{"": "cpu"}, None]
    assert {p.device.type for p in placed.parameters()} == {"cpu"}
    ids = torch.arange(8).reshape(1, 8) % placed.config.vocab_size
    with torch.no_grad():
        assert torch.equal(placed(ids).logits, plain(ids).logits)
    # a different placement is a different model key (never a stale cached number)
    assert run.model_key("target") != run.model_key("retrain")
