"""`seeds:` end to end on the micro benchmark: one unlearned artifact per seed, cached on its
own; a claim over the group holds for every seed (or on the aggregate it names), and the
report keeps each seed's verdict."""
from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

SPEC = """\
version: 1
settings: {batch_size: 64, bootstrap_samples: 300}
data:
  world: {builtin: micro}
models:
  target: {builtin: micro/target-qat}
  retrain: {builtin: micro/retrain}
  ga_klr: {unlearn: ga_klr, from: target, lr: 1.0e-3, max_steps: 4, batch_size: 4, SEEDS}
metrics:
  kf: {kind: knowmem, split: forget}
claims:
  - name: bounded
    subjects: [ga_klr]
    assert: kf <= kf(target) + 100
  - name: impossible
    subjects: [ga_klr]
    assert: kf < 0
  - name: bounded-on-the-mean
    subjects: [ga_klr]
    aggregate: mean
    confidence: 0.9
    assert: kf <= kf(target) + 100
"""


@pytest.fixture()
def project(micro_models: Path, pytester: pytest.Pytester) -> pytest.Pytester:
    shutil.copytree(micro_models / "bench", pytester.path / "cache" / "bench",  # micro's
                    ignore=shutil.ignore_patterns(".tmp-*", "*.lock", "tiny-*"))  # finished models
    pytester.makefile(".yaml", spec=SPEC.replace("SEEDS", "seeds: [0, 1]"))
    return pytester


def run(p: pytest.Pytester, *args: str) -> pytest.RunResult:
    return p.runpytest_subprocess("--unlearn-spec", "spec.yaml", "--unlearn-cache-dir", "cache",
                                  "-p", "no:cacheprovider", "-p", "no:randomly",
                                  "--unlearn-report", "run.json", *args, timeout=600)


def computed(result: pytest.RunResult) -> dict[str, int]:
    line = next(l for l in result.outlines if l.startswith("computed this session"))
    return {k: int(v) for k, v in re.findall(r"(\w+) (\d+)", line)}


def test_one_artifact_per_seed_and_a_verdict_per_seed(project) -> None:
    first = run(project)
    first.assert_outcomes(passed=2, failed=1)
    assert computed(first)["unlearned"] == 2
    report = json.loads((project.path / "run.json").read_text())
    keys = {name: m["key"] for name, m in report["models"].items()}
    assert set(keys) >= {"ga_klr.seed0", "ga_klr.seed1"} and "ga_klr" not in keys
    assert keys["ga_klr.seed0"] != keys["ga_klr.seed1"]
    claims = {c["claim"]: c for c in report["claims"]}
    every = claims["bounded"]["verdict"]
    assert every["aggregate"] == "every"
    assert [s["seed"] for s in every["seeds"]] == [0, 1]
    assert all(s["outcome"] == "pass" for s in every["seeds"])
    assert "every one of 2 seeds must hold: 2 pass" in every["explanation"]
    assert claims["impossible"]["status"] == "fail"
    assert "2 fail" in claims["impossible"]["verdict"]["explanation"]
    # each seed's cells are in the matrix
    assert {"kf[ga_klr.seed0]", "kf[ga_klr.seed1]"} <= set(report["measurements"])
    mean = claims["bounded-on-the-mean"]["verdict"]
    seeds_lhs = [report["measurements"][f"kf[ga_klr.seed{s}]"]["result"]["value"]
                 for s in (0, 1)]
    assert mean["aggregate"] == "mean"
    assert mean["lhs"] == pytest.approx(sum(seeds_lhs) / 2, abs=1e-12)
    assert mean["interval"]["low"] > 0 and mean["outcome"] == "pass"
    first.stdout.fnmatch_lines(["*seed 0: FAIL*", "*seed 1: FAIL*"])
    # the matrix shows the spread of the margin over the seeds
    first.stdout.re_match_lines([r".*✓ bounded \(.*; 2 seeds .* to .*\).*"])


def test_a_new_seed_trains_only_itself_and_seed0_is_the_unseeded_model(project) -> None:
    run(project, "-k", "bounded and not mean")
    (project.path / "spec.yaml").write_text(SPEC.replace("SEEDS", "seeds: [0, 1, 2]"))
    again = run(project, "-k", "bounded and not mean")
    assert computed(again)["unlearned"] == 1
    # the spec's seed (0) keeps the unseeded cache key: the plain model is ga_klr.seed0
    (project.path / "spec.yaml").write_text(SPEC.replace(", SEEDS", "").replace(
        "    aggregate: mean\n", ""))
    plain = run(project, "-k", "bounded and not mean")
    assert computed(plain)["unlearned"] == 0
