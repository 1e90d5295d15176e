"""Local file readers and MUSE corpora from a local MUSE-layout or hub-layout directory."""
from __future__ import annotations

import json
import sys

import pytest

from unlearnspec.data import Corpus, corpus_from_hub, load_corpus, read_records, read_texts
from unlearnspec.errors import MissingExtraError, RunError

DOCS = ["alpha was born in the north city", "beta lives in the red city"]


def test_text_json_jsonl_readers(tmp_path):
    (tmp_path / "a.txt").write_text(DOCS[0])
    (tmp_path / "b.json").write_text(json.dumps([{"text": DOCS[1]}]))
    (tmp_path / "c.jsonl").write_text("\n".join(json.dumps(d) for d in DOCS) + "\n")
    assert read_texts(tmp_path / "a.txt") == [DOCS[0]]
    assert read_texts(tmp_path / "c.jsonl") == DOCS
    assert read_texts(tmp_path) == [DOCS[0], DOCS[1], *DOCS]      # sorted by file name
    assert read_records(tmp_path / "b.json") == [{"text": DOCS[1]}]


def test_parquet_reader(tmp_path):
    pa = pytest.importorskip("pyarrow")
    import pyarrow.parquet as pq

    pq.write_table(pa.table({"text": DOCS}), tmp_path / "d.parquet")
    assert read_texts(tmp_path / "d.parquet") == DOCS


def test_parquet_without_pyarrow_names_the_hub_extra(tmp_path, monkeypatch):
    (tmp_path / "d.parquet").write_bytes(b"PAR1")
    monkeypatch.setitem(sys.modules, "pyarrow.parquet", None)   # makes the import fail
    with pytest.raises(MissingExtraError, match=r"unlearnspec\[hub\]"):
        read_records(tmp_path / "d.parquet")


@pytest.mark.parametrize("name, content, message", [
    ("missing.json", None, "does not exist"),
    ("empty.jsonl", "", "is empty"),
    ("bad.jsonl", '{"text": 1}\n{oops\n', r"bad\.jsonl:2: invalid JSON"),
    ("nums.json", "[1, 2]", "record 0 is not a string"),
])
def test_bad_files_are_errors_naming_the_file(tmp_path, name, content, message):
    if content is not None:
        (tmp_path / name).write_text(content)
    with pytest.raises(RunError, match=message) as exc:
        read_texts(tmp_path / name)
    assert name in str(exc.value)


def write_hub_layout(root, fmt="jsonl"):
    """A local copy of a hub dataset repo in MUSE-News's subsets/splits."""
    splits = {
        "verbmem/forget": [{"prompt": "alpha was born", "gt": "in the north city"}],
        "knowmem/forget_qa": [{"question": "where was alpha born ?", "answer": "north city"}],
        "knowmem/forget_qa_icl": [{"question": "who lives in the red city ?", "answer": "beta"}],
        "privleak/forget": [{"text": d} for d in DOCS],
        "privleak/holdout": [{"text": "gamma works at the blue river"}],
        "raw/retain1": [{"text": "delta likes the green year"}],
    }
    for rel, rows in splits.items():
        path = root / f"{rel}-00000-of-00001.{fmt}"
        path.parent.mkdir(parents=True, exist_ok=True)
        if fmt == "parquet":
            import pyarrow as pa
            import pyarrow.parquet as pq

            pq.write_table(pa.Table.from_pylist(rows), path)
        else:
            path.write_text("\n".join(json.dumps(r) for r in rows))
    return root


@pytest.mark.parametrize("fmt", ["jsonl", "parquet"])
def test_hub_layout_directory_converts_to_a_muse_corpus(tmp_path, fmt):
    if fmt == "parquet":
        pytest.importorskip("pyarrow")
    snap = write_hub_layout(tmp_path / "snap", fmt)
    corpus = load_corpus(snap, tmp_path / "cache")
    assert corpus.privleak("forget") == DOCS
    assert corpus.verbmem() == [{"prompt": "alpha was born", "gt": "in the north city"}]
    assert corpus.knowmem_icl("forget")[0]["answer"] == "beta"
    assert corpus.raw("retain") == ["delta likes the green year"]
    assert load_corpus(snap, tmp_path / "cache").root == corpus.root     # converted once


def test_muse_layout_directory_is_used_in_place(tmp_path):
    root = tmp_path / "muse"
    (root / "privleak").mkdir(parents=True)
    (root / "privleak" / "forget.json").write_text(json.dumps(DOCS))
    assert load_corpus(root, tmp_path / "cache") == Corpus(root)


def test_training_texts_only_directory_is_used_in_place(tmp_path):
    """RMU's forget / retain corpora (specs/wmdp.yaml) need no evaluation files."""
    root = tmp_path / "corpora"
    (root / "raw").mkdir(parents=True)
    (root / "raw" / "forget.json").write_text(json.dumps(DOCS))
    corpus = load_corpus(root, tmp_path / "cache")
    assert corpus == Corpus(root) and corpus.raw("forget") == DOCS


def test_directory_that_is_not_muse_is_an_error(tmp_path):
    (tmp_path / "junk").mkdir()
    with pytest.raises(RunError, match="is not a MUSE dataset"):
        load_corpus(tmp_path / "junk", tmp_path / "cache")


def test_hub_offline_without_a_cached_copy_says_so(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hf"))
    with pytest.raises(RunError, match="HF_HUB_OFFLINE is set"):
        corpus_from_hub("muse-bench/MUSE-News-not-here", tmp_path / "cache")
