"""specs/rwku.yaml (the paper's Table 8) says what RWKU's scripts run, validates, and runs end
to end on a miniature RWKU target in RWKU's own per-target layout."""
from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

from muse_miniature import ROOT, miniature_spec
from unlearnspec.spec import load_spec

SPEC = ROOT / "specs" / "rwku.yaml"


def _helper(name: str):
    spec = importlib.util.spec_from_file_location(f"_rwku_{name}",
                                                  ROOT / "tests" / "metrics" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)  # type: ignore[union-attr]
    return module


def test_spec_has_rwkus_full_fine_tuning_settings() -> None:
    spec = load_spec(SPEC)
    # LLaMA-Factory/scripts/full/run_{ga,npo,rt}.sh
    expected = {"ga": ("ga", 6e-8, 8), "npo": ("npo", 2e-6, 16), "rt": ("rt", 4e-7, 8)}
    for name, (method, lr, batch) in expected.items():
        m = spec.models[name]
        assert (m.method, m.from_, m.config.lr, m.config.epochs, m.config.batch_size,
                m.config.max_length) == (method, "target", lr, 3, batch, 512), name
    assert spec.models["npo"].config.beta == 0.2
    assert spec.models["target"].path == "meta-llama/Meta-Llama-3-8B-Instruct"
    assert [d.path for d in spec.data.values()] == ["jinzhuoran/RWKU#Stephen King"]
    assert spec.transforms["bnb_fp4"].config.mode == "fp4"
    assert {m.config.probe for m in spec.metrics.values()} == {"fb", "qa", "aa"}


@pytest.fixture(scope="module")
def rwku_inputs(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """(an RWKU target dir, a tiny checkpoint), built before any pytester fixture snapshots
    sys.modules: transformers' lazily imported modules must not be unloaded after the test."""
    tmp = tmp_path_factory.mktemp("rwku-mini")
    target = _helper("rwku_miniature").write_rwku_target(tmp / "1_alpha")
    # RT's refusal must be in the word-level vocabulary, or RT refuses to train on <unk>;
    # seed 4: a random model that answers every probe level (others often emit the stop
    # token "\n" first for every probe, which the metric rightly refuses to score as 0)
    ckpt = _helper("metric_helpers").make_lettered(
        tmp / "model", extra=("I", "do", "not", "know", "answer."), seed=4, hidden=64)
    return target, ckpt


@pytest.mark.slow
def test_spec_runs_on_a_miniature_rwku_target(rwku_inputs: tuple[Path, Path],
                                               pytester: pytest.Pytester) -> None:
    target, ckpt = rwku_inputs
    spec = miniature_spec(SPEC, pytester.path / "rwku.yaml", paths={
        "jinzhuoran/RWKU#Stephen King": target, "meta-llama/Meta-Llama-3-8B-Instruct": ckpt})
    report = pytester.path / "report.json"
    result = pytester.runpytest_subprocess(
        "-p", "no:cacheprovider", "--unlearn-spec", str(spec),
        "--unlearn-cache-dir", str(pytester.path / "cache"), "--unlearn-report", str(report))
    records = json.loads(report.read_text())["claims"]
    outcomes = result.parseoutcomes()
    assert "error" not in outcomes and "errors" not in outcomes, result.stdout.str()[-3000:]
    assert len(records) == 15
    unevaluated = [f"{r['claim']}[{r['subject']}]" for r in records
                   if r["verdict"] is None or r["status"] == "error"]
    assert not unevaluated, result.stdout.str()[-3000:]
    labels = set(json.loads(report.read_text())["measurements"])
    assert {"qa[rt @ bnb_fp4]", "aa[ga @ bnb_fp4]", "fb[npo]", "neighbor_qa[target]"} <= labels
