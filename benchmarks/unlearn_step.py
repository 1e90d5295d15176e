"""Seconds per optimizer step of one unlearning run on the embedded tiny benchmark's target,
the runs the main job (specs/tiny.yaml) makes ten of, and where a step's time goes.

    python benchmarks/unlearn_step.py [--method ga_klr] [--steps 40] [--profile 25]

Trains from the cached tiny target (built first if missing; `--cache` defaults to the bench
cache the tests share) with the spec's options (lr 5e-5, batch_size 4, one example per
document), prints the whole run's seconds, the loop's seconds per step (from the first to the
last step's end, so model loading and tokenizing are left out) and, with `--profile N`, the N
functions with the most cumulative time over the run. Measure one run each and state the load
(`uptime`): the machine is shared.
"""
from __future__ import annotations

import argparse
import cProfile
import os
import pstats
import tempfile
import time
from pathlib import Path


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--method", default="ga_klr")
    ap.add_argument("--steps", type=int, default=40)
    ap.add_argument("--cache", default=os.environ.get("UNLEARNSPEC_TEST_BENCH_CACHE",
                                                      "/work/bench-cache"))
    ap.add_argument("--profile", type=int, default=0, metavar="N",
                    help="print the N functions with the most cumulative time")
    args = ap.parse_args()

    from unlearnspec.bench import ensure_data, ensure_model
    from unlearnspec.data import Corpus
    from unlearnspec.unlearn import METHODS, run_unlearning
    from unlearnspec.unlearn import loop

    cache = Path(args.cache)
    corpus = Corpus(ensure_data("tiny", cache))
    base = ensure_model("tiny/target-qat", cache, progress=False)
    comp = METHODS.get(args.method)
    config = comp.make_config({"lr": 5e-5, "max_steps": args.steps})

    ends: list[float] = []
    step = loop.end_step

    def timed_step(*a, **kw):  # the benchmark's own hook: when each step ends
        out = step(*a, **kw)
        ends.append(time.perf_counter())
        return out

    loop.end_step = timed_step
    profiler = cProfile.Profile() if args.profile else None
    with tempfile.TemporaryDirectory() as tmp:
        started = time.perf_counter()
        if profiler:
            profiler.enable()
        run_unlearning(comp, config, base=base, forget=corpus.raw("forget"),
                       retain=corpus.raw("retain"), out=Path(tmp) / "out", seed=0,
                       progress=False)
        if profiler:
            profiler.disable()
        total = time.perf_counter() - started
    per_step = (ends[-1] - ends[0]) / (len(ends) - 1)
    print(f"{args.method}: {len(ends)} steps, run {total:.2f} s, "
          f"{per_step * 1000:.1f} ms per step (steps 2..{len(ends)})"
          + (" under cProfile" if profiler else ""))
    if profiler:
        pstats.Stats(profiler).sort_stats("cumulative").print_stats(args.profile)


if __name__ == "__main__":
    main()
