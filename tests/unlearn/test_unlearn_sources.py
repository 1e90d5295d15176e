"""Training data as MUSE builds it: `.txt` corpora tokenized whole and cut into BOS-prefixed
windows (the last filled from the start), retain1 only on a MUSE directory, and one example
per document where the spec asks for it. (The window packing was checked identical to MUSE's
own `baselines/dataset.py` DefaultDataset, run beside it on such a fixture, for max_len 16,
33, 64 and 2048.)"""
from __future__ import annotations

import json
import math
import random
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from unlearnspec.data import Corpus
from unlearnspec.unlearn.sources import pack_windows, select

BOS = 2


def test_windows_prepend_bos_and_fill_the_last_from_the_start() -> None:
    ids = list(range(10, 17))  # 7 tokens, max_length 4: windows of 3 + BOS
    assert pack_windows(ids, 4, BOS) == [[2, 10, 11, 12], [2, 13, 14, 15], [2, 16, 2, 10]]
    assert pack_windows(ids, 4, None) == [[10, 11, 12, 13], [14, 15, 16, 10]]
    # shorter than one window: MUSE concatenates the window with itself, then cuts
    assert pack_windows([5, 6], 8, BOS) == [[2, 5, 6, 2, 5, 6]]
    assert pack_windows([], 8, BOS) == []


@given(st.lists(st.integers(3, 99), min_size=1, max_size=300), st.integers(2, 40))
def test_every_token_is_in_exactly_one_window_in_order(ids: list[int], max_length: int) -> None:
    windows = pack_windows(ids, max_length, BOS)
    step = max_length - 1
    assert len(windows) == math.ceil(len(ids) / step)
    body = [t for w in windows[:-1] for t in w[1:]]
    last = windows[-1]
    assert all(w[0] == BOS and len(w) == max_length for w in windows[:-1])
    tail = ids[len(body):]
    assert body + tail == ids and last[1:1 + len(tail)] == tail
    # filled with the (full) first window; a text shorter than one window is doubled
    assert len(last) == (max_length if len(windows) > 1 else min(max_length, 2 * (1 + len(ids))))


def write_muse_dir(root: Path, words: list[str], seed: int = 0) -> dict[str, list[str]]:
    """A corpus as MUSE's load_data.py writes it: raw/SPLIT.json and raw/SPLIT.txt (the
    documents joined by blank lines) for forget, holdout, retain1, retain2."""
    rng = random.Random(seed)
    (root / "raw").mkdir(parents=True)
    splits = {}
    for split in ("forget", "holdout", "retain1", "retain2"):
        docs = [" ".join(rng.choice(words) for _ in range(rng.randint(5, 60)))
                for _ in range(rng.randint(4, 10))]
        (root / "raw" / f"{split}.json").write_text(json.dumps(docs))
        (root / "raw" / f"{split}.txt").write_text("\n\n".join(docs))
        splits[split] = docs
    return splits


def test_a_muse_directory_trains_on_the_txt_files_and_retain1_only(tmp_path: Path) -> None:
    splits = write_muse_dir(tmp_path, ["alpha", "beta", "gamma"])
    corpus = Corpus(tmp_path)
    forget, retain = select(corpus, "forget"), select(corpus, "retain")
    assert forget.packing == retain.packing == "windows"
    assert forget.files == ("raw/forget.txt",) and retain.files == ("raw/retain1.txt",)
    assert retain.texts == ["\n\n".join(splits["retain1"])]
    assert corpus.raw("retain") == splits["retain1"]  # not retain1 + retain2
    docs = select(corpus, "forget", "documents")
    assert docs.texts == splits["forget"] and docs.files == ("raw/forget.json",)


def test_a_plain_corpus_stays_one_example_per_document(tmp_path: Path) -> None:
    (tmp_path / "raw").mkdir()
    (tmp_path / "raw" / "forget.json").write_text(json.dumps(["a b", "c d"]))
    (tmp_path / "raw" / "retain.json").write_text(json.dumps(["e f"]))
    corpus = Corpus(tmp_path)
    assert select(corpus, "forget").packing == "documents"
    assert select(corpus, "forget").texts == ["a b", "c d"]
    windows = select(corpus, "forget", "windows")
    assert windows.texts == ["a b\n\nc d"] and windows.files == ("raw/forget.json",)


def test_a_hub_converted_muse_corpus_is_a_muse_directory(tmp_path: Path) -> None:
    """data/hub_datasets.py writes MUSE's retain1 split as raw/retain.json and keeps raw/retain2.json:
    windows over the joined documents, as load_data.py's .txt would hold them."""
    (tmp_path / "raw").mkdir()
    for name, docs in [("forget", ["a b", "c"]), ("retain", ["r1"]), ("retain2", ["r2"])]:
        (tmp_path / "raw" / f"{name}.json").write_text(json.dumps(docs))
    corpus = Corpus(tmp_path)
    assert select(corpus, "forget").texts == ["a b\n\nc"]
    assert select(corpus, "retain").texts == ["r1"]
    assert select(corpus, "retain").files == ("raw/retain.json",)


@pytest.mark.slow
def test_unlearning_a_muse_directory_uses_exactly_muses_windows(tmp_path: Path, target: Path,
                                                               unlearn) -> None:
    from unlearnspec.models.loading import load_causal_lm
    from unlearn_helpers import vocabulary_words

    tok = load_causal_lm(target)[1]
    splits = write_muse_dir(tmp_path / "corpus", vocabulary_words(target)[:40], seed=3)
    corpus = Corpus(tmp_path / "corpus")
    max_length = 32
    _, log = unlearn("ga_gdr", forget=select(corpus, "forget"), retain=select(corpus, "retain"),
                     max_length=max_length, max_steps=1)
    for split, name in (("forget", "forget"), ("retain", "retain1")):
        n = len(tok("\n\n".join(splits[name]), add_special_tokens=False)["input_ids"])
        windows = math.ceil(n / (max_length - 1))
        assert log[split]["packing"] == "windows"
        assert log[split]["files"] == [f"raw/{name}.txt"]
        assert log[split]["chunks"] == windows
        # every window is full except that the last one is filled up from the first
        assert log[split]["tokens"] == windows * max_length or windows == 1
