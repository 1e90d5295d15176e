"""Generation throughput of the scoring core: batched (left padding + KV cache) vs one
example at a time, measured in one run on the same model and prompts, printed as a ratio.

    OMP_NUM_THREADS=1 python benchmarks/generation_batching.py [--n 64] [--batch 32]

Uses a random Llama (the test suite's word-level tokenizer, wider than the unit-test model)
so it needs no download; both arms generate the same number of new tokens, and the script
checks that they generate the same texts.
"""
from __future__ import annotations

import argparse
import random
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from conftest import WORDS, make_tiny_checkpoint  # noqa: E402

from unlearnspec.metrics.core import generate_greedy  # noqa: E402
from unlearnspec.models.loading import load_causal_lm  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=64, help="number of prompts")
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--new", type=int, default=32, help="max_new_tokens")
    ap.add_argument("--hidden", type=int, default=128)
    ap.add_argument("--layers", type=int, default=4)
    args = ap.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        ckpt = make_tiny_checkpoint(Path(tmp) / "m", hidden=args.hidden, layers=args.layers)
        model, tok = load_causal_lm(ckpt)
    # the untrained model never emits EOS here, so every row generates args.new tokens
    model.generation_config.eos_token_id = None
    rng = random.Random(0)
    prompts = [" ".join(rng.choices(WORDS, k=rng.randint(8, 40))) for _ in range(args.n)]

    generate_greedy(model, tok, prompts[:2], max_new_tokens=4, batch_size=2)  # warm-up
    t0 = time.perf_counter()
    batched = generate_greedy(model, tok, prompts, max_new_tokens=args.new,
                              batch_size=args.batch)
    t1 = time.perf_counter()
    single = generate_greedy(model, tok, prompts, max_new_tokens=args.new, batch_size=1)
    t2 = time.perf_counter()

    tokens = args.n * args.new
    fast, slow = tokens / (t1 - t0), tokens / (t2 - t1)
    print(f"model: Llama hidden={args.hidden} layers={args.layers}, {args.n} prompts, "
          f"{args.new} new tokens each")
    print(f"batch {args.batch:>3}: {t1 - t0:7.2f} s  {fast:9.1f} tokens/s")
    print(f"batch   1: {t2 - t1:7.2f} s  {slow:9.1f} tokens/s")
    print(f"same texts: {batched == single}")
    print(f"ratio batched/unbatched: {fast / slow:.1f}x")


if __name__ == "__main__":
    main()
