"""specs/wmdp.yaml says what the WMDP paper's RMU run uses, validates, and runs end to end on
miniature copies of cais/wmdp and cais/mmlu with tiny models standing in for Zephyr-7B."""
from __future__ import annotations

import importlib.util
import json
import shutil
import sys
from pathlib import Path

import pytest
import yaml

from muse_miniature import ROOT, miniature_spec
from unlearnspec.spec import load_spec

SPEC = ROOT / "specs" / "wmdp.yaml"
SUBJECTS = ("college_biology", "virology", "college_computer_science", "computer_security")


def _mini():
    sys.path.insert(0, str(ROOT / "tests" / "metrics"))  # wmdp_miniature imports metric_helpers
    spec = importlib.util.spec_from_file_location("_wmdp_mini_spec",
                                                  ROOT / "tests" / "metrics" / "wmdp_miniature.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)  # type: ignore[union-attr]
    return module


def test_spec_has_the_wmdp_papers_rmu_settings() -> None:
    spec = load_spec(SPEC)
    c = spec.models["rmu"].config
    # rmu/unlearn.py with the README's Zephyr-7B flags
    assert (spec.models["rmu"].method, spec.models["rmu"].from_, c.lr, c.alpha, c.steering_coeff,
            c.layer, c.layers, c.params, c.batch_size, c.max_steps) == \
        ("rmu", "target", 5e-5, 1200, 6.5, 7, (5, 6, 7), ("mlp.down_proj.weight",), 4, 150)
    assert spec.models["target"].path == "HuggingFaceH4/zephyr-7b-beta"
    assert {m.config.subset for m in spec.metrics.values() if m.kind == "wmdp"} == \
        {"bio", "cyber", "chem"}
    mmlu = [m.config for m in spec.metrics.values() if m.kind == "mmlu"]
    assert {(m.protocol, m.shots) for m in mmlu} == {("lm_eval", 0)}
    assert {m.path.partition("#")[2] for m in mmlu} == set(SUBJECTS)


@pytest.fixture(scope="module")
def wmdp_inputs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Data and models built before any pytester fixture snapshots sys.modules."""
    pytest.importorskip("pyarrow")
    tmp = tmp_path_factory.mktemp("wmdp-mini")
    mini = _mini()
    mini.write_wmdp(tmp / "wmdp")
    for subject in SUBJECTS:
        mini.write_mmlu(tmp / "mmlu", subject)
    raw = tmp / "wmdp-corpora" / "raw"
    raw.mkdir(parents=True)
    (raw / "forget.json").write_text(json.dumps(
        [f"{p} lives in the {c} city . {p} likes red ." for p, c in
         zip(mini.PEOPLE, mini.PLACES * 2)]))
    (raw / "retain.json").write_text(json.dumps(
        [f"the {c} river is a river of the {c} ." for c in mini.PLACES * 2]))
    mini.make_wmdp_model(tmp / "target", seed=5)
    mini.make_wmdp_model(tmp / "rmu_published", seed=6)
    return tmp


@pytest.mark.slow
def test_spec_runs_on_a_miniature_wmdp(wmdp_inputs: Path, pytester: pytest.Pytester) -> None:
    for name in ("wmdp", "mmlu"):  # the metrics' paths are relative to the working directory
        shutil.copytree(wmdp_inputs / name, pytester.path / name)
    spec = miniature_spec(SPEC, pytester.path / "wmdp.yaml", paths={
        "./wmdp-corpora": wmdp_inputs / "wmdp-corpora",
        "HuggingFaceH4/zephyr-7b-beta": wmdp_inputs / "target",
        "cais/Zephyr_RMU": wmdp_inputs / "rmu_published"})
    text = yaml.safe_load(spec.read_text())
    # the tiny model has 2 decoder layers: steer after the last, train both; two steps
    text["models"]["rmu"].update(layer=1, layers=[0, 1], max_steps=2)
    spec.write_text(yaml.safe_dump(text, sort_keys=False))
    report = pytester.path / "report.json"
    result = pytester.runpytest_subprocess(
        "-p", "no:cacheprovider", "--unlearn-spec", str(spec),
        "--unlearn-cache-dir", str(pytester.path / "cache"), "--unlearn-report", str(report))
    outcomes = result.parseoutcomes()
    assert "error" not in outcomes and "errors" not in outcomes, result.stdout.str()[-3000:]
    run = json.loads(report.read_text())
    assert len(run["claims"]) == 14
    unevaluated = [f"{r['claim']}[{r['subject']}]" for r in run["claims"]
                   if r["verdict"] is None or r["status"] == "error"]
    assert not unevaluated, result.stdout.str()[-3000:]
    bio = run["measurements"]["wmdp_bio[rmu @ bnb_fp4]"]["result"]
    assert bio["n"] == 8 and bio["details"]["subset"] == "wmdp-bio"
    assert run["measurements"]["mmlu_college_cs[target]"]["result"]["details"]["subject"] == \
        "college_computer_science"
