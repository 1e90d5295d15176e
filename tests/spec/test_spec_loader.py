"""load_spec: the happy path, and each mistake a user can make, with its message and line."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from spec_helpers import TINY
from unlearnspec.errors import Location, SpecError
from unlearnspec.spec import load_spec
from unlearnspec.spec.tree import MetricRef, Settings
from unlearnspec.transforms.registry import RtnConfig
from unlearnspec.unlearn.registry import KLRConfig, SureConfig


def fails(write_spec, text: str) -> SpecError:
    with pytest.raises(SpecError) as info:
        load_spec(write_spec(text))
    return info.value


def edit(old: str, new: str) -> str:
    assert old in TINY, old
    return TINY.replace(old, new, 1)


def test_tiny_spec_loads(write_spec) -> None:
    path = write_spec(TINY)
    spec = load_spec(path)
    assert spec.version == 1 and spec.seed == 0 and spec.settings == Settings()
    assert spec.text == TINY and spec.path == path
    assert spec.data["tiny"].builtin == "tiny"
    assert spec.data["tiny"].loc == Location(str(path), 4, 3)
    target, ga = spec.models["target"], spec.models["ga_klr"]
    assert (target.source, target.builtin) == ("builtin", "tiny/target-qat")
    assert (ga.source, ga.method, ga.from_, ga.data) == ("unlearn", "ga_klr", "target", "tiny")
    assert ga.config == KLRConfig(lr=2e-5, epochs=15)  # ga_klr: UnlearnConfig + `kl`
    assert ga.loc.line == 8
    assert spec.models["npo_sure"].config.sure == SureConfig(percentile=90)
    assert spec.transforms["rtn4"].config == RtnConfig(bits=4)
    assert spec.transforms["rtn8"].kind == "rtn"
    assert spec.metrics["knowmem_retain"].config.split == "retain"
    assert spec.metrics["knowmem_retain"].data == "tiny"
    assert spec.metrics["gamma"].data is None  # weight-space: no data
    assert spec.metrics["privleak"].config.reference == "retrain"


def test_tiny_claims(write_spec) -> None:
    spec = load_spec(write_spec(TINY))
    first, second, third = spec.claims
    assert first.name == "no-recovery-rtn4" and first.subjects == ("ga_klr", "npo_sure")
    assert first.xfail.startswith("4-bit RTN")
    assert first.loc.line == 19
    assert (first.assert_loc.line, first.assert_loc.column) == (21, 13)
    assert first.expr.left == MetricRef("knowmem_forget", None, "rtn4", (0, 21))
    assert second.expr.right.right == MetricRef("knowmem_retain", "target", None, (35, 57))
    assert third.xfail is None


def test_quoted_assert_points_inside_the_quotes(write_spec) -> None:
    err = fails(write_spec, edit("assert: gamma @ rtn4 < 0.2", 'assert: "gamma @ rtn5 < 0.2"'))
    # line 28: `    assert: "gamma @ rtn5 < 0.2"`; the text starts at column 14
    assert (err.loc.line, err.loc.column) == (28, 14 + 8)


def test_block_assert(write_spec) -> None:
    text = edit("assert: gamma @ rtn4 < 0.2", "assert: >-\n      gamma @ rtn4\n      < 0.2")
    claim = load_spec(write_spec(text)).claims[2]
    assert claim.text == "gamma @ rtn4 < 0.2"
    assert (claim.assert_loc.line, claim.assert_loc.column) == (29, 7)


def test_relative_paths_are_relative_to_the_spec(write_spec, tmp_path: Path) -> None:
    (tmp_path / "ckpt").mkdir()
    text = edit("tiny: {builtin: tiny}", "tiny: {path: ./corpus, revision: main}").replace(
        "retrain: {builtin: tiny/retrain}",
        "retrain: {path: ckpt, dtype: bfloat16, allow_pickle: true}\n"
        "  hub: {path: muse-bench/MUSE-Books_target, revision: abc123}")
    spec = load_spec(write_spec(text))
    assert spec.data["tiny"].path == str((tmp_path / "corpus").resolve())
    assert spec.data["tiny"].revision == "main"
    retrain = spec.models["retrain"]
    assert retrain.path == str((tmp_path / "ckpt").resolve())
    assert (retrain.dtype, retrain.allow_pickle, retrain.trust_remote_code) == (
        "bfloat16", True, False)
    assert spec.models["hub"].path == "muse-bench/MUSE-Books_target"  # a hub id, kept


def test_settings_and_seed(write_spec) -> None:
    spec = load_spec(write_spec(edit("seed: 0", "seed: 7\nsettings: {batch_size: auto, "
                                                "max_models_in_memory: 3, device: cpu}")))
    assert spec.seed == 7
    assert spec.settings == Settings(batch_size="auto", max_models_in_memory=3, device="cpu")


def test_float_written_without_a_dot_is_a_number(write_spec) -> None:
    # PyYAML reads `1e-5` as a string; the loader accepts it where a float is declared
    spec = load_spec(write_spec(edit("lr: 2.0e-5", "lr: 1e-5")))
    assert spec.models["ga_klr"].config.lr == 1e-5


def test_data_may_be_omitted_only_when_there_is_one(write_spec) -> None:
    text = edit("  tiny: {builtin: tiny}", "  tiny: {builtin: tiny}\n  micro: {builtin: micro}")
    err = fails(write_spec, text)
    assert err.message == ("model 'ga_klr' needs to say which data it uses: the spec defines "
                           "tiny, micro")
    assert err.loc.line == 9 and err.hint == "add data: tiny"


def test_privleak_default_reference_must_exist(write_spec) -> None:
    text = edit("privleak: {kind: privleak, reference: retrain}", "privleak: {kind: privleak}")
    text = text.replace("retrain: {builtin", "retrained: {builtin").replace(
        "<= retrain + 5", "<= retrained + 5")
    err = fails(write_spec, text)
    assert "the default reference 'retrain' is not a model in this spec" in err.message
    assert "auc_retrain" in err.hint
    ok = text.replace("privleak: {kind: privleak}", "privleak: {kind: privleak, "
                                                     "auc_retrain: 0.5393}")
    assert load_spec(write_spec(ok)).metrics["privleak"].config.auc_retrain == 0.5393


# ---------------------------------------------------------------- the error classes


@pytest.mark.parametrize(
    "old, new, line, message, hint",
    [
        ("models:", "modles:", 5, "unknown key 'modles' in the spec", "did you mean 'models'?"),
        ("bits: 4", "bitz: 4", 11, "transform 'rtn4': 'rtn' has no option 'bitz'",
         "did you mean 'bits'?"),
        ("bits: 4", "bits: 9", 11, "transform 'rtn4': bits must be between 2 and 8, got 9",
         None),
        ("lr: 2.0e-5", "lr: fast", 8, "model 'ga_klr': option 'lr' must be a number, "
         "got 'fast'", None),
        ("split: retain", "split: retian", 15, "option 'split' must be one of 'forget', "
         "'retain', got 'retian'", "did you mean 'retain'?"),
        ("percentile: 90", "percentile: 150", 9, "sure.percentile must lie strictly between",
         None),
        ("from: target, lr: 2", "from: targt, lr: 2", 8,
         "model 'ga_klr': from: 'targt' is not a model in this spec", "did you mean 'target'?"),
        ("target: {builtin: tiny/target-qat}", "target: {unlearn: ga, from: ga_klr}", 6,
         "model 'target' is unlearned from itself through a cycle: target -> ga_klr -> target",
         None),
        ("name: utility-kept", "name: no-recovery-rtn4", 23,
         "duplicate claim name 'no-recovery-rtn4' (first used on line 19)", None),
        ("subjects: [ga_klr]\n    assert: gamma", "subjects: []\n    assert: gamma", 27,
         "claim 'gamma-small' has no subjects", None),
        ("version: 1\n", "", 1, "the spec has no 'version'", "add 'version: 1'"),
        ("version: 1", "version: 2", 1, "unsupported spec version 2", None),
        ("tiny: {builtin: tiny}", "tiny: {builtin: tiny", 5, "not valid YAML", None),
        ("{unlearn: ga_klr,", "{unlearn: ga_kl,", 8, "model 'ga_klr': unknown unlearning "
         "method 'ga_kl'", "did you mean 'ga_klr'?"),
        ("{kind: rtn, bits: 8}", "{kind: rtm, bits: 8}", 12, "unknown transform 'rtm'",
         "did you mean 'rtn'?"),
        ("rtn8:", "fp:", 12, "'fp' is reserved", None),
        ("gamma: {kind: update_retention}", "gamma: {kind: update_retention, data: tiny}", 17,
         "weight-space metric (update_retention) and reads no data", None),
        ("reference: retrain}", "reference: retrian}", 16,
         "metric 'privleak': reference: 'retrian' is not a model", "did you mean 'retrain'?"),
        ("subjects: [ga_klr, npo_sure]", "subjects: [ga_klr, npo_sur]", 20,
         "subject 'npo_sur' is not a model", "did you mean 'npo_sure'?"),
        ("gamma: {kind", "retrain: {kind", 17, "'retrain' names both a model and a metric",
         None),
        ("assert: gamma @ rtn4 < 0.2", "assert: gamma < 0.2", 28,
         "'gamma' is a weight-space metric and needs a transform", "write gamma @ rtn4"),
        ("xfail: \"4-bit", "xfial: \"4-bit", 22, "unknown key 'xfial' in claim 1",
         "did you mean 'xfail'?"),
        ("retrain: {builtin: tiny/retrain}", "retrain: {builtin: tiny/retrain, path: x}", 7,
         "model 'retrain' has both 'builtin:' and 'path:'", None),
        ("retrain: {builtin: tiny/retrain}", "retrain: {buildin: tiny/retrain}", 7,
         "unknown key 'buildin' in model 'retrain'", "did you mean 'builtin'?"),
        ("retrain: {builtin: tiny/retrain}", "retrain: {builtin: tiny/retrian}", 7,
         "unknown builtin 'tiny/retrian'", "did you mean 'tiny/retrain'?"),
        ("seed: 0", "seed: -1", 2, "'seed' must be an integer >= 0", None),
        ("seed: 0", "settings: {batch_size: 0}", 2, "'batch_size' must be at least 1", None),
        ("rtn8:", "under:", 12, "'under' is reserved", None),
        ("rtn8:", "rtn 8:", 12, "transform name 'rtn 8' is not a valid name", None),
    ],
)
def test_mistakes(write_spec, old: str, new: str, line: int, message: str,
                  hint: str | None) -> None:
    err = fails(write_spec, edit(old, new))
    assert message in err.message
    assert err.loc.line == line
    assert str(err).startswith(f"{err.loc.path}:{line}")
    if hint:
        assert hint in (err.hint or "")


def test_unknown_option_caret_is_under_the_key(write_spec) -> None:
    err = fails(write_spec, edit("bits: 4", "bitz: 4"))
    lines = str(err).splitlines()
    assert lines[1] == "      rtn4: {kind: rtn, bitz: 4}"
    assert lines[2] == "      " + " " * 18 + "^^^^"


def test_missing_file_and_empty_file(write_spec, tmp_path: Path) -> None:
    with pytest.raises(SpecError, match="spec file not found"):
        load_spec(tmp_path / "nope.yaml")
    with pytest.raises(SpecError, match="the spec file is empty"):
        load_spec(write_spec("# just a comment\n"))
    with pytest.raises(SpecError, match="must be a mapping"):
        load_spec(write_spec("- 1\n- 2\n"))


def test_same_spec_loads_to_equal_values(write_spec) -> None:
    path = write_spec(TINY)
    assert load_spec(path) == load_spec(path)


def test_spec_layer_is_torch_free() -> None:
    # the plugin loads specs at collection time; torch must not be imported for that: not by
    # any module of the spec package, nor by loading any shipped spec (which consults the
    # method, transform and metric registries)
    specs = sorted(str(p) for p in (Path(__file__).parents[2] / "specs").glob("*.yaml"))
    assert specs
    code = ("import importlib, pkgutil, sys; import unlearnspec.spec as pkg; "
            "[importlib.import_module(f'unlearnspec.spec.{m.name}') "
            "for m in pkgutil.iter_modules(pkg.__path__)]; "
            "from unlearnspec.spec import load_spec, spec_json_schema; "
            f"[load_spec(p) for p in {specs!r}]; "
            "spec_json_schema(); print('torch' in sys.modules, 'transformers' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True)
    assert out.stdout.split() == ["False", "False"]


def test_explicit_subject_and_nested_options_are_plain(write_spec) -> None:
    spec = load_spec(write_spec(edit("assert: gamma @ rtn4 < 0.2",
                                     "assert: gamma @ rtn4 < gamma(npo_sure @ rtn8)")))
    assert spec.claims[2].expr.right.model == "npo_sure"
    assert type(spec.models["npo_sure"].config.sure) is SureConfig
