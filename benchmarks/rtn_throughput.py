"""RTN throughput against a plain copy of the same weights, as a ratio measured in one run.

A copy is the floor for any transform that writes a new tensor, so `rtn / copy` says how much
RTN's arithmetic costs on this machine, independent of its speed. Each variant is printed with
the forms it replaced, measured in the same run: `whole-tensor passes` is today's code with
one block for the whole weight (`rtn.BLOCK_ELEMENTS` raised past its size), i.e. every pass
over all 16 MB before the next; the others are older forms spelled out below. Run:

    OMP_NUM_THREADS=1 python benchmarks/rtn_throughput.py [--rows 2048 --cols 2048 --reps 5]
"""
from __future__ import annotations

import argparse
import time

import torch

from unlearnspec.transforms import rtn
from unlearnspec.transforms.rtn import (_denominator, _groups, code_range, rtn_quantize,
                                        rtn_quantize_)


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
    variants = [("rtn4 per-channel symmetric", {}),
                ("rtn4 group 128 symmetric", {"group_size": 128}),
                ("rtn4 group 128 zero point", {"group_size": 128, "zero_point": True}),
                ("rtn8 per-tensor paper", {"bits": 8, "group_size": 0, "grid": "paper"})]
    scratch = w.clone()
    tiny = torch.finfo(torch.float32).tiny

    def whole(bits=4, group_size=None, grid="symmetric", zero_point=False):
        """rtn_quantize as it was: every grid clamped, a symmetric grid's zeros subtracted."""
        g = _groups(w, group_size)
        lo, hi = code_range(bits, grid, zero_point)
        if zero_point:
            lo_v = g.amin(dim=1, keepdim=True).clamp_max(0)
            hi_v = g.amax(dim=1, keepdim=True).clamp_min(0)
            scale = ((hi_v - lo_v) / hi).clamp_min(tiny)
            zero = torch.round(-lo_v / scale)
            codes = torch.div(g, scale).round_().add_(zero).clamp_(lo, hi)
        else:
            absmax = torch.maximum(g.amax(dim=1, keepdim=True), -g.amin(dim=1, keepdim=True))
            scale = (absmax / _denominator(bits, grid)).clamp_min(tiny)
            zero = torch.zeros_like(scale)
            codes = torch.div(g, scale).round_().clamp_(lo, hi)
        return codes.sub_(zero).mul_(scale).reshape(w.shape)

    def in_place_six_passes(bits=4, group_size=None, **_):
        """rtn_quantize_ on a zero-point grid before the four-pass form: divide, round, add
        the zero point, clamp, subtract it, rescale (the definition, in place)."""
        scratch.copy_(w)
        g = _groups(scratch, group_size)
        lo_v = g.amin(dim=1, keepdim=True).clamp_max(0)
        hi_v = g.amax(dim=1, keepdim=True).clamp_min(0)
        scale = ((hi_v - lo_v) / (2**bits - 1)).clamp_min(tiny)
        zero = torch.round(-lo_v / scale)
        torch.div(g, scale, out=g).round_().add_(zero).clamp_(0, 2**bits - 1)
        g.sub_(zero).mul_(scale)

    def in_place(**kw):
        scratch.copy_(w)  # timed separately below and subtracted
        rtn_quantize_(scratch, **kw)

    blocked = rtn.BLOCK_ELEMENTS

    def unblocked(fn):
        def run():
            rtn.BLOCK_ELEMENTS = 1 << 62
            try:
                fn()
            finally:
                rtn.BLOCK_ELEMENTS = blocked
        return run

    def apply_before(**kw):
        """What RtnTransform.apply did per weight: values and int16 codes, then a copy back."""
        from unlearnspec.registry import ConfigError  # noqa: F401 - registry import order
        from unlearnspec.transforms.registry import RtnConfig
        from unlearnspec.transforms.roles import WeightInfo
        from unlearnspec.transforms.rtn import RtnTransform

        values, _ = RtnTransform(RtnConfig(**kw))._quantize(WeightInfo.linear("w", w.shape), w)
        scratch.copy_(values)

    refill = timed(lambda: scratch.copy_(w))
    for label, kw in variants:
        kw = {"bits": 4, **kw}
        t_whole = timed(lambda kw=kw: whole(**kw))
        t = timed(lambda kw=kw: rtn_quantize(w, **kw))
        t_in = max(0.0, timed(lambda kw=kw: in_place(**kw)) - refill)
        t_whole_out = timed(unblocked(lambda kw=kw: rtn_quantize(w, **kw)))
        t_whole_in = max(0.0, timed(unblocked(lambda kw=kw: in_place(**kw))) - refill)
        t_apply = timed(lambda kw=kw: apply_before(**kw))
        print(f"{label:<34}{t * 1e3:>9.2f}{gb / t:>9.2f}{t / copy:>9.2f}")
        print(f"{'  before: whole-tensor passes':<34}{t_whole_out * 1e3:>9.2f}"
              f"{gb / t_whole_out:>9.2f}{t_whole_out / copy:>9.2f}")
        print(f"{'  before (zero subtracted)':<34}{t_whole * 1e3:>9.2f}{gb / t_whole:>9.2f}"
              f"{t_whole / copy:>9.2f}")
        print(f"{'  in place (rtn_quantize_)':<34}{t_in * 1e3:>9.2f}"
              f"{gb / t_in if t_in else float('inf'):>9.2f}{t_in / copy:>9.2f}")
        print(f"{'    before: whole-tensor passes':<34}{t_whole_in * 1e3:>9.2f}"
              f"{gb / t_whole_in if t_whole_in else float('inf'):>9.2f}"
              f"{t_whole_in / copy:>9.2f}")
        if kw.get("zero_point"):
            t_six = max(0.0, timed(lambda kw=kw: in_place_six_passes(**kw)) - refill)
            print(f"{'  in place, six passes (before)':<34}{t_six * 1e3:>9.2f}"
                  f"{gb / t_six if t_six else float('inf'):>9.2f}{t_six / copy:>9.2f}")
        print(f"{'  apply before (values, codes, copy)':<34}{t_apply * 1e3:>9.2f}"
              f"{gb / t_apply:>9.2f}{t_apply / copy:>9.2f}")

if __name__ == "__main__":
    main()
