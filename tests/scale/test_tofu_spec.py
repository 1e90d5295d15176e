"""specs/tofu.yaml says what TOFU's forget.yaml runs, validates, and runs end to end on a
miniature TOFU in the hub's layout with tiny models standing in for the 7B checkpoints."""
from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest
import yaml

from muse_miniature import ROOT, miniature_spec
from unlearnspec.spec import load_spec

SPEC = ROOT / "specs" / "tofu.yaml"
REFUSAL = ("I", "don't", "have", "that", "information.")


def _mini():
    spec = importlib.util.spec_from_file_location("_tofu_mini_spec",
                                                  ROOT / "tests" / "metrics" / "tofu_miniature.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)  # type: ignore[union-attr]
    return module


def test_spec_has_tofus_published_settings() -> None:
    spec = load_spec(SPEC)
    # locuslab/tofu config/forget.yaml: lr 1e-5, 5 epochs, weight decay 0.01, batch 32
    for name, method in {"ga": "ga", "ga_gdr": "ga_gdr", "ga_klr": "ga_klr",
                         "rt_gdr": "rt_gdr"}.items():
        c = spec.models[name].config
        assert (spec.models[name].method, spec.models[name].from_, c.lr, c.epochs,
                c.batch_size * c.grad_accum, c.weight_decay, c.max_length) == \
            (method, "target", 1e-5, 5, 32, 0.01, 500), name
        assert c.alpha == 1
    assert spec.models["ga_klr"].config.kl == "forward"  # TOFU's KL(p_target || p_model)
    assert [d.path for d in spec.data.values()] == ["locuslab/TOFU#forget10:llama2"]
    assert spec.models["target"].path == "locuslab/tofu_ft_llama2-7b"
    assert spec.metrics["forget_quality"].config.reference == "retrain"
    # TOFU's evaluation defaults: 300 records, 200 tokens, TOFU's padded generation budget
    assert {(m.config.limit, m.config.max_length, m.config.budget)
            for m in spec.metrics.values()} == {(300, 200, "batch")}


@pytest.fixture(scope="module")
def tofu_inputs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Local stand-ins built before any pytester fixture snapshots sys.modules."""
    tmp = tmp_path_factory.mktemp("tofu-mini")
    mini = _mini()
    data = mini.write_tofu(tmp / "TOFU")
    return {
        # the word-level tiny tokenizer has no [INST] tags: the miniature uses phi's template
        "locuslab/TOFU#forget10:llama2": Path(f"{data}#forget10"),
        "locuslab/tofu_ft_llama2-7b": mini.make_tofu_model(tmp / "target", seed=0,
                                                           extra=REFUSAL),
        "open-unlearning/tofu_Llama-2-7b-chat-hf_retain90": mini.make_tofu_model(
            tmp / "retain", seed=1, extra=REFUSAL),
    }


@pytest.mark.slow
def test_spec_runs_on_a_miniature_tofu(tofu_inputs: dict[str, Path],
                                       pytester: pytest.Pytester) -> None:
    spec = miniature_spec(SPEC, pytester.path / "tofu.yaml", paths=tofu_inputs)
    text = yaml.safe_load(spec.read_text())
    for metric in text["metrics"].values():  # the miniature's prompts + answers fit in 32
        metric["max_length"] = 32
    spec.write_text(yaml.safe_dump(text, sort_keys=False))
    report = pytester.path / "report.json"
    result = pytester.runpytest_subprocess(
        "-p", "no:cacheprovider", "--unlearn-spec", str(spec),
        "--unlearn-cache-dir", str(pytester.path / "cache"), "--unlearn-report", str(report))
    outcomes = result.parseoutcomes()
    assert "error" not in outcomes and "errors" not in outcomes, result.stdout.str()[-3000:]
    run = json.loads(report.read_text())
    assert len(run["claims"]) == 24
    unevaluated = [f"{r['claim']}[{r['subject']}]" for r in run["claims"]
                   if r["verdict"] is None or r["status"] == "error"]
    assert not unevaluated, result.stdout.str()[-3000:]
    measured = run["measurements"]
    fq = measured["forget_quality[ga_klr @ bnb_fp4]"]["result"]
    assert 0 <= fq["value"] <= 1 and fq["details"]["reference"] == "retrain"
    mu = measured["model_utility[target]"]["result"]
    assert len(mu["details"]["parts"]) == 9
