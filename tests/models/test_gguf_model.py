"""A llama.cpp `.gguf` file as a model: read in its real layout (llama.cpp names, permuted
attn_q/attn_k rows, K-quant blocks), dequantized into a checkpoint whose weights and logits
are those the file encodes, measured through a spec, and its errors."""
from __future__ import annotations

import importlib.util
import shutil
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch

pytest.importorskip("gguf")

from unlearnspec.errors import RunError, SpecError  # noqa: E402

pytestmark = pytest.mark.slow  # writes, converts and runs real tiny models
from unlearnspec.models.gguf_file import SOURCE_FILE, convert_gguf  # noqa: E402
from unlearnspec.models.loading import load_causal_lm  # noqa: E402

_here = Path(__file__).parent
_spec = importlib.util.spec_from_file_location("_gguf_fixture", _here / "gguf_fixture.py")
fixture = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(fixture)
_spec = importlib.util.spec_from_file_location("_root_conftest_gguf", _here.parent / "conftest.py")
root = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(root)

# hidden 128 so ffn_down's rows (256 inputs) fit one K-quant super-block of 256
TYPES = {"blk.0.ffn_down": "Q6_K", "blk.1.ffn_down": "Q4_K", "attn_": "Q8_0",
         "ffn_up": "Q4_0", "ffn_gate": "Q5_1", "token_embd": "Q8_0"}


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    base = tmp_path_factory.mktemp("gguf")
    ck = root.make_tiny_checkpoint(base / "ck", hidden=128)
    (base / "g").mkdir()
    return ck, fixture.write_gguf(ck, base / "g" / "model.gguf", TYPES)


def test_the_fixture_holds_k_quants_in_the_real_layout(files):
    from unlearnspec.models.gguf_file import gguf_tensor_types

    types = gguf_tensor_types(files[1])
    assert types["blk.0.ffn_down.weight"] == "Q6_K" and types["blk.1.ffn_down.weight"] == "Q4_K"
    assert types["blk.0.attn_q.weight"] == "Q8_0" and types["blk.0.attn_norm.weight"] == "F32"


def test_converted_weights_are_the_files_dequantized_tensors_under_hf_names(files, tmp_path):
    ck, gguf = files
    out = convert_gguf(gguf, tmp_path / "conv", tokenizer=ck)
    from safetensors.numpy import load_file

    got = load_file(str(out / "model.safetensors"))
    want = fixture.expected_state(gguf, ck)
    assert got.keys() == want.keys()
    for name in want:
        assert np.array_equal(got[name], want[name]), name
    # the rotary permutation is undone: attn_q read raw from the file is another matrix
    raw = {t.name: t for t in __import__("gguf").GGUFReader(str(gguf)).tensors}
    q = raw["blk.0.attn_q.weight"]
    from gguf import quants

    as_stored = quants.dequantize(q.data, q.tensor_type).reshape(want[
        "model.layers.0.self_attn.q_proj.weight"].shape)
    assert not np.array_equal(as_stored, want["model.layers.0.self_attn.q_proj.weight"])
    import json

    source = json.loads((out / SOURCE_FILE).read_text())
    assert source["types"]["Q6_K"] == 1 and source["types"]["Q4_K"] == 1


def test_logits_match_the_checkpoint_carrying_the_dequantized_weights(files, tmp_path):
    ck, gguf = files
    out = convert_gguf(gguf, tmp_path / "conv", tokenizer=ck)
    loaded, tok = load_causal_lm(out)
    ref, ref_tok = load_causal_lm(ck)
    assert tok.get_vocab() == ref_tok.get_vocab()
    ref.load_state_dict({k: torch.from_numpy(v)
                         for k, v in fixture.expected_state(gguf, ck).items()})
    ids = torch.tensor([[2, 5, 6, 7, 8, 9, 10, 11]])
    with torch.no_grad():
        a, b = loaded(ids).logits, ref(ids).logits
        orig = load_causal_lm(ck)[0](ids).logits
    assert torch.allclose(a, b, atol=1e-5, rtol=1e-5)
    assert not torch.allclose(a, orig, atol=1e-3)  # the K-quant bytes are not the weights


def test_the_tokenizer_comes_from_the_files_metadata_by_default(tmp_path):
    ck = fixture.make_bpe_checkpoint(tmp_path / "ck")
    (tmp_path / "g").mkdir()
    gguf = fixture.write_gguf(ck, tmp_path / "g" / "bpe.gguf", {"attn_": "Q8_0"},
                              bpe_tokenizer=True)
    out = convert_gguf(gguf, tmp_path / "conv")
    loaded, tok = load_causal_lm(out)
    _, ref = load_causal_lm(ck)
    assert tok.get_vocab() == ref.get_vocab()
    for text in [*fixture.BPE_TEXTS, "a fox under gguf, measured"]:
        ids = ref(text, add_special_tokens=False)["input_ids"]
        assert tok(text, add_special_tokens=False)["input_ids"] == ids, text
        assert tok.decode(ids) == text
    assert tok.eos_token == "</s>" and loaded.config.vocab_size == len(ref.get_vocab())
    # transformers' GPT-2 builder adds <|endoftext|> beyond the embedding: dropped, recorded
    assert len(tok) == loaded.config.vocab_size
    assert max(tok("<|endoftext|>")["input_ids"]) < loaded.config.vocab_size
    import json

    assert json.loads((out / SOURCE_FILE).read_text())["dropped_tokens"] == ["<|endoftext|>"]


def test_a_file_without_tokenizer_metadata_asks_for_a_tokenizer_directory(files, tmp_path):
    with pytest.raises(RunError, match=r"tokenizer: \./tokenizer_dir"):
        convert_gguf(files[1], tmp_path / "conv")


def test_a_broken_file_is_a_clear_error(tmp_path):
    bad = tmp_path / "bad.gguf"
    bad.write_bytes(b"not a gguf file at all")
    with pytest.raises(RunError, match="not a readable GGUF file"):
        convert_gguf(bad, tmp_path / "conv")


def _spec(folder: Path, body: str) -> Path:
    p = folder / "spec.yaml"
    p.write_text(textwrap.dedent(body).lstrip())
    return p


def test_a_spec_measures_a_gguf_model_and_weight_metrics_read_its_tensors(files, tmp_path):
    from unlearnspec.engine.run import Run
    from unlearnspec.spec import load_spec

    ck, gguf = files
    shutil.copytree(ck, tmp_path / "ck")
    shutil.copy(gguf, tmp_path / "model.gguf")
    spec = load_spec(_spec(tmp_path, """
        version: 1
        data: {tiny: {builtin: tiny}}
        models:
          target: {path: ./ck}
          shipped: {path: ./model.gguf, tokenizer: ./ck}
        transforms:
          q8: {kind: gguf, type: Q8_0}
        metrics:
          flips: {kind: code_flip_rate, reference: target}
        claims:
          - name: moved
            subjects: [shipped]
            assert: flips @ q8 > 0.5
        """))
    assert spec.models["shipped"].tokenizer == str((tmp_path / "ck").resolve())
    run = Run(spec, cache_dir=tmp_path / "cache", progress=False)
    try:
        c = spec.claims[0]
        run.plan(run.measurements_of(c, "shipped"))
        verdict = run.evaluate(c, "shipped")
        path = run.model_path("shipped")
        key = run.model_key("shipped")
    finally:
        run.close()
    assert verdict.passed and 0.5 < verdict.lhs <= 1.0, verdict.explain()
    assert (Path(path) / SOURCE_FILE).is_file()
    # the key follows the file's bytes: another file, another converted model
    fixture.write_gguf(ck, tmp_path / "model.gguf", {**TYPES, "attn_": "Q4_0"})
    run = Run(spec, cache_dir=tmp_path / "cache", progress=False)
    try:
        assert run.model_key("shipped") != key
    finally:
        run.close()


def test_a_missing_gguf_file_is_an_error_naming_the_model(tmp_path):
    from unlearnspec.engine.run import Run
    from unlearnspec.spec import load_spec

    spec = load_spec(_spec(tmp_path, """
        version: 1
        data: {tiny: {builtin: tiny}}
        models:
          shipped: {path: ./gone.gguf}
        metrics:
          k: {kind: knowmem, split: forget}
        claims:
          - name: c
            subjects: [shipped]
            assert: k <= 100
        """))
    run = Run(spec, cache_dir=tmp_path / "cache", progress=False)
    try:
        with pytest.raises(RunError, match=r"spec.yaml:4:\d+: model 'shipped': GGUF file .*"
                                           r"gone.gguf does not exist"):
            run.model_path("shipped")
    finally:
        run.close()


@pytest.mark.parametrize("entry, match", [
    ("{path: ./ck, tokenizer: ./ck}", "'tokenizer' applies to .gguf models"),
    ("{path: ./m.gguf, revision: main}", "'revision' applies to hub models"),
    ("{path: m.gguf}", "must be a local file"),
])
def test_spec_errors_name_the_line_and_fix(tmp_path, entry, match):
    from unlearnspec.spec import load_spec

    (tmp_path / "ck").mkdir()
    with pytest.raises(SpecError, match=match) as exc:
        load_spec(_spec(tmp_path, f"""
            version: 1
            data: {{tiny: {{builtin: tiny}}}}
            models:
              m: {entry}
            metrics:
              k: {{kind: knowmem, split: forget}}
            claims:
              - name: c
                subjects: [m]
                assert: k <= 100
            """))
    assert "spec.yaml:4" in str(exc.value)


def test_unlearnspec_diff_reads_a_gguf_file(files, tmp_path, capsys):
    import json

    from unlearnspec.cli import main
    from unlearnspec.diff import diff_checkpoints

    ck, gguf = files
    assert main(["diff", str(ck), str(gguf), "--json"]) == 0
    got = json.loads(capsys.readouterr().out)
    want = diff_checkpoints(ck, convert_gguf(gguf, tmp_path / "conv", with_tokenizer=False))
    want = json.loads(json.dumps(want.to_json()))
    assert got.pop("subject").endswith("subject") and want.pop("subject")
    assert got == want
    assert got["overall"]["rtn4"]["gamma"] is not None


def test_diff_takes_llama_cpp_and_torchao_transforms_and_agrees_with_gamma(files, tmp_path,
                                                                           capsys):
    import json

    from unlearnspec.cli import main
    from unlearnspec.diff import DiffError, parse_transform
    from unlearnspec.transforms.weightspace import update_retention

    ck, gguf = files
    assert main(["diff", str(ck), str(gguf), "--json", "--transform", "q4_0",
                 "torchao-int8"]) == 0
    overall = json.loads(capsys.readouterr().out)["overall"]
    conv = convert_gguf(gguf, tmp_path / "conv", with_tokenizer=False)
    for name in ("q4_0", "torchao-int8"):
        want = update_retention(ck, conv, parse_transform(name)).value
        assert overall[name]["gamma"] == pytest.approx(want, rel=1e-9), name
    with pytest.raises(DiffError, match="q8_0"):
        parse_transform("q8_1")
