"""How long each hostile spec takes to become an error (issue 15).

Writes each input to a temp file and times `load_spec` on it, the same call `unlearnspec
validate` and the pytest plugin make. Every input must be a SpecError naming file:line; the
script prints the time to that error and the first line of it, and exits 1 if any input
loads or fails some other way. Reference: `yaml.safe_load` on the same billion laughs.

    python benchmarks/hostile_specs.py [--repeat 5]
"""
from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

BASE = """\
version: 1
data:
  tiny: {builtin: tiny}
models:
  target: {builtin: tiny/target-qat}
  retrain: {builtin: tiny/retrain}
  ga_klr: {unlearn: ga_klr, from: target, lr: LR}
transforms:
  rtn4: {kind: rtn, bits: 4}
metrics:
  knowmem_forget: {kind: knowmem, split: forget}
claims:
  - name: no-recovery
    subjects: [ga_klr]
    assert: ASSERT
"""
GOOD_ASSERT = "knowmem_forget @ rtn4 <= retrain + 5"


def spec(lr: str = "2.0e-5", claim: str = GOOD_ASSERT) -> str:
    return BASE.replace("LR", lr).replace("ASSERT", claim)


def laughs(levels: int = 9) -> str:
    lines = ["version: 1", 'a0: &a0 ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    for i in range(1, levels):
        lines.append(f"a{i}: &a{i} [" + ",".join([f"*a{i - 1}"] * 9) + "]")
    return "\n".join(lines) + "\n"


INPUTS = {
    "billion laughs (9 levels of 9 aliases)": laughs,
    "3,000 nested brackets": lambda: "version: 1\nx: " + "[" * 3000 + "]" * 3000 + "\n",
    "3,000 nested parentheses in a claim": lambda: spec(
        claim="(" * 3000 + "knowmem_forget" + ")" * 3000 + " <= 1"),
    "2,001 alias uses": lambda: "version: 1\nx: &x 1\ny: [" + ", ".join(["*x"] * 2001) + "]\n",
    "300 kB spec file": lambda: "version: 1\n" + "# padding\n" * 30_000,
    "lr: .inf": lambda: spec(lr=".inf"),
    "lr: .nan": lambda: spec(lr=".nan"),
    "lr: 1e999": lambda: spec(lr="1e999"),
    "1/0 in a claim": lambda: spec(claim=GOOD_ASSERT + " + 1/0"),
}


def time_one(path: Path, repeat: int) -> tuple[float, str]:
    from unlearnspec.errors import SpecError
    from unlearnspec.spec import load_spec

    times, first = [], ""
    for _ in range(repeat):
        start = time.perf_counter()
        try:
            load_spec(path)
        except SpecError as err:
            times.append(time.perf_counter() - start)
            first = str(err).splitlines()[0]
            continue
        raise SystemExit(f"{path.name}: loaded without an error")
    return statistics.median(times), first


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5, help="runs per input (median shown)")
    args = parser.parse_args()
    import yaml

    import unlearnspec.spec  # noqa: F401  (import time is not the loader's)

    with tempfile.TemporaryDirectory() as tmp:
        for i, (name, make) in enumerate(INPUTS.items()):
            path = Path(tmp) / f"hostile{i}.yaml"
            path.write_text(make(), encoding="utf-8")
            seconds, first = time_one(path, args.repeat)
            print(f"{name:40s} {seconds * 1000:8.1f} ms  {first[:100]}")
        start = time.perf_counter()
        yaml.safe_load(laughs())
        print(f"{'reference: yaml.safe_load(billion laughs)':40s} "
              f"{(time.perf_counter() - start) * 1000:8.1f} ms  (builds shared lists, no error)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
