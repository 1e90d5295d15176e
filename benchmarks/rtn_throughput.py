"""RTN throughput against a plain copy of the same weights, as a ratio measured in one run.

A copy is the floor for any transform that writes a new tensor, so `rtn / copy` says how much
RTN's arithmetic costs on this machine, independent of its speed. Run:

    OMP_NUM_THREADS=1 python benchmarks/rtn_throughput.py [--rows 2048 --cols 2048 --reps 5]
"""
from __future__ import annotations

import argparse
import time

import torch

from unlearnspec.transforms.rtn import rtn_quantize


def best_of(fn, reps: int) -> float:
    best = float("inf")
    for _ in range(reps):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=2048)
    ap.add_argument("--cols", type=int, default=2048)
    ap.add_argument("--reps", type=int, default=15)
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = ap.parse_args()
    w = torch.randn(args.rows, args.cols, generator=torch.Generator().manual_seed(0))
    w = w.to(args.device)
    sync = torch.cuda.synchronize if args.device.startswith("cuda") else (lambda: None)

    def timed(fn):
        def run():
            fn()
            sync()
        run()  # warm-up
        return best_of(run, args.reps)

    # best-of-N on a shared machine: the minimum is the run least disturbed by neighbours
    copy = timed(lambda: w.clone())
    gb = w.numel() * w.element_size() / 1e9
    print(f"weights: {args.rows}x{args.cols} float32 on {args.device} ({gb * 1e3:.1f} MB), "
          f"torch threads {torch.get_num_threads()}, best of {args.reps}")
    print(f"{'variant':<34}{'ms':>9}{'GB/s':>9}{'x copy':>9}")
    print(f"{'copy (clone)':<34}{copy * 1e3:>9.2f}{gb / copy:>9.2f}{1.0:>9.2f}")
    for label, kw in [("rtn4 per-channel symmetric", {}),
                      ("rtn4 group 128 symmetric", {"group_size": 128}),
                      ("rtn4 group 128 zero point", {"group_size": 128, "zero_point": True}),
                      ("rtn8 per-tensor paper", {"bits": 8, "group_size": 0, "grid": "paper"})]:
        t = timed(lambda kw=kw: rtn_quantize(w, **{"bits": 4, **kw}))
        print(f"{label:<34}{t * 1e3:>9.2f}{gb / t:>9.2f}{t / copy:>9.2f}")


if __name__ == "__main__":
    main()
