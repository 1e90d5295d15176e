"""`protocol: rwku` utility metrics, pinned against prompts written out by hand and scores
computed here with a plain forward pass (RWKU's `eval_mmlu`, `eval_truthfulqa`, `eval_fluency`;
benchmarks/rwku_parity.py runs RWKU's own functions beside ours)."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from metric_helpers import make_lettered
from unlearnspec.errors import RunError
from unlearnspec.metrics.registry import METRICS
from unlearnspec.metrics.rwku_prompts import (TRUTHFULQA_QA_PRIMER, mmlu_user_text,
                                              rwku_prompt)
from unlearnspec.registry import ConfigError

MMLU = [{"question": f"what color is the {w} river ?", "subject": "geo_facts",
         "choices": ["red", "blue", "green", "west"], "answer": i % 4}
        for i, w in enumerate(["alpha", "beta", "gamma", "delta", "zeta", "theta", "kappa",
                               "sigma", "omega", "lambda"])]
CHAT = ("{% for m in messages %}<s> user : {{ m['content'] }}\n{% endfor %}"
        "{% if add_generation_prompt %}assistant :\n{% endif %}")


def run(kind, model_tok, batch_size=32, **options):
    comp = METRICS.get(kind)
    return comp.load()(*model_tok, None, comp.make_config(options), batch_size=batch_size)


def _last_logits(model_tok, text):
    import torch

    model, tok = model_tok
    ids = torch.tensor([tok(text)["input_ids"]])
    with torch.no_grad():
        return torch.log_softmax(model(input_ids=ids).logits[0, -1].float(), -1)


def _sum_logprob(model_tok, prompt, completion):
    import torch

    model, tok = model_tok
    p, whole = tok(prompt)["input_ids"], tok(prompt + completion)["input_ids"]
    with torch.no_grad():
        lp = torch.log_softmax(model(input_ids=torch.tensor([whole])).logits[0].float(), -1)
    return float(sum(lp[t - 1, whole[t]] for t in range(len(p), len(whole))))


def test_mmlu_prompt_is_rwkus_format_example_and_gen_prompt():
    user = mmlu_user_text("high_school_geo", [("q one ?", ["a", "b", "c", "d"], 2)],
                          "q two ?", ["e", "f", "g", "h"])
    assert user == ("The following are multiple choice questions (with answers) about high "
                    "school geo.\n\nQuestion: q one ?\nA. a\nB. b\nC. c\nD. d\nAnswer: C\n\n"
                    "Please following the previous examples and answer the given question.\n"
                    "Question: q two ?\nA. e\nB. f\nC. g\nD. h")


def test_rwku_prompt_appends_the_answer_prefix_after_the_chat_template(lettered):
    _, tok = lettered
    assert rwku_prompt(tok, "Question: x\nA. y", "Answer:", chat=False) == \
        "Question: x\nA. y\nAnswer:"
    assert rwku_prompt(tok, "Question: x\n", "Answer:", chat=False) == "Question: x\nAnswer:"
    tok = type(tok).from_pretrained(tok.name_or_path)
    tok.chat_template = CHAT
    assert rwku_prompt(tok, "Q: x", "A:", chat=True, pad=" ") == "<s> user : Q: x\nassistant :\nA:"


@pytest.mark.slow
def test_mmlu_rwku_takes_the_likeliest_answer_letter(lettered, tmp_path):
    path = tmp_path / "mmlu.json"
    path.write_text(json.dumps(MMLU))
    r = run("mmlu", lettered, path=str(path), shots=2)
    assert r.n == len(MMLU) - 2
    assert r.details == {"protocol": "rwku", "chat_template": False, "shots": 2}
    assert r == run("mmlu", lettered, batch_size=1, path=str(path), shots=2)
    _, tok = lettered
    letters = [tok(" " + x, add_special_tokens=False)["input_ids"][-1] for x in "ABCD"]
    shots = "".join(f"Question: {m['question']}\nA. red\nB. blue\nC. green\nD. west\n"
                    f"Answer: {'ABCD'[m['answer']]}\n\n" for m in MMLU[:2])
    for item, got in zip(MMLU[2:], r.per_sample):
        text = ("The following are multiple choice questions (with answers) about geo facts."
                "\n\n" + shots + "Please following the previous examples and answer the "
                "given question.\nQuestion: " + item["question"]
                + "\nA. red\nB. blue\nC. green\nD. west\nAnswer:")
        pred = int(np.argmax(_last_logits(lettered, text)[letters].numpy()))
        assert got == 100.0 * (pred == item["answer"])


@pytest.mark.slow
def test_mmlu_rwku_uses_each_records_own_examples(lettered, tmp_path):
    recs = [{**m, "task": "geo", "examples": MMLU[:1]} for m in MMLU[5:8]]
    path = tmp_path / "rwku_mmlu.json"
    path.write_text(json.dumps(recs))
    r = run("mmlu", lettered, path=str(path))
    assert r.n == 3 and r.details["shots"] == "per record"


@pytest.mark.slow
def test_truthfulqa_rwku_needs_the_true_answer_strictly_higher(lettered, tmp_path):
    tie = {"question": "who lives in the red city ?",
           "mc1_targets": {"choices": ["beta", "beta", "gamma"], "labels": [1, 0, 0]}}
    path = tmp_path / "tqa.json"
    path.write_text(json.dumps([tie]))
    assert run("truthfulqa_mc1", lettered, path=str(path)).value == 0.0
    assert run("truthfulqa_mc1", lettered, path=str(path), protocol="loglik", shots=0).value \
        == 100.0   # argmax breaks the tie toward the first (true) choice


@pytest.mark.slow
def test_truthfulqa_rwku_scores_the_qa_preset_prompt(lettered, tmp_path):
    items = [{"question": f"where was {w} born ?",
              "mc1_targets": {"choices": ["north city", "south", "the east"],
                              "labels": [1, 0, 0]}} for w in ("alpha", "beta", "gamma")]
    path = tmp_path / "tqa.json"
    path.write_text(json.dumps(items))
    r = run("truthfulqa_mc1", lettered, path=str(path))
    assert r.n == 3 and r.details == {"protocol": "rwku", "shots": 6, "chat_template": False}
    for item, got in zip(items, r.per_sample):
        prompt = TRUTHFULQA_QA_PRIMER + "\n\nQ: " + item["question"] + "\nA:"
        s = [_sum_logprob(lettered, prompt, " " + c) for c in item["mc1_targets"]["choices"]]
        assert got == 100.0 * (s[0] > max(s[1:]))


@pytest.mark.slow
def test_fluency_rwku_is_bits_times_100_of_256_tokens_after_instruction(lettered, tmp_path):
    from unlearnspec.metrics.core import generate_greedy
    from unlearnspec.metrics.scores import ngram_entropy

    path = tmp_path / "alpaca_eval.json"
    path.write_text(json.dumps([{"instruction": "name a city"}, {"instruction": "a river"}]))
    r = run("fluency", lettered, path=str(path))
    assert r.details["unit"] == "bits x 100" and r.details["max_new_tokens"] == 256
    outs = generate_greedy(*lettered, ["Instruction: name a city\n", "Instruction: a river\n"],
                           max_new_tokens=256)
    assert r.per_sample == pytest.approx([100 * ngram_entropy(o) for o in outs], abs=1e-9)
    plain = run("fluency", lettered, path=str(path), protocol="plain")
    assert plain.details["unit"] == "bits" and plain.details["max_new_tokens"] == 128


def test_fluency_entropy_hand_computed():
    from unlearnspec.metrics.scores import ngram_entropy

    # tokens a b a b: bigrams {ab: 2, ba: 1} -> H2 = 0.9183; trigrams {aba, bab} -> H3 = 1
    h2 = -(2 / 3 * np.log2(2 / 3) + 1 / 3 * np.log2(1 / 3))
    assert ngram_entropy("a b a b") == pytest.approx(np.mean([2 / 3 * h2, 4 / 3 * 1.0]))
    assert 100 * ngram_entropy("a b a b") == pytest.approx(97.276, abs=1e-3)


def test_chat_template_true_without_one_is_an_error(lettered, tmp_path):
    path = tmp_path / "tqa.json"
    path.write_text(json.dumps([{"question": "q", "mc1_targets": {"a": 1, "b": 0}}]))
    with pytest.raises(RunError, match="has no chat template"):
        run("truthfulqa_mc1", lettered, path=str(path), chat_template=True)


@pytest.mark.parametrize("kind, options, key", [
    ("mmlu", {"normalize": "sum"}, "normalize"),
    ("truthfulqa_mc1", {"shots": 3}, "shots"),
    ("truthfulqa_mc1", {"fewshot_path": "f.json"}, "shots"),
    ("fluency", {"template": "{instruction}"}, "template"),
    ("mmlu", {"protocol": "loglik", "chat_template": True}, "chat_template"),
    ("mmlu", {"protocol": "perplexity"}, "protocol"),
])
def test_options_of_the_other_protocol_are_refused(kind, options, key):
    with pytest.raises(ConfigError) as err:
        METRICS.get(kind).make_config({"path": "x.json", **options})
    assert err.value.key == key


def test_letters_the_tokenizer_cannot_tell_apart_are_an_error(tiny, tmp_path):
    path = tmp_path / "mmlu.json"
    path.write_text(json.dumps(MMLU))
    with pytest.raises(RunError, match="distinct tokens"):
        run("mmlu", tiny, path=str(path))
