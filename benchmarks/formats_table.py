"""Issue 20's table: on the embedded benchmark, KnowMem_forget under the formats models ship in
(llama.cpp GGUF Q4_0 / Q8_0, torchao int8 / int4 weight-only) beside RTN 4 / 8-bit, with the
update retention γ under each quantizer.

The models are specs/tiny.yaml's own entries (read from that file, so their cache keys are the
same and a warm cache retrains nothing). A transform that cannot run here (torchao int4 without
CUDA) is printed with its error, not a number.

    python benchmarks/formats_table.py [--cache-dir DIR] [--spec specs/tiny.yaml]
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

MODELS = ("target", "ga_klr", "npo_klr", "ga_klr_sure")
TRANSFORMS = {
    "rtn8": "{kind: rtn, bits: 8}", "q8_0": "{kind: gguf, type: Q8_0}",
    "ao8": "{kind: torchao, mode: int8}", "rtn4": "{kind: rtn, bits: 4}",
    "q4_0": "{kind: gguf, type: Q4_0}", "ao4": "{kind: torchao, mode: int4}",
}


def build_spec(tiny: Path) -> str:
    import yaml

    src = yaml.safe_load(tiny.read_text())
    models = src["models"]
    lines = ["version: 1", f"seed: {src.get('seed', 0)}",
             f"settings: {json.dumps(src.get('settings', {}))}",
             f"data: {json.dumps(src['data'])}", "models:"]
    for name in ("retrain", *MODELS):
        lines.append(f"  {name}: {json.dumps(models[name])}")
    lines.append("transforms:")
    lines += [f"  {n}: {t}" for n, t in TRANSFORMS.items()]
    lines += ["metrics:", "  knowmem_forget: {kind: knowmem, split: forget}",
              "  gamma: {kind: update_retention}", ""]
    return "\n".join(lines)


def main() -> None:
    from unlearnspec.engine.measurement import Measurement
    from unlearnspec.engine.run import Run
    from unlearnspec.errors import RunError
    from unlearnspec.spec.loader import load_spec_text

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--cache-dir", default=".unlearnspec")
    p.add_argument("--spec", default="specs/tiny.yaml")
    args = p.parse_args()
    spec = load_spec_text(build_spec(Path(args.spec)), "<formats_table>", base_dir=Path.cwd())
    run = Run(spec, cache_dir=Path(args.cache_dir), progress=False)
    cols = [None, *TRANSFORMS]
    errors: dict[str, str] = {}

    def cell(metric: str, model: str, t: str | None) -> str:
        if t in errors:
            return "error"
        try:
            return f"{run.measure(Measurement(metric, model, t)).value:.1f}" if metric == \
                "knowmem_forget" else f"{run.measure(Measurement(metric, model, t)).value:.2f}"
        except RunError as exc:
            errors[t] = str(exc).splitlines()[0]
            return "error"

    try:
        print("KnowMem_forget (ROUGE-L F1 x 100; retrain = "
              f"{run.measure(Measurement('knowmem_forget', 'retrain', None)).value:.1f})")
        print("| model | " + " | ".join(c or "fp" for c in cols) + " |")
        print("|---" * (len(cols) + 1) + "|")
        for m in MODELS:
            print(f"| {m} | " + " | ".join(cell("knowmem_forget", m, c) for c in cols) + " |",
                  flush=True)
        print("\nupdate retention γ (reference: target)")
        print("| model | " + " | ".join(c for c in cols[1:]) + " |")
        print("|---" * len(cols) + "|")
        for m in MODELS[1:]:
            print(f"| {m} | " + " | ".join(cell("gamma", m, c) for c in cols[1:]) + " |",
                  flush=True)
        for t, msg in errors.items():
            print(f"\n{t}: {msg}")
    finally:
        run.close()


if __name__ == "__main__":
    main()
