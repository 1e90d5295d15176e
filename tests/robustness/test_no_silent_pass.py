"""Nothing that could not be measured ever passes a claim: a NaN or infinite metric, a model
that generates nothing, a transform that fails, an empty data file, a claim with no
subjects. Each is an error that says what and where, also under `xfail`."""
from __future__ import annotations

import json
import math
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from unlearnspec.errors import RunError, SpecError
from unlearnspec.metrics.registry import METRICS
from unlearnspec.metrics.result import MetricResult
from unlearnspec.registry import Component

from robust_helpers import copy_checkpoint, eos_always_checkpoint, evaluate, write_spec

pytestmark = pytest.mark.slow  # loads and measures a real (tiny) model

BAD_SPECS = Path(__file__).parent.parent / "bad_specs"


@dataclass(frozen=True)
class ConstConfig:
    value: str = "nan"


def const_metric(model: Any, tokenizer: Any, corpus: Any, config: ConstConfig, *,
                 batch_size: int | str = 32) -> MetricResult:
    """Test double for a plug-in metric whose every sample came out non-finite (what a
    real metric gives on, e.g., a model with NaN weights). The engine around it is real."""
    v = float(config.value)
    return MetricResult(value=v, n=3, per_sample=(v, v, v))


class _Inline(Component):
    """A registered component whose target is this module's function (test modules are not
    importable by a dotted path)."""

    def load(self) -> Any:
        return const_metric


@pytest.fixture()
def const_metric_registered(monkeypatch: pytest.MonkeyPatch) -> None:
    METRICS.names()  # load entry points first, so the patch below is what gets undone
    monkeypatch.setitem(METRICS._items, "const", _Inline(
        "const", ConstConfig, "test_no_silent_pass:const_metric", tags=frozenset(),
        unit="percent"))


CONST_SPEC = """\
version: 1
models:
  subject: {path: ./ckpt}
metrics:
  broken: {kind: const, value: "VALUE"}
claims:
  - name: forgets
    subjects: [subject]
    assert: broken <= 5
    XFAIL
"""


@pytest.mark.parametrize("value", ["nan", "inf", "-inf"])
def test_non_finite_metric_is_an_error_not_a_pass(
        const_metric_registered: None, tiny_checkpoint: Path, tmp_path: Path,
        value: str) -> None:
    copy_checkpoint(tiny_checkpoint, tmp_path / "ckpt")
    spec = write_spec(tmp_path, CONST_SPEC.replace("VALUE", value).replace("XFAIL", ""))
    with pytest.raises(RunError) as info:  # -inf <= 5 would "pass" if it were compared
        evaluate(spec, tmp_path / "cache")
    message = str(info.value)
    assert "broken[subject]" in message
    assert ("NaN" in message or "nan" in message) if value == "nan" else "inf" in message


PLUGIN = """\
from dataclasses import dataclass

from unlearnspec.metrics.registry import METRICS
from unlearnspec.metrics.result import MetricResult
from unlearnspec.registry import Component


@dataclass(frozen=True)
class ConstConfig:
    value: str = "nan"


def const_metric(model, tokenizer, corpus, config, *, batch_size=32):
    # test double: a plug-in metric whose every sample came out non-finite
    v = float(config.value)
    return MetricResult(value=v, n=3, per_sample=(v, v, v))


METRICS.add(Component("const", ConstConfig, "const_plugin:const_metric", unit="percent"))
"""


def test_non_finite_metric_under_xfail_is_reported_as_an_error(
        tiny_checkpoint: Path, pytester: pytest.Pytester) -> None:
    """In pytest, with the metric plugged in the way a user's project does it (a conftest
    registering it): an error item, not a pass and not hidden behind the claim's xfail."""
    copy_checkpoint(tiny_checkpoint, pytester.path / "ckpt")
    pytester.makepyfile(const_plugin=PLUGIN, conftest="import const_plugin  # noqa: F401")
    write_spec(pytester.path, CONST_SPEC.replace("VALUE", "nan").replace(
        "XFAIL", "xfail: known to fail"))
    result = pytester.runpytest_subprocess("--unlearn-spec", "spec.yaml",
                                           "--unlearn-cache-dir", "cache",
                                           "-p", "no:cacheprovider", "--unlearn-report",
                                           "run.json", timeout=300)
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*for subject could not be evaluated*", "*broken[[]subject[]]*"])
    report = json.loads((pytester.path / "run.json").read_text())
    assert [c["status"] for c in report["claims"]] == ["error"]


def generation_spec(metric: str, *, bound: float) -> str:
    """A claim that the checkpoint in ./ckpt forgot: `metric` on the forget split <= bound."""
    return f"""\
        version: 1
        data:
          world: {{builtin: micro}}
        models:
          subject: {{path: ./ckpt}}
        metrics:
          memorised: {{kind: {metric}, split: forget, max_new_tokens: 8}}
        claims:
          - name: forgets
            subjects: [subject]
            assert: memorised <= {bound}
        """


@pytest.mark.parametrize("metric", ["knowmem", "verbmem"])
def test_model_that_generates_nothing_is_an_error_not_a_perfect_forgetting_score(
        tiny_checkpoint: Path, tmp_path: Path, micro_data: Path, metric: str) -> None:
    eos_always_checkpoint(tiny_checkpoint, tmp_path / "ckpt")
    spec = write_spec(tmp_path, generation_spec(metric, bound=5))
    with pytest.raises(RunError) as info:
        evaluate(spec, micro_data)
    message = str(info.value)
    assert "generated no text for any of the" in message
    assert f"{metric}[forget]" in message and "forget" in message
    assert "eos_token_id" in message  # the likely cause, as a hint


def test_model_that_generates_text_still_scores(tiny_checkpoint: Path, tmp_path: Path,
                                                micro_data: Path) -> None:
    """The control: the unmodified tiny model generates something and gets a number."""
    copy_checkpoint(tiny_checkpoint, tmp_path / "ckpt")
    spec = write_spec(tmp_path, generation_spec("knowmem", bound=100))
    verdict = evaluate(spec, micro_data)
    assert verdict.passed and math.isfinite(verdict.lhs)


def test_failing_transform_is_an_error_naming_the_transform_and_the_model(
        tiny_checkpoint: Path, tmp_path: Path, micro_data: Path) -> None:
    copy_checkpoint(tiny_checkpoint, tmp_path / "ckpt")
    # group_size 7 divides none of the tiny model's 32- and 64-wide inputs: RTN must refuse
    spec = write_spec(tmp_path, """\
        version: 1
        data:
          world: {builtin: micro}
        models:
          subject: {path: ./ckpt}
        transforms:
          rtn4g7: {kind: rtn, bits: 4, group_size: 7}
        metrics:
          loss: {kind: mia_loss}
        claims:
          - name: no-recovery
            subjects: [subject]
            assert: loss @ rtn4g7 >= 0
        """)
    with pytest.raises(RunError) as info:
        evaluate(spec, micro_data)
    message = str(info.value)
    assert "transform 'rtn4g7' (rtn) failed on model 'subject'" in message
    assert "group_size 7 does not divide" in message
    assert "spec.yaml:7" in message  # the transform's line


def test_empty_data_file_is_an_error_naming_the_file(tiny_checkpoint: Path,
                                                     tmp_path: Path) -> None:
    from unlearnspec.bench import ensure_data

    corpus = tmp_path / "corpus"
    shutil.copytree(ensure_data("micro", tmp_path / "bench-cache"), corpus)
    (corpus / "knowmem" / "forget_qa.json").write_text("[]")
    copy_checkpoint(tiny_checkpoint, tmp_path / "ckpt")
    spec = write_spec(tmp_path, """\
        version: 1
        data:
          world: {path: ./corpus}
        models:
          subject: {path: ./ckpt}
        metrics:
          memorised: {kind: knowmem, split: forget}
        claims:
          - name: forgets
            subjects: [subject]
            assert: memorised <= 5
        """)
    with pytest.raises(RunError, match=r"forget_qa\.json holds no records"):
        evaluate(spec, tmp_path / "cache")


def test_claim_with_an_empty_subject_list_is_a_spec_error() -> None:
    """Already in the bad-spec corpus; checked here so this file lists every silent-pass
    route in one place."""
    from unlearnspec.spec import load_spec

    with pytest.raises(SpecError, match="subjects"):
        load_spec(BAD_SPECS / "empty_subjects.yaml")
