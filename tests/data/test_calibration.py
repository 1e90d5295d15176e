"""GPTQ/AWQ calibration sets: packed, seeded windows as GPTQ's own sampler draws them, from a
general text file named in the spec (its content, not its place, in the cache key)."""
from __future__ import annotations

import random
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from unlearnspec.data.calibration import (calibration_fingerprint, calibration_sequences,
                                          read_calibration_file)
from unlearnspec.errors import RunError

TEXTS = [" ".join(f"w{(i * 7 + j) % 23}" for j in range(30 + i)) for i in range(6)]


class WordTok:
    """A whitespace tokenizer (id = word number + 1, BOS = 0) standing in for a real one in
    a unit test of the sampler, so windows can be computed by hand."""

    def __call__(self, text, add_special_tokens=True):
        ids = [int(w[1:]) + 1 if w.startswith("w") else 99 for w in text.split()]
        return {"input_ids": ([0] if add_special_tokens else []) + ids}


def test_windows_are_gptqs_sampler_over_the_joined_texts():
    seqs = calibration_sequences(TEXTS, WordTok(), n_samples=5, seq_len=16, seed=3)
    stream = WordTok()("\n\n".join(TEXTS))["input_ids"]
    random.seed(3)   # gptq/datautils.py: random.seed(seed); randint(0, n - seqlen - 1)
    expected = []
    for _ in range(5):
        i = random.randint(0, len(stream) - 16 - 1)
        expected.append(stream[i:i + 16])
    assert seqs == expected


@settings(max_examples=40, deadline=None)
@given(n=st.integers(1, 20), seq_len=st.integers(1, 60), seed=st.integers(0, 2**16))
def test_every_window_is_full_length_and_contiguous(n, seq_len, seed):
    stream = WordTok()("\n\n".join(TEXTS))["input_ids"]
    seqs = calibration_sequences(TEXTS, WordTok(), n_samples=n, seq_len=seq_len, seed=seed)
    assert len(seqs) == n
    for s in seqs:
        assert len(s) == seq_len
        assert any(stream[i:i + seq_len] == s for i in range(len(stream) - seq_len + 1))
    assert seqs == calibration_sequences(TEXTS, WordTok(), n_samples=n, seq_len=seq_len,
                                         seed=seed)


def test_first_keeps_the_earlier_one_text_per_sample_cut():
    seqs = calibration_sequences(TEXTS, WordTok(), n_samples=2, seq_len=10, sampling="first")
    assert seqs == [WordTok()(TEXTS[0])["input_ids"][:10], WordTok()(TEXTS[1])["input_ids"][:10]]


def test_too_little_text_for_one_window_is_an_error():
    with pytest.raises(RunError, match="too short for windows of seq_len=2048"):
        calibration_sequences(TEXTS, WordTok(), n_samples=1, seq_len=2048)


def test_missing_or_empty_file_is_an_error_naming_it(tmp_path):
    with pytest.raises(RunError, match=r"calibration file .*general\.txt does not exist"):
        read_calibration_file(tmp_path / "general.txt")
    (tmp_path / "empty.txt").write_text("  \n")
    with pytest.raises(RunError, match="holds no text"):
        read_calibration_file(tmp_path / "empty.txt")


SPEC = """version: 1
models:
  base: {{path: ./ckpt}}
transforms:
  gptq4: {{kind: gptq, bits: 4, {calib}}}
"""


def _key(tmp_path: Path, calib: str, folder: str = "a") -> str:
    from unlearnspec.engine.run import Run
    from unlearnspec.spec.loader import load_spec_text

    base = tmp_path / folder
    base.mkdir(exist_ok=True)
    spec = load_spec_text(SPEC.format(calib=calib), base_dir=base)
    return Run(spec, cache_dir=tmp_path / "cache", progress=False).transform_key("gptq4")


def test_transform_key_follows_the_calibration_files_content_not_its_place(tmp_path):
    for folder in ("a", "b"):
        (tmp_path / folder).mkdir()
        (tmp_path / folder / "general.txt").write_text("one two three")
    k = _key(tmp_path, "calibration_path: general.txt")
    assert k == _key(tmp_path, "calibration_path: general.txt", folder="b")
    assert k != _key(tmp_path, "calibration_path: general.txt, seed: 1")
    (tmp_path / "a" / "general.txt").write_text("one two four")
    assert k != _key(tmp_path, "calibration_path: general.txt")
    assert calibration_fingerprint(["ab", "c"]) != calibration_fingerprint(["a", "bc"])


def test_calibration_and_calibration_path_together_are_refused():
    from unlearnspec.registry import ConfigError
    from unlearnspec.transforms.registry import TRANSFORMS

    with pytest.raises(ConfigError, match="not both"):
        TRANSFORMS.get("gptq").make_config({"calibration": "news", "calibration_path": "x.txt"})
