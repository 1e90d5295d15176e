"""The trained micro models: memorisation, the retrain control, the aligned variant, and
bit-identical retraining. These train real models (seconds each)."""
from __future__ import annotations

from pathlib import Path

import pytest

from unlearnspec.bench import ensure_model
from unlearnspec.bench.memorise import memorisation_report
from unlearnspec.models.loading import load_causal_lm

pytestmark = pytest.mark.slow


def report(path: Path, corpus) -> dict[str, float]:
    model, tok = load_causal_lm(path)
    return memorisation_report(model, tok, corpus)


def test_target_memorises_forget_and_retain(micro_model, micro_corpus) -> None:
    mem = report(micro_model("target"), micro_corpus)
    assert mem["forget"] >= 0.9 and mem["retain"] >= 0.8, mem


def test_retrain_knows_retain_but_not_forget(micro_model, micro_corpus) -> None:
    mem = report(micro_model("retrain"), micro_corpus)
    assert mem["retain"] >= 0.8, mem
    assert mem["forget"] <= 0.35, mem  # chance level: values repeat across entities


def test_aligned_target_is_on_the_grid_and_still_memorises(micro_model, micro_corpus) -> None:
    import torch

    from unlearnspec.bench.train import decoder_linear_names, on_grid
    from unlearnspec.transforms.rtn import rtn_quantize

    model, tok = load_causal_lm(micro_model("target-qat"))
    grid = on_grid(model)
    assert len(grid) == 7 * model.config.num_hidden_layers and all(grid.values())
    mem = memorisation_report(model, tok, micro_corpus)
    assert mem["forget"] >= 0.9 and mem["retain"] >= 0.8, mem
    # Only decoder linears are aligned; and the naturally trained target is *not* on the grid
    # (that is the control: the effect needs the aligned variant).
    head = model.lm_head.weight
    assert not torch.equal(rtn_quantize(head), head)
    natural, _ = load_causal_lm(micro_model("target"))
    assert set(decoder_linear_names(natural)) == set(grid)
    assert not any(on_grid(natural).values())


def test_models_are_reused_not_retrained(micro_model, bench_cache) -> None:
    path = micro_model("target")
    stamp = (path / "model.safetensors").stat().st_mtime_ns
    assert ensure_model("micro/target", bench_cache, progress=False) == path
    assert (path / "model.safetensors").stat().st_mtime_ns == stamp
    assert {"config.json", "tokenizer.json", "model.safetensors"} <= \
        {p.name for p in path.iterdir()}


def test_same_seed_gives_bit_identical_checkpoints(micro_model, tmp_path: Path) -> None:
    first = micro_model("target")
    again = ensure_model("micro/target", tmp_path, progress=False)
    assert again != first
    assert (again / "model.safetensors").read_bytes() == \
        (first / "model.safetensors").read_bytes()
