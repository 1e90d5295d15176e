"""Utility metrics read local files in the public datasets' formats and score with few shots."""
from __future__ import annotations

import json

import numpy as np
import pytest

from unlearnspec.errors import RunError
from unlearnspec.metrics.registry import METRICS
from unlearnspec.metrics.utility import continuation_logprobs

MMLU = [{"question": f"what color is the {w} river ?", "subject": "x",
         "choices": ["red", "blue", "green", "west"], "answer": i % 4}
        for i, w in enumerate(["alpha", "beta", "gamma", "delta", "zeta", "theta", "kappa"])]
TQA = [{"question": "who lives in the red city ?",
        "mc1_targets": {"choices": ["beta", "alpha", "gamma"], "labels": [1, 0, 0]}}] * 8
TRIVIA = {"Data": [{"Question": f"where was {w} born ?",
                    "Answer": {"Value": "north city", "Aliases": ["the north city"]}}
                   for w in ["alpha", "beta", "gamma", "delta", "zeta", "theta", "kappa", "sigma"]]}


def run(kind, model_tok, batch_size=32, **options):
    comp = METRICS.get(kind)
    return comp.load()(*model_tok, None, comp.make_config(options), batch_size=batch_size)


@pytest.mark.slow
def test_mmlu_loglik_picks_the_most_likely_answer_text(tiny, tmp_path):
    path = tmp_path / "mmlu.json"
    path.write_text(json.dumps(MMLU))
    r = run("mmlu", tiny, path=str(path), protocol="loglik")
    assert r.n == len(MMLU) - 5 and r.details["shots"] == 5      # first 5 are the shots
    assert r == run("mmlu", tiny, batch_size=1, path=str(path), protocol="loglik")
    demo = "".join(f"Question: {m['question']}\nAnswer: {m['choices'][m['answer']]}\n\n"
                   for m in MMLU[:5])
    for item, got in zip(MMLU[5:], r.per_sample):
        lps = continuation_logprobs(*tiny, [(demo + f"Question: {item['question']}\nAnswer:",
                                             " " + c) for c in item["choices"]], batch_size=1)
        assert got == 100.0 * (int(np.argmax([lp.mean() for lp in lps])) == item["answer"])


@pytest.mark.slow
def test_mmlu_original_csv_and_truthfulqa_formats(tiny, tmp_path):
    csv = tmp_path / "dev.csv"
    csv.write_text("\n".join(f"{m['question']},red,blue,green,west,{'ABCD'[m['answer']]}"
                             for m in MMLU))
    assert run("mmlu", tiny, path=str(csv), shots=2, protocol="loglik").n == len(MMLU) - 2
    tqa = tmp_path / "mc_task.json"
    tqa.write_text(json.dumps(TQA))
    r = run("truthfulqa_mc1", tiny, path=str(tqa), protocol="loglik")
    assert r.n == 2 and r.details == {"protocol": "loglik", "shots": 6, "normalize": "sum"}


def test_malformed_multiple_choice_record_names_the_file(tiny, tmp_path):
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps({"question": "q", "choices": ["a"], "answer": "Z"}) + "\n")
    with pytest.raises(RunError, match=r"bad\.jsonl: record 0 is not a multiple-choice item"):
        run("mmlu", tiny, path=str(bad), shots=0, protocol="loglik")


def test_shots_consuming_every_record_is_an_error(tiny, tmp_path):
    path = tmp_path / "mmlu.json"
    path.write_text(json.dumps(MMLU[:3]))
    with pytest.raises(RunError, match="holds no records"):
        run("mmlu", tiny, path=str(path))


@pytest.mark.slow
def test_triviaqa_f1_and_fluency(tiny, tmp_path):
    trivia = tmp_path / "trivia.json"
    trivia.write_text(json.dumps(TRIVIA))
    r = run("triviaqa", tiny, path=str(trivia), max_new_tokens=8)
    assert r.n == 2 and all(0 <= x <= 100 for x in r.per_sample)
    assert r == run("triviaqa", tiny, batch_size=1, path=str(trivia), max_new_tokens=8)
    alpaca = tmp_path / "alpaca_eval.json"
    alpaca.write_text(json.dumps([{"instruction": "name a city", "output": "", "generator": "x"},
                                  {"instruction": "the color of the river", "output": ""}]))
    f = run("fluency", tiny, path=str(alpaca), max_new_tokens=16, protocol="plain")
    assert f.n == 2 and all(x >= 0 for x in f.per_sample)
    assert f.value == pytest.approx(np.mean(f.per_sample))


def test_utility_configs_check_their_options():
    from unlearnspec.registry import ConfigError

    with pytest.raises(ConfigError, match="normalize"):
        METRICS.get("mmlu").make_config({"path": "x.json", "normalize": "max"})
    with pytest.raises(ConfigError, match="path"):
        METRICS.get("triviaqa").make_config({})
