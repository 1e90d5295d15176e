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
    trained: list[str] = []
    assert ensure_model("micro/target", bench_cache, progress=False, trained=trained) == path
    assert trained == []
    assert (path / "model.safetensors").stat().st_mtime_ns == stamp
    assert {"config.json", "tokenizer.json", "model.safetensors"} <= \
        {p.name for p in path.iterdir()}


def test_same_seed_gives_bit_identical_checkpoints(micro_model, tmp_path: Path,
                                                  capfd: pytest.CaptureFixture[str]) -> None:
    first = micro_model("target")
    capfd.readouterr()
    trained: list[str] = []
    again = ensure_model("micro/target", tmp_path, progress=False, trained=trained)
    assert trained == ["micro/target"]  # what the engine reports as trained
    # progress=False is silent: no transformers bar for the checkpoint it saves
    assert "Writing model shards" not in capfd.readouterr().err
    assert again != first
    assert (again / "model.safetensors").read_bytes() == \
        (first / "model.safetensors").read_bytes()


TRAIN_AND_HASH = """
import hashlib, sys, torch
torch.set_num_threads(int(sys.argv[1]))
from unlearnspec.bench.presets import get_preset
from unlearnspec.bench.tokenizer import build_tokenizer
from unlearnspec.bench.train import encode_documents, new_model, train_lm
from unlearnspec.bench.world import make_world
p = get_preset(sys.argv[2]); tok = build_tokenizer(make_world(p))
docs = make_world(p).documents("forget") + make_world(p).documents("retain")
m = new_model(p.model, tok, 0)
train_lm(m, encode_documents(docs[:256], tok), pad_id=tok.pad_token_id, epochs=1, lr=3e-3,
         batch_size=32, warmup_frac=0.05, weight_decay=0.0, seed=0, progress=False)
h = hashlib.sha256()
for _, v in sorted(m.state_dict().items()):
    h.update(v.numpy().tobytes())
print(h.hexdigest())
"""


def test_training_is_bit_identical_with_one_or_two_threads() -> None:
    # xdist workers train with one thread each, a plain run with one per core: both must
    # produce the same checkpoint, or the cache would hold different numbers per invocation
    import subprocess
    import sys

    def digest(threads: int) -> str:
        out = subprocess.run([sys.executable, "-c", TRAIN_AND_HASH, str(threads), "tiny"],
                             capture_output=True, text=True, check=True)
        return out.stdout.strip().splitlines()[-1]

    assert digest(1) == digest(2)
