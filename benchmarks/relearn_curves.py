"""Issue 19's relearning curves: KnowMem_forget of specs/tiny.yaml's unlearned models after
0 / 10 / 50 / 100 steps of `kind: relearn` on `data: forget_holdout`.

Every number is measured on the forget QA pairs the relearning did *not* train on (the same
held-out-free set at every step count, and for the target and retrain rows): what comes back
there is recovered knowledge, not re-memorised text. The models are specs/tiny.yaml's own
(same options, so a warm cache of that spec is reused); each (model, steps, lr) is one cached
relearned checkpoint under --cache-dir.

    python benchmarks/relearn_curves.py [--cache-dir .unlearnspec] [--lrs 1e-5 1e-4]
        [--steps 10 50 100] [--models ga_klr npo_klr ga_klr_sure] [--holdout 0.5]
"""
from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent


def _name(steps: int, lr: float) -> str:
    return f"rel{steps}_lr{lr:g}".replace(".", "p").replace("-", "m")


def build_spec(steps: list[int], lrs: list[float], holdout: float) -> dict:
    """specs/tiny.yaml's data and models, one relearning transform per (steps, lr), and its
    knowmem_forget metric; no claims."""
    tiny = yaml.safe_load((ROOT / "specs" / "tiny.yaml").read_text())
    transforms = {_name(s, lr): {"kind": "relearn", "steps": s, "lr": lr, "batch_size": 4,
                                 "data": "forget_holdout", "holdout": holdout}
                  for s in steps for lr in lrs}
    return {"version": 1, "seed": tiny.get("seed", 0), "settings": tiny.get("settings", {}),
            "data": tiny["data"], "models": tiny["models"], "transforms": transforms,
            "metrics": {"knowmem_forget": tiny["metrics"]["knowmem_forget"]}, "claims": []}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--cache-dir", default=".unlearnspec")
    ap.add_argument("--steps", type=int, nargs="+", default=[10, 50, 100])
    ap.add_argument("--lrs", type=float, nargs="+", default=[1e-5, 1e-4])
    ap.add_argument("--models", nargs="+", default=["ga_klr", "npo_klr", "ga_klr_sure"])
    ap.add_argument("--holdout", type=float, default=0.5)
    args = ap.parse_args()

    from unlearnspec.engine.measurement import Measurement
    from unlearnspec.engine.run import Run
    from unlearnspec.spec import load_spec

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "relearn_curves.yaml"
        path.write_text(yaml.safe_dump(build_spec(args.steps, args.lrs, args.holdout)))
        run = Run(load_spec(path), cache_dir=Path(args.cache_dir), progress=False)
        first = _name(args.steps[0], args.lrs[0])
        exclude = (first,)  # every transform holds out the same pairs (same seed, holdout)
        held = run.held_out(first)
        n_all = len(run.corpus("world").knowmem("forget"))
        started = time.perf_counter()

        def km(model: str, transform: str | None) -> float:
            own = (transform,) if transform else exclude
            return run.measure(Measurement("knowmem_forget", model, transform, own)).value

        print(f"KnowMem_forget on the {n_all - len(held)} forget QA pairs not relearned on "
              f"({len(held)} of {n_all} held out for relearning, seed {run.spec.seed}); "
              f"batch 4, AdamW, constant lr")
        print(f"target {km('target', None):.1f}, retrain {km('retrain', None):.1f}")
        header = ["model", "lr", "0", *map(str, args.steps)]
        print(" | ".join(header))
        print(" | ".join("---" for _ in header))
        for model in args.models:
            fp = km(model, None)
            for lr in args.lrs:
                cells = [f"{km(model, _name(s, lr)):.1f}" for s in args.steps]
                print(" | ".join([model, f"{lr:g}", f"{fp:.1f}", *cells]))
        print(f"({time.perf_counter() - started:.0f} s; relearned this run: "
              f"{run.stats.get('relearned', 0)}, measured: {run.stats.get('measured', 0)})")
        run.close()


if __name__ == "__main__":
    main()
