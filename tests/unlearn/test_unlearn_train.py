"""The shared training loop end to end: what it saves, what it logs, that it is
deterministic, that regularizers protect the retain set, and that bad inputs stop it early."""
from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from unlearnspec.errors import RunError
from unlearnspec.models.loading import load_causal_lm
from unlearnspec.registry import Component
from unlearnspec.unlearn import METHODS, UnlearnConfig, run_unlearning
from unlearnspec.unlearn.data import collate, tokenize_documents
from unlearnspec.unlearn.losses import mean_nll

pytestmark = pytest.mark.slow


def nll(checkpoint: Path, texts: list[str]) -> float:
    """Mean next-token cross-entropy of `checkpoint` on `texts` (one batch)."""
    model, tok = load_causal_lm(checkpoint)
    chunks = tokenize_documents(texts, tok, max_length=64).ids
    with torch.no_grad():
        return float(mean_nll(model, collate(chunks, tok.pad_token_id)))


def test_output_is_a_safetensors_checkpoint_with_tokenizer_and_a_json_log(unlearn, target,
                                                                          corpus) -> None:
    out, log = unlearn("ga_gdr", max_steps=3)
    assert (out / "model.safetensors").is_file() and (out / "tokenizer.json").is_file()
    assert not list(out.glob("*.bin"))
    model, tok = load_causal_lm(out)
    assert tok.get_vocab() == load_causal_lm(target)[1].get_vocab()
    json.dumps(log)  # JSON-able as the engine stores it
    assert log["steps"] == 3 == len(log["losses"])
    first = log["losses"][0]
    assert first["total"] == pytest.approx(first["forget"] + 1.0 * first["retain"])
    assert log["forget"]["documents"] == len(corpus[0]) and log["sure"] is None
    assert log["seconds"] > 0


def test_same_seed_gives_a_bit_identical_checkpoint(unlearn) -> None:
    a, _ = unlearn("npo_klr", seed=5, max_steps=4)
    b, _ = unlearn("npo_klr", seed=5, max_steps=4)
    c, _ = unlearn("npo_klr", seed=6, max_steps=4)
    assert (a / "model.safetensors").read_bytes() == (b / "model.safetensors").read_bytes()
    ta, tc = load_file(a / "model.safetensors"), load_file(c / "model.safetensors")
    assert any(not torch.equal(ta[k], tc[k]) for k in ta)  # the seed orders the batches


def test_an_epoch_is_one_pass_over_the_forget_set(unlearn, corpus) -> None:
    _, log = unlearn("ga", epochs=1, batch_size=4)
    micro = math.ceil(log["forget"]["chunks"] / 4)  # batches in one pass
    assert log["steps"] == micro
    _, half = unlearn("ga", epochs=0.5, batch_size=4, grad_accum=2)
    assert half["steps"] == math.ceil(math.ceil(0.5 * micro) / 2)
    _, capped = unlearn("ga", epochs=100, max_steps=2)
    assert capped["steps"] == 2


@pytest.mark.parametrize("family", ["ga", "npo"])
def test_regularizers_keep_the_retain_loss_lower(unlearn, target, corpus, family: str) -> None:
    forget, retain = corpus
    before = nll(target, forget)
    runs = {name: unlearn(name, epochs=4, alpha=1.0)[0]
            for name in (family, f"{family}_gdr", f"{family}_klr")}
    retain_nll = {name: nll(out, retain) for name, out in runs.items()}
    assert nll(runs[family], forget) > before  # the forget set was unlearned
    assert retain_nll[f"{family}_gdr"] < retain_nll[family]
    assert retain_nll[f"{family}_klr"] < retain_nll[family]


def test_progress_bar_shows_running_losses(base, corpus, tmp_path, monkeypatch) -> None:
    """Bars draw on the real terminal only; here a recording console stands in for one."""
    import io

    from rich.console import Console

    import unlearnspec.unlearn.progress as progress

    screen = io.StringIO()
    monkeypatch.setattr(progress, "progress_enabled", lambda requested: requested)
    monkeypatch.setattr(progress, "progress_console",
                        lambda: Console(file=screen, force_terminal=True, width=120))
    comp = METHODS.get("ga_klr")
    run_unlearning(comp, comp.make_config({"max_steps": 2, "max_length": 16}), base=base,
                   forget=corpus[0], retain=corpus[1], out=tmp_path / "o", seed=0,
                   progress=True)
    shown = screen.getvalue()
    assert "unlearn ga_klr" in shown and "retain" in shown


def test_no_progress_bar_when_the_terminal_is_not_a_tty(base, corpus, tmp_path, capsys
                                                        ) -> None:
    comp = METHODS.get("ga_klr")
    run_unlearning(comp, comp.make_config({"max_steps": 2, "max_length": 16}), base=base,
                   forget=corpus[0], retain=corpus[1], out=tmp_path / "o", seed=0,
                   progress=True)
    shown = capsys.readouterr()
    assert "unlearn ga_klr" not in shown.out + shown.err


# ---------------------------------------------------------------- errors before training


def _run(name: str, base: Path, out: Path, forget: list[str], retain: list[str],
         **kw) -> dict:
    comp = METHODS.get(name)
    return run_unlearning(comp, comp.make_config({"max_length": 16}), base=base, forget=forget,
                          retain=retain, out=out, seed=0, progress=False, **kw)


@pytest.mark.parametrize("forget, retain, name, message", [
    ([], ["x"], "ga", "the forget set is empty"),
    (["", "  "], ["red"], "ga", "none of the 2 forget documents has a token"),
    (["red city"], [], "npo_gdr", "the retain set is empty"),
])
def test_bad_data_is_an_error_before_training(base, tmp_path, forget, retain, name,
                                              message) -> None:
    out = tmp_path / "out"
    with pytest.raises(RunError, match=message):
        _run(name, base, out, forget, retain)
    assert not out.exists()


def test_a_method_without_retain_loss_ignores_an_empty_retain_set(base, tmp_path) -> None:
    log = _run("npo", base, tmp_path / "o", ["red city of alpha"], [])
    assert log["retain"] is None and all(e["retain"] == 0.0 for e in log["losses"])


def test_existing_output_is_not_overwritten(base, tmp_path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    with pytest.raises(RunError, match="refusing to overwrite"):
        _run("ga", base, out, ["red city"], [])
    assert (out / "keep.txt").read_text() == "mine"


def test_missing_base_and_unavailable_device_are_errors(base, tmp_path) -> None:
    with pytest.raises(RunError, match="not a directory"):
        _run("ga", tmp_path / "nowhere", tmp_path / "o", ["red city"], [])
    if not torch.cuda.is_available():
        with pytest.raises(RunError, match="CUDA is not available"):
            _run("ga", base, tmp_path / "o", ["red city"], [], device="cuda")


def test_a_component_that_is_not_a_method_is_refused(base, tmp_path) -> None:
    bogus = Component("bogus", UnlearnConfig, "unlearnspec.unlearn.losses:ga_loss")
    with pytest.raises(RunError, match="without name, needs_reference"):
        run_unlearning(bogus, UnlearnConfig(), base=base, forget=["red"], retain=[],
                       out=tmp_path / "o", seed=0, progress=False)


def test_bf16_autocast_trains_fp32_master_weights(unlearn) -> None:
    """The GPU path (bf16 autocast), exercised on the CPU: weights stay and are saved fp32."""
    out, log = unlearn("npo_klr", max_steps=2, precision="bf16")
    assert log["precision"] == "bf16"
    assert all(t.dtype == torch.float32 for t in load_file(out / "model.safetensors").values())
    assert all(math.isfinite(e["total"]) for e in log["losses"])


def test_the_reference_is_one_frozen_eval_copy_and_only_when_needed(target) -> None:
    from unlearnspec.unlearn.prepare import frozen_reference

    model, _ = load_causal_lm(target)
    assert frozen_reference(model, METHODS.get("ga_gdr").load(), bf16=False) is None
    ref = frozen_reference(model, METHODS.get("npo_klr").load(), bf16=False)
    assert ref is not model and not ref.training
    assert not any(p.requires_grad for p in ref.parameters())
    assert all(torch.equal(a, b) for a, b in zip(ref.parameters(), model.parameters()))
