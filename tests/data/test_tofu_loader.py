"""data/tofu.py: the hub's TOFU layout (JSON lines per split, or SPLIT/train-*.parquet) becomes a
corpus with TOFU's evaluation records and the forget/retain training texts in the template."""
from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

from unlearnspec.data import Corpus, load_corpus
from unlearnspec.data.tofu import items, meta, parse_fragment, retain_of
from unlearnspec.errors import RunError

ROOT = Path(__file__).resolve().parents[2]


def _mini():
    spec = importlib.util.spec_from_file_location("_tofu_mini_loader",
                                                  ROOT / "tests" / "metrics" / "tofu_miniature.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)  # type: ignore[union-attr]
    return module


def test_fragment_names_the_forget_split_and_template() -> None:
    assert parse_fragment("forget10") == ("forget10", "phi")
    assert parse_fragment("forget05:llama2") == ("forget05", "llama2")
    assert parse_fragment("Stephen King") is None  # an RWKU target
    with pytest.raises(RunError, match="no split 'forget20'"):
        parse_fragment("forget20")
    with pytest.raises(RunError, match="template 'mistral' is unknown"):
        parse_fragment("forget10:mistral")
    assert [retain_of(f) for f in ("forget01", "forget05", "forget10")] == \
        ["retain99", "retain95", "retain90"]


def test_hub_layout_becomes_a_corpus(tmp_path: Path) -> None:
    src = _mini().write_tofu(tmp_path / "tofu")
    corpus = load_corpus(f"{src}#forget10", tmp_path / "cache")
    root = corpus.root
    assert meta(root) == {"forget": "forget10", "retain": "retain90", "template": "phi"}
    forget = items(root, "forget")
    first = json.loads((src / "forget10_perturbed.json").read_text().splitlines()[0])
    assert forget[0].question == first["question"]
    assert forget[0].base == first["paraphrased_answer"]  # forget scores the paraphrase
    assert list(forget[0].perturbed) == first["perturbed_answer"]
    authors = items(root, "real_authors")
    assert all(it.base == it.answer for it in authors)  # real authors score the answer itself
    # training texts in the template; RT's refusal questions are the forget questions
    assert corpus.raw("forget")[0] == f"Question: {first['question']}\nAnswer: {first['answer']}"
    assert len(corpus.raw("retain")) == 9
    assert corpus.knowmem("forget")[0]["question"] == first["question"]
    # llama2's tags make other training texts, in another corpus directory
    llama = load_corpus(f"{src}#forget10:llama2", tmp_path / "cache")
    assert llama.root != root
    assert llama.raw("forget")[0] == f"[INST] {first['question']} [/INST]{first['answer']}"


def test_parquet_layout_reads_the_same(tmp_path: Path) -> None:
    pa = pytest.importorskip("pyarrow")
    import pyarrow.parquet as pq

    recs = _mini().records()
    src = tmp_path / "hub"
    for name, rows in recs.items():
        (src / name).mkdir(parents=True)
        pq.write_table(pa.Table.from_pylist(rows), src / name / "train-00000-of-00001.parquet")
    corpus = load_corpus(f"{src}#forget10", tmp_path / "cache")
    assert [it.question for it in items(corpus.root, "retain")] == \
        [r["question"] for r in recs["retain_perturbed"]]


def test_a_tofu_directory_without_a_split_says_so(tmp_path: Path) -> None:
    src = _mini().write_tofu(tmp_path / "tofu")
    with pytest.raises(RunError, match="#forget10"):
        load_corpus(str(src), tmp_path / "cache")


def test_a_record_without_perturbed_answers_names_the_file_and_record(tmp_path: Path) -> None:
    src = _mini().write_tofu(tmp_path / "tofu")
    f = src / "retain_perturbed.json"
    rows = [json.loads(line) for line in f.read_text().splitlines()]
    rows[2]["perturbed_answer"] = []
    f.write_text("".join(json.dumps(r) + "\n" for r in rows))
    with pytest.raises(RunError, match=r"retain_perturbed.json: record 2 needs 'perturbed_answer'"):
        load_corpus(f"{src}#forget10", tmp_path / "cache")


def test_a_missing_evaluation_split_is_an_error(tmp_path: Path) -> None:
    src = _mini().write_tofu(tmp_path / "tofu")
    (src / "world_facts_perturbed.json").unlink()
    with pytest.raises(RunError, match="no TOFU split 'world_facts_perturbed'"):
        load_corpus(f"{src}#forget10", tmp_path / "cache")


def test_bad_json_line_is_located(tmp_path: Path) -> None:
    src = _mini().write_tofu(tmp_path / "tofu")
    f = src / "forget10_perturbed.json"
    lines = f.read_text().splitlines()
    lines[3] = lines[3][:-5]
    f.write_text("\n".join(lines) + "\n")
    with pytest.raises(RunError, match=r"forget10_perturbed.json:4: invalid JSON line"):
        load_corpus(f"{src}#forget10", tmp_path / "cache")


def test_without_training_files_unlearning_says_which_is_missing(tmp_path: Path) -> None:
    src = _mini().write_tofu(tmp_path / "tofu")
    (src / "retain90.json").unlink()
    corpus = Corpus(load_corpus(f"{src}#forget10", tmp_path / "cache").root)
    assert corpus.raw("forget")
    with pytest.raises(RunError, match="no training texts for 'retain'"):
        corpus.raw("retain")


def test_hub_id_reads_the_local_hub_cache_offline(tmp_path: Path, monkeypatch) -> None:
    """`locuslab/TOFU#forget10` goes through the hub path (data/hub_datasets.py's snapshot_dataset):
    offline, a snapshot already in the hub cache is used; none is a clear error."""
    pytest.importorskip("huggingface_hub")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hf"))
    # huggingface_hub reads the variable once, at import (another test may have imported it)
    import huggingface_hub.constants

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path / "hf"))
    with pytest.raises(RunError, match="HF_HUB_OFFLINE is set and dataset 'locuslab/TOFU'"):
        load_corpus("locuslab/TOFU#forget10", tmp_path / "cache")
    repo = tmp_path / "hf" / "datasets--locuslab--TOFU"
    commit = "0123456789abcdef0123456789abcdef01234567"
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text(commit)
    _mini().write_tofu(repo / "snapshots" / commit)
    corpus = load_corpus("locuslab/TOFU#forget10", tmp_path / "cache")
    assert meta(corpus.root)["retain"] == "retain90"
    assert len(items(corpus.root, "forget")) == 6
