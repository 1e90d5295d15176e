from __future__ import annotations

import threading
from pathlib import Path

import pytest

from unlearnspec.bench import ensure_data, ensure_model, preset_dir
from unlearnspec.bench.names import split_model_name
from unlearnspec.bench.world import make_world
from unlearnspec.data import Corpus
from unlearnspec.errors import RunError


def test_corpus_has_muse_layout_and_sizes(micro_corpus: Corpus) -> None:
    w = make_world("micro")
    assert len(micro_corpus.knowmem("forget")) == 5 * len(w.forget) - w.n_icl
    assert len(micro_corpus.knowmem("retain")) == w.n_retain_qa
    assert len(micro_corpus.knowmem_icl("forget")) == w.n_icl
    assert micro_corpus.raw("forget") == w.documents("forget")
    assert micro_corpus.raw("retain") == w.documents("retain")
    assert len(micro_corpus.privleak("forget")) == len(micro_corpus.privleak("holdout"))
    assert [r["prompt"] + r["gt"] for r in micro_corpus.verbmem("forget")] == \
        w.documents("forget")


def test_holdout_entities_are_never_in_training_text(micro_corpus: Corpus) -> None:
    trained = " ".join(micro_corpus.raw("forget") + micro_corpus.raw("retain")).split()
    holdout_names = {d.split()[0] for d in micro_corpus.privleak("holdout")}
    assert holdout_names and not holdout_names & set(trained)
    forget_names = {d.split()[0] for d in micro_corpus.privleak("forget")}
    assert not forget_names & set(" ".join(micro_corpus.raw("retain")).split())


def test_ensure_data_reuses_and_is_safe_under_concurrency(tmp_path: Path) -> None:
    results: list[Path] = []
    threads = [threading.Thread(target=lambda: results.append(ensure_data("micro", tmp_path)))
               for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(set(results)) == 1
    first = Corpus(results[0]).fingerprint
    assert ensure_data("micro", tmp_path) == results[0]
    assert Corpus(results[0]).fingerprint == first
    leftovers = [p.name for p in preset_dir("micro", tmp_path).iterdir()
                 if p.name.startswith(".")]
    assert leftovers == []


def test_cache_dir_is_keyed_by_preset_config(tmp_path: Path) -> None:
    a, b = preset_dir("micro", tmp_path), preset_dir("tiny", tmp_path)
    assert a.parent == b.parent == tmp_path / "bench"
    assert a.name.startswith("micro-") and b.name.startswith("tiny-") and a.name[6:] != b.name[5:]


def test_unknown_model_name_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(RunError, match=r"unknown benchmark model 'tiny/target_qat'.*"
                                       r"did you mean 'tiny/target-qat'"):
        ensure_model("tiny/target_qat", tmp_path)
    assert split_model_name("micro/retrain-qat") == ("micro", "retrain-qat")
