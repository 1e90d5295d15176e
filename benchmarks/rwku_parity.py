"""Run RWKU's own evaluation functions beside unlearnspec's `protocol: rwku` metrics on one
fixture model and compare them item by item.

    git clone https://github.com/jinzhuoran/RWKU /tmp/RWKU
    PYTHONPATH=. python benchmarks/rwku_parity.py /tmp/RWKU/LLaMA-Factory/src/llmtuner/eval

RWKU's code needs a chat template, so the fixture tokenizer gets a small one (and an
`<|eot_id|>` token, which RWKU stops at; the model's generation config lists it as EOS so
ours stops there too). RWKU's fluency calls `nltk.download('punkt')`; offline, the download
is skipped and, if punkt is absent, `nltk.word_tokenize` is unlearnspec's regex-split Treebank
tokenizer (the documented difference). Prints one line per comparison; exits 1 on a mismatch.
"""
from __future__ import annotations

import importlib
import json
import sys
import tempfile
import types
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests" / "metrics"))
sys.path.insert(0, str(ROOT / "tests" / "scale"))

CHAT = ("{% for m in messages %}<s> user : {{ m['content'] }}\n{% endfor %}"
        "{% if add_generation_prompt %}assistant :\n{% endif %}")


def load_rwku(eval_dir: Path) -> types.ModuleType:
    """RWKU's eval modules as a package, without its __init__ (which pulls in LLaMA-Factory)."""
    pkg = types.ModuleType("rwku_eval")
    pkg.__path__ = [str(eval_dir)]
    sys.modules["rwku_eval"] = pkg
    import nltk

    nltk.download = lambda *a, **k: True
    try:
        nltk.data.find("tokenizers/punkt_tab")
    except LookupError:
        from unlearnspec.metrics.scores import word_tokens

        nltk.word_tokenize = word_tokens
        print("note: punkt absent; RWKU's word_tokenize replaced by unlearnspec's tokenizer")
    for name in ("eval_mmlu", "eval_truthfulqa", "eval_fluency", "eval_forget",
                 "eval_neighbor"):
        setattr(pkg, name, importlib.import_module(f"rwku_eval.{name}"))
    return pkg


def fixture_model(tmp: Path):
    from metric_helpers import make_lettered
    from unlearnspec.models.loading import load_causal_lm

    ckpt = make_lettered(tmp / "ckpt", extra=("<|eot_id|>", "user", "assistant"))
    model, tok = load_causal_lm(ckpt)
    tok.chat_template = CHAT
    eot = tok.convert_tokens_to_ids("<|eot_id|>")
    model.generation_config.eos_token_id = [tok.eos_token_id, eot]
    model.config.eos_token_id = [tok.eos_token_id, eot]
    return model, tok


def ours(kind, model, tok, **options):
    from unlearnspec.metrics.registry import METRICS

    comp = METRICS.get(kind)
    return comp.load()(model, tok, None, comp.make_config(options), batch_size=4)


def main(eval_dir: Path) -> int:
    rwku = load_rwku(eval_dir)
    tmp = Path(tempfile.mkdtemp())
    model, tok = fixture_model(tmp)
    sys.path.insert(0, str(ROOT / "tests" / "metrics"))
    from test_utility_protocols import MMLU

    bad = 0

    def same(what, a, b):
        nonlocal bad
        ok = a == b
        bad += not ok
        print(f"{'OK  ' if ok else 'DIFF'} {what}: rwku={a} ours={b}")

    # MMLU: RWKU's records carry their own dev examples and task
    recs = [{**m, "task": "geo_facts", "examples": MMLU[:2]} for m in MMLU[2:]]
    (tmp / "mmlu.json").write_text(json.dumps(recs))
    rwku.eval_mmlu.eval_mmlu(model, tok, json.loads(json.dumps(recs)),
                             output_result_dir=str(tmp / "r_mmlu.json"))
    theirs = [100.0 * bool(c) for c in json.loads((tmp / "r_mmlu.json").read_text())["all_acc"]]
    r = ours("mmlu", model, tok, path=str(tmp / "mmlu.json"), chat_template=True)
    same("mmlu per-item correct", theirs, list(r.per_sample))

    # TruthfulQA MC1 (RWKU reads mc2_targets for the completions to score)
    opts = ["north city", "south", "the east", "blue"]
    tqa = [{"question": f"where was {w} born ?",
            "mc1_targets": {"choices": opts[i:] + opts[:i], "labels": [1, 0, 0, 0]}}
           for i, w in enumerate(("alpha", "beta", "gamma", "zeta"))]
    tqa += [{"question": "who lives here ?",
             "mc1_targets": {"choices": ["beta", "beta"], "labels": [1, 0]}}]   # a tie
    for q in tqa:
        q["mc2_targets"] = q["mc1_targets"]
    (tmp / "tqa.json").write_text(json.dumps(tqa))
    rwku.eval_truthfulqa.eval_truthfulqa(model, tok, json.loads(json.dumps(tqa)),
                                         output_result_dir=str(tmp / "r_tqa.json"))
    theirs = [100.0 * q["MC1"] for q in json.loads((tmp / "r_tqa.json").read_text())["results"]]
    r = ours("truthfulqa_mc1", model, tok, path=str(tmp / "tqa.json"), chat_template=True)
    same("truthfulqa mc1 per-item", theirs, list(r.per_sample))

    # Fluency: 256 greedy tokens after "Instruction: ...", entropy x 100
    alpaca = [{"instruction": x} for x in ("name a city", "the color of the river",
                                           "who works in the north")]
    (tmp / "alpaca.json").write_text(json.dumps(alpaca))
    rwku.eval_fluency.eval_fluency(model, tok, json.loads(json.dumps(alpaca)),
                                   output_result_dir=str(tmp / "r_flu.json"))
    res = json.loads((tmp / "r_flu.json").read_text())
    r = ours("fluency", model, tok, path=str(tmp / "alpaca.json"), chat_template=True)
    from unlearnspec.metrics.scores import word_tokens

    # compared as the word tokens the entropy reads: RWKU decodes without cleaning up the
    # space before punctuation ("assistant ." where ours gives "assistant.")
    same("fluency generations (word tokens)",
         [word_tokens(x["prediction"]) for x in res["results"]],
         [word_tokens(e["output"]) for e in r.details["examples"]])
    same("fluency entropy x100", round(100 * res["entropy"], 6), round(r.value, 6))
    # FB / QA / AA and neighbour probes: ROUGE-L recall per level
    from rwku_miniature import write_rwku_target
    from unlearnspec.data.hub_datasets import load_corpus
    from unlearnspec.metrics.registry import METRICS
    from unlearnspec.metrics.rwku import rwku_probe

    target = write_rwku_target(tmp / "1_alpha")
    corpus = load_corpus(target, tmp / "cache")
    lv = {n: json.loads((target / f"{n}.json").read_text()) for n in
          ("forget_level1", "forget_level2", "forget_level3", "neighbor_level1",
           "neighbor_level2")}
    r1, r2, r3 = rwku.eval_forget.eval_forget(model, tok, lv["forget_level1"],
                                              lv["forget_level2"], lv["forget_level3"],
                                              output_result_dir=str(tmp / "r_forget.json"))
    n1, n2 = rwku.eval_neighbor.eval_neighbor(model, tok, lv["neighbor_level1"],
                                              lv["neighbor_level2"],
                                              output_result_dir=str(tmp / "r_nb.json"))
    preds = [q["prediction"] for q in json.loads((tmp / "r_forget.json").read_text())["results"]]
    for (probe, split), theirs in {("fb", "forget"): r1, ("qa", "forget"): r2,
                                   ("aa", "forget"): r3, ("fb", "neighbor"): n1,
                                   ("qa", "neighbor"): n2}.items():
        cfg = METRICS.get("rwku").make_config({"probe": probe, "split": split,
                                                "chat_template": True})
        r = rwku_probe(model, tok, corpus, cfg, batch_size=4)
        same(f"rwku {probe} {split} (ROUGE-L recall x100)", round(100 * theirs, 6),
             round(r.value, 6))
        if split == "forget" and probe == "fb":
            same("rwku fb answers", preds[:3], [e["output"] for e in r.details["examples"]])
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main(Path(sys.argv[1])))
