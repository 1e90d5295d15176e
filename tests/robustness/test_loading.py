"""Hostile and mismatched checkpoints, through a real spec run: pickle weights are refused
unless the spec opts in, code shipped inside a checkpoint never runs unless the spec trusts
it, and a claim never compares models whose tokenizers differ."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from unlearnspec.errors import RunError

from robust_helpers import (copy_checkpoint, evaluate, pickle_checkpoint, retokenized_checkpoint,
                      write_spec)

pytestmark = pytest.mark.slow  # loads and measures a real (tiny) model

SPEC = """\
version: 1
data:
  world: {builtin: micro}
models:
  subject: {path: ./ckpt OPTIONS}
metrics:
  loss: {kind: mia_loss}
claims:
  - name: loads
    subjects: [subject]
    assert: loss >= 0
"""


def spec_for(tmp_path: Path, options: str = "") -> Path:
    return write_spec(tmp_path, SPEC.replace(" OPTIONS", f", {options}" if options else ""))


def test_pickle_checkpoint_is_refused_naming_the_opt_in_and_the_risk(
        tiny_checkpoint: Path, tmp_path: Path, micro_data: Path) -> None:
    pickle_checkpoint(tiny_checkpoint, tmp_path / "ckpt")
    with pytest.raises(RunError) as info:
        evaluate(spec_for(tmp_path), micro_data)
    message = str(info.value)
    assert "pytorch_model.bin" in message
    assert "`allow_pickle: true`" in message
    assert "arbitrary code" in message
    assert "model 'subject'" in message and "spec.yaml:5" in message


def test_pickle_checkpoint_loads_when_the_spec_allows_it(
        tiny_checkpoint: Path, tmp_path: Path, micro_data: Path) -> None:
    pickle_checkpoint(tiny_checkpoint, tmp_path / "ckpt")
    verdict = evaluate(spec_for(tmp_path, "allow_pickle: true"), micro_data)
    assert verdict.passed and verdict.lhs > 0


def remote_code_checkpoint(src: Path, dst: Path, marker: Path) -> Path:
    """The tiny model whose config.json maps AutoModelForCausalLM to a modeling file in the
    directory; importing that file would create `marker`."""
    copy_checkpoint(src, dst)
    (dst / "modeling_evil.py").write_text(
        f"from pathlib import Path\nPath({str(marker)!r}).write_text('ran')\n"
        "from transformers import LlamaForCausalLM, LlamaConfig\n"
        "class EvilConfig(LlamaConfig):\n    model_type = 'evil'\n"
        "class EvilForCausalLM(LlamaForCausalLM):\n    config_class = EvilConfig\n")
    config = json.loads((dst / "config.json").read_text())
    config["auto_map"] = {"AutoConfig": "modeling_evil.EvilConfig",
                          "AutoModelForCausalLM": "modeling_evil.EvilForCausalLM"}
    (dst / "config.json").write_text(json.dumps(config))
    return dst


def test_checkpoint_with_its_own_code_is_refused_and_the_code_never_runs(
        tiny_checkpoint: Path, tmp_path: Path, micro_data: Path) -> None:
    marker = tmp_path / "code-ran"
    remote_code_checkpoint(tiny_checkpoint, tmp_path / "ckpt", marker)
    with pytest.raises(RunError) as info:
        evaluate(spec_for(tmp_path), micro_data)
    message = str(info.value)
    assert "`trust_remote_code: true`" in message
    assert "modeling_evil.EvilForCausalLM" in message
    assert not marker.exists()


# a claim comparing model 'other' with model 'base' (two checkpoint folders next to it)
TWO_MODELS = """\
    version: 1
    data:
      world: {builtin: micro}
    models:
      base: {path: ./base}
      other: {path: ./other}
    metrics:
      loss: {kind: mia_loss}
    claims:
      - name: same-leakage
        subjects: [other]
        assert: loss <= base + 1
    """


def test_tokenizer_mismatch_between_subject_and_reference_is_an_error_naming_both(
        tiny_checkpoint: Path, tmp_path: Path, micro_data: Path) -> None:
    copy_checkpoint(tiny_checkpoint, tmp_path / "base")
    retokenized_checkpoint(tiny_checkpoint, tmp_path / "other")
    spec = write_spec(tmp_path, TWO_MODELS)
    with pytest.raises(RunError) as info:
        evaluate(spec, micro_data)
    message = str(info.value)
    assert "'base'" in message and "'other'" in message
    assert "tokenizers differ" in message
    assert "spec.yaml:10" in message  # the claim's line


def test_same_tokenizer_in_two_checkpoints_is_compared(
        tiny_checkpoint: Path, tmp_path: Path, micro_data: Path) -> None:
    """The control for the test above: two copies of one checkpoint compare fine."""
    copy_checkpoint(tiny_checkpoint, tmp_path / "base")
    copy_checkpoint(tiny_checkpoint, tmp_path / "other")
    spec = write_spec(tmp_path, TWO_MODELS)
    verdict = evaluate(spec, micro_data)
    assert verdict.passed and verdict.lhs == verdict.rhs - 1


def test_hub_model_with_only_pickle_weights_is_refused(
        tiny_checkpoint: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Pickle files are not downloaded without the opt-in, so the snapshot has no weights;
    the error says why instead of transformers' 'no file named model.safetensors'."""
    from unlearnspec.models import resolve

    snap = pickle_checkpoint(tiny_checkpoint, tmp_path / "snapshots" / ("c" * 40))
    (snap / "pytorch_model.bin").unlink()  # what the safetensors-only download leaves
    # test double for huggingface_hub's download: the snapshot it would return
    monkeypatch.setattr(resolve, "snapshot", lambda *a, **k: snap)
    with pytest.raises(RunError) as info:
        resolve.resolve_checkpoint("org/tiny", revision=None, base=tmp_path)
    message = str(info.value)
    assert "hub model 'org/tiny' (at " + "c" * 40 + ")" in message
    assert "`allow_pickle: true`" in message and "arbitrary code" in message
