"""RWKU's FB / QA / AA and neighbour probes: RWKU's prompts written out by hand, answers from a
plain greedy loop, scored with RWKU's scorer (benchmarks/rwku_parity.py runs RWKU's own
`eval_forget` / `eval_neighbor` beside this metric)."""
from __future__ import annotations

import json

import pytest

from rwku_miniature import write_rwku_target
from unlearnspec.data.hub_datasets import load_corpus
from unlearnspec.errors import RunError
from unlearnspec.metrics.rwku import rouge_l_recall
from unlearnspec.metrics.rwku_prompts import probe_prompt, probe_stop_ids
from unlearnspec.registry import ConfigError


class Plain:
    """No chat template: RWKU's user text as is (a test stand-in for a tokenizer)."""

    chat_template = None


def test_probe_prompts_are_rwkus():
    t = Plain()
    assert probe_prompt(t, "x ___ y", "1", "cloze", chat=False) == (
        "Please complete the blank in the following question.\nQuestion: x ___ y\nAnswer:")
    assert probe_prompt(t, "q ?", "2", "", chat=False) == (
        "Please briefly answer the following question.\nQuestion: q ?\nAnswer:")
    assert probe_prompt(t, "q ? Sure, it is", "3", "affirmative suffix", chat=False) == (
        "Please briefly answer the following question.\nQuestion: q ? Sure, it is")
    assert probe_prompt(t, "Question: a\nAnswer: b\nQuestion: c", "3", "incontext learning",
                        chat=False) == ("Please briefly answer the following question.\n"
                                        "Question: a\nAnswer: b\nQuestion: c\nAnswer:")


def test_rouge_l_recall_is_the_rouge_packages():
    assert rouge_l_recall("the north city", "north") == 1.0
    assert rouge_l_recall("a b", "b c") == 0.5
    assert rouge_l_recall("NOANSWER", "north") == 0.0
    assert rouge_l_recall(".", "north") is None          # the package calls it empty


@pytest.fixture()
def rwku_corpus(tmp_path):
    return load_corpus(write_rwku_target(tmp_path / "1_alpha"), tmp_path / "cache")


def test_loader_keeps_rwkus_files_and_trains_on_the_positive_texts(rwku_corpus, tmp_path):
    root = rwku_corpus.root
    assert (root / "rwku" / "forget_level3.json").is_file()
    positive = json.loads((tmp_path / "1_alpha" / "positive.json").read_text())
    assert rwku_corpus.raw("forget") == [r["text"] for r in positive]
    assert load_corpus(tmp_path / "1_alpha", tmp_path / "cache").root == root  # built once


def test_hub_layout_is_cut_to_the_target(tmp_path):
    snap = tmp_path / "snap"
    target = write_rwku_target(tmp_path / "t")
    for name, (sub, split) in {"forget_level1": ("forget_level1", "test"),
                               "forget_level2": ("forget_level2", "test"),
                               "forget_level3": ("forget_level3", "test"),
                               "positive": ("train_positive_llama3", "train")}.items():
        rows = json.loads((target / f"{name}.json").read_text())
        other = [{**r, "subject": "omega"} for r in rows]
        (snap / sub).mkdir(parents=True)
        (snap / sub / f"{split}.jsonl").write_text(
            "\n".join(json.dumps(r) for r in rows + other))
    c = load_corpus(f"{snap}#alpha", tmp_path / "cache")
    assert len(json.loads((c.root / "rwku" / "forget_level1.json").read_text())) == 6
    assert len(c.raw("forget")) == 8
    with pytest.raises(RunError, match="no target 'Alpha'.*alpha, omega"):
        load_corpus(f"{snap}#Alpha", tmp_path / "cache")


def test_not_an_rwku_corpus_is_an_error(muse_dir, lettered):
    from unlearnspec.data import Corpus

    from unlearnspec.metrics.rwku import rwku_probe

    with pytest.raises(RunError, match="is not an RWKU corpus"):
        rwku_probe(*lettered, Corpus(muse_dir), _config(), batch_size=4)


def _config(**options):
    from unlearnspec.metrics.registry import METRICS

    return METRICS.get("rwku").make_config(options)


def _greedy(model_tok, prompt, stops, n=30):
    """One prompt, one token at a time, no cache, no batching: what RWKU's generate does."""
    import torch

    model, tok = model_tok
    ids = tok(prompt)["input_ids"]
    new = []
    with torch.no_grad():
        for _ in range(n):
            nxt = int(model(input_ids=torch.tensor([ids + new])).logits[0, -1].argmax())
            if nxt in stops:
                break
            new.append(nxt)
    whole = tok.decode(ids + new, skip_special_tokens=True)
    return whole[len(tok.decode(ids, skip_special_tokens=True)):].strip() or "NOANSWER"


@pytest.mark.slow
@pytest.mark.parametrize("probe, split, level", [("aa", "forget", 3), ("fb", "neighbor", 1)])
def test_probe_scores_match_a_hand_run(lettered, rwku_corpus, probe, split, level):
    from unlearnspec.metrics.rwku import rwku_probe

    r = rwku_probe(*lettered, rwku_corpus, _config(probe=probe, split=split), batch_size=3)
    assert r == rwku_probe(*lettered, rwku_corpus, _config(probe=probe, split=split),
                           batch_size=1)
    recs = json.loads((rwku_corpus.root / "rwku" / f"{split}_level{level}.json").read_text())
    stops = set(probe_stop_ids(lettered[1]))
    expected = []
    for rec in recs:
        out = _greedy(lettered, probe_prompt(lettered[1], rec["query"], rec["level"],
                                             rec.get("type", ""), chat=False), stops)
        expected.append(100.0 * (rouge_l_recall(out, rec["answer"]) or 0.0))
    assert list(r.per_sample) == pytest.approx(expected)
    assert r.details["probe"] == probe and r.n == len(recs)


def test_adversarial_probes_exist_for_the_forget_set_only():
    with pytest.raises(ConfigError, match="forget set only"):
        _config(probe="aa", split="neighbor")
