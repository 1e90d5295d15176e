"""Issue 22's study: on the embedded benchmark, which regime brings forgotten facts back?

For each (preset, target, lr, epochs) in the grid it unlearns with GA_KLR through the engine
(everything cached under --cache-dir), then measures KnowMem_forget at full precision, under
rtn4 and bnb fp4, and under noise matched to each (kind: noise, `--draws` seeded draws,
mean), plus γ, ‖δ‖/‖w‖ and the error ratio ‖Q(s) − s‖/‖δ‖ from `unlearnspec diff`. It prints
one row per point and the regime the numbers point to:

- `no forgetting`: KnowMem_forget at fp stays above 0.85 × the target's;
- `(a) grid`: Q brings back ≥ 30% of what was forgotten, matched noise < 30%;
- `(b) fragile`: matched noise brings back ≥ 30% too;
- `none`: neither does (the update survives Q and noise).

"Brought back" = (KnowMem @ Q − KnowMem fp) / (KnowMem(target) − KnowMem fp).

    python benchmarks/regime_study.py [--cache-dir DIR] [--presets tiny] [--lrs 1e-5 5e-5]
"""
from __future__ import annotations

import argparse
import math
import time
from pathlib import Path

SPEC_HEAD = """\
version: 1
seed: 0
settings: {batch_size: 64, max_models_in_memory: 2}
data:
  world: {builtin: PRESET}
models:
  natural: {builtin: PRESET/target}
  aligned: {builtin: PRESET/target-qat}
"""
SPEC_TAIL = """\
transforms:
  rtn4: {kind: rtn, bits: 4}
  fp4: {kind: bnb, mode: fp4}
  noise_rtn4: {kind: noise, matched_to: rtn4, draws: DRAWS}
  noise_fp4: {kind: noise, matched_to: fp4, draws: DRAWS}
metrics:
  knowmem_forget: {kind: knowmem, split: forget}
"""


def _name(target: str, lr: float, epochs: float) -> str:
    return f"{target}_lr{lr:g}_e{epochs:g}".replace(".", "p").replace("-", "m")


def build_spec(preset: str, points: list[tuple[str, float, float]], draws: int) -> str:
    lines = [SPEC_HEAD.replace("PRESET", preset)]
    for target, lr, epochs in points:
        lines.append(f"  {_name(target, lr, epochs)}: {{unlearn: ga_klr, from: {target}, "
                     f"lr: {lr:g}, epochs: {epochs:g}}}\n")
    lines.append(SPEC_TAIL.replace("DRAWS", str(draws)))
    return "".join(lines)


def brought_back(k_q: float, k_fp: float, k_target: float) -> float:
    gap = k_target - k_fp
    return (k_q - k_fp) / gap if gap > 0 else math.nan


def regime(k_fp: float, k_target: float, rec_q: float, rec_noise: float) -> str:
    if k_fp > 0.85 * k_target:
        return "no forgetting"
    if rec_noise >= 0.3:
        return "(b) fragile"
    return "(a) grid" if rec_q >= 0.3 else "none"


def main() -> None:
    from unlearnspec.diff import diff_checkpoints
    from unlearnspec.engine.measurement import Measurement
    from unlearnspec.engine.run import Run
    from unlearnspec.spec.loader import load_spec_text

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--cache-dir", default=".unlearnspec")
    p.add_argument("--presets", nargs="+", default=["tiny"])
    p.add_argument("--targets", nargs="+", default=["natural"])
    p.add_argument("--lrs", nargs="+", type=float, default=[1e-5, 5e-5, 2e-4])
    p.add_argument("--epochs", nargs="+", type=float, default=[15])
    p.add_argument("--draws", type=int, default=2)
    args = p.parse_args()
    cache = Path(args.cache_dir)
    head = (f"{'preset':<6} {'target':<8} {'lr':>7} {'ep':>4} {'|d|/|w|':>8} {'err/d':>6} "
            f"{'g rtn4':>6} {'g fp4':>6} {'K tgt':>6} {'K fp':>6} {'@rtn4':>6} {'@n_rtn4':>7} "
            f"{'@fp4':>6} {'@n_fp4':>6}  regime rtn4 / fp4")
    print(head)
    print("-" * len(head))
    for preset in args.presets:
        points = [(t, lr, e) for t in args.targets for lr in args.lrs for e in args.epochs]
        text = build_spec(preset, points, args.draws)
        spec = load_spec_text(text, f"<regime_study {preset}>", base_dir=Path.cwd())
        run = Run(spec, cache_dir=cache, progress=False)
        try:
            km = lambda model, t=None: run.measure(Measurement("knowmem_forget", model, t)).value
            for target, lr, epochs in points:
                started = time.monotonic()
                name = _name(target, lr, epochs)
                k_tgt = km(target)
                k_fp, k_rtn, k_fp4 = km(name), km(name, "rtn4"), km(name, "fp4")
                k_nrtn, k_nfp4 = km(name, "noise_rtn4"), km(name, "noise_fp4")
                rep = diff_checkpoints(Path(run.model_path(target)),
                                       Path(run.model_path(name)), ["rtn4", "fp4"]).overall()
                rq = brought_back(k_rtn, k_fp, k_tgt)
                rn = brought_back(k_nrtn, k_fp, k_tgt)
                rq4 = brought_back(k_fp4, k_fp, k_tgt)
                rn4 = brought_back(k_nfp4, k_fp, k_tgt)
                print(f"{preset:<6} {target:<8} {lr:>7.0e} {epochs:>4g} "
                      f"{rep['rtn4'].relative_update:>8.4f} {rep['rtn4'].error_ratio:>6.2f} "
                      f"{rep['rtn4'].gamma:>6.2f} {rep['fp4'].gamma:>6.2f} {k_tgt:>6.1f} "
                      f"{k_fp:>6.1f} {k_rtn:>6.1f} {k_nrtn:>7.1f} {k_fp4:>6.1f} {k_nfp4:>6.1f}  "
                      f"{regime(k_fp, k_tgt, rq, rn)} / {regime(k_fp, k_tgt, rq4, rn4)}"
                      f"  ({time.monotonic() - started:.0f}s)", flush=True)
        finally:
            run.close()


if __name__ == "__main__":
    main()
