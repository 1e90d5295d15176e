"""The whole measuring path (VerbMem, KnowMem on forget and retain, PrivLeak's Min-K% AUC, as
the engine computes them: batched, left padding, KV cache, stop strings) against the naive
loop MUSE's scripts run (one example at a time through `model.generate`, one document at a
time for Min-K%), on one CPU model large enough for compute to dominate, in one run.

    OMP_NUM_THREADS=2 python benchmarks/measuring_path.py [--hidden 512 --layers 8 --n 24]

The model is a random Llama with the test suite's word-level tokenizer and the corpus a
synthetic one in MUSE's layout, so nothing is downloaded; both arms measure the same model on
the same records, and the script prints both arms' values (they agree: greedy decoding is
the same computation, batched or not) and the ratio naive / batched.
"""
from __future__ import annotations

import argparse
import importlib.util
import json
import random
import tempfile
import time
from pathlib import Path

import torch


def _tests_conftest():
    """tests/conftest.py's checkpoint builder, loaded by path (not imported as `conftest`)."""
    path = Path(__file__).resolve().parents[1] / "tests" / "conftest.py"
    spec = importlib.util.spec_from_file_location("_unlearnspec_tests_root", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def write_corpus(root: Path, words: list[str], n: int) -> Path:
    rng = random.Random(0)

    def text(lo: int, hi: int) -> str:
        return " ".join(rng.choices(words, k=rng.randint(lo, hi)))

    qa = lambda: [{"question": text(5, 12), "answer": text(1, 4)} for _ in range(n)]  # noqa: E731
    files = {
        "verbmem/forget.json": [{"prompt": text(20, 60), "gt": text(60, 120)} for _ in range(n)],
        "knowmem/forget_qa.json": qa(), "knowmem/retain_qa.json": qa(),
        "knowmem/forget_qa_icl.json": qa()[:3], "knowmem/retain_qa_icl.json": qa()[:3],
        "privleak/forget.json": [text(80, 200) for _ in range(n)],
        "privleak/holdout.json": [text(80, 200) for _ in range(n)],
        "privleak/retain.json": [text(80, 200) for _ in range(n)],
    }
    for rel, data in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(json.dumps(data))
    return root


def batched(model, tok, corpus) -> dict[str, float]:
    from unlearnspec.metrics.knowmem import KnowMemConfig, knowmem
    from unlearnspec.metrics.privleak import PrivLeakConfig, privleak_auc
    from unlearnspec.metrics.verbmem import VerbMemConfig, verbmem

    return {"verbmem": verbmem(model, tok, corpus, VerbMemConfig()).value,
            "knowmem_forget": knowmem(model, tok, corpus, KnowMemConfig("forget")).value,
            "knowmem_retain": knowmem(model, tok, corpus, KnowMemConfig("retain")).value,
            "privleak_auc": privleak_auc(model, tok, corpus, PrivLeakConfig()).value}


@torch.no_grad()
def naive(model, tok, corpus) -> dict[str, float]:
    """MUSE's loop: generate each prompt alone, score each document alone."""
    from unlearnspec.metrics.knowmem import qa_prompt
    from unlearnspec.metrics.scores import (KNOWMEM_STOPS, cut_at_stops, mia_auc,
                                            mink_score, rouge_l_f1)

    def generate(prompt: str, new: int) -> str:
        ids = tok(prompt, return_tensors="pt").input_ids
        out = model.generate(ids, max_new_tokens=new, do_sample=False,
                             pad_token_id=tok.pad_token_id)
        return tok.decode(out[0, ids.shape[1]:], skip_special_tokens=True)

    out = {}
    vm = corpus.verbmem("forget")
    gts = [tok.decode(tok(r["gt"]).input_ids[:128], skip_special_tokens=True) for r in vm]
    out["verbmem"] = 100 * sum(rouge_l_f1(gt, generate(r["prompt"], 128))
                               for r, gt in zip(vm, gts)) / len(vm)
    for split in ("forget", "retain"):
        icl, recs = corpus.knowmem_icl(split), corpus.knowmem(split)
        out[f"knowmem_{split}"] = 100 * sum(
            rouge_l_f1(r["answer"], cut_at_stops(generate(qa_prompt(r["question"], icl), 32),
                                                 KNOWMEM_STOPS)) for r in recs) / len(recs)
    scores = {}
    for split in ("forget", "holdout"):
        scores[split] = []
        for doc in corpus.privleak(split):
            ids = tok(doc, return_tensors="pt").input_ids
            logp = torch.log_softmax(model(ids).logits[0, :-1].float(), -1)
            lp = logp.gather(1, ids[0, 1:, None])[:, 0].tolist()
            scores[split].append(mink_score(lp, 0.4))
    out["privleak_auc"] = mia_auc(scores["forget"], scores["holdout"])
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--hidden", type=int, default=512)
    ap.add_argument("--layers", type=int, default=8)
    ap.add_argument("--n", type=int, default=24, help="records per file")
    args = ap.parse_args()
    from unlearnspec.data import Corpus
    from unlearnspec.models.loading import load_causal_lm

    root = _tests_conftest()
    with tempfile.TemporaryDirectory() as tmp:
        ckpt = root.make_tiny_checkpoint(Path(tmp) / "m", hidden=args.hidden,
                                         layers=args.layers)
        model, tok = load_causal_lm(ckpt)
        corpus = Corpus(write_corpus(Path(tmp) / "corpus", root.WORDS, args.n))
        params = sum(p.numel() for p in model.parameters())
        print(f"model: random Llama hidden={args.hidden} layers={args.layers} "
              f"({params / 1e6:.1f} M parameters), torch threads {torch.get_num_threads()}; "
              f"{args.n} records per file")
        batched(model, tok, corpus)  # warm-up (first-call allocations, lazy imports)
        t0 = time.perf_counter()
        fast = batched(model, tok, corpus)
        t1 = time.perf_counter()
        slow = naive(model, tok, corpus)
        t2 = time.perf_counter()
    print(f"{'metric':<16}{'batched':>10}{'naive':>10}")
    for k in fast:
        print(f"{k:<16}{fast[k]:>10.3f}{slow[k]:>10.3f}")
    print(f"measuring path, batched: {t1 - t0:.1f} s; naive one-at-a-time loop: {t2 - t1:.1f} s")
    print(f"ratio naive / batched: {(t2 - t1) / (t1 - t0):.1f}x")


if __name__ == "__main__":
    main()
