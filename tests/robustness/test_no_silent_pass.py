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
from unlearnspec.metrics import METRICS, MetricResult
from unlearnspec.registry import Component

from robust_helpers import always_emit, copy_checkpoint, eos_always_checkpoint, evaluate, write_spec

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

from unlearnspec.metrics import MetricResult, metric


@dataclass(frozen=True)
class ConstConfig:
    value: str = "nan"


@metric("const", ConstConfig, unit="percent")
def const_metric(model, tokenizer, corpus, config, *, batch_size=32):
    # test double: a plug-in metric whose every sample came out non-finite
    v = float(config.value)
    return MetricResult(value=v, n=3, per_sample=(v, v, v))
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


# ------------------------------------------------------------ a transform that changes nothing


def arch_checkpoint(arch: str, tokenizer_src: Path, dst: Path) -> Path:
    """A random 2-layer GPT-2 (Conv1D) or Falcon (FalconLinear) with the tiny tokenizer."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer, FalconConfig, GPT2Config

    tok = AutoTokenizer.from_pretrained(tokenizer_src)
    ids = dict(vocab_size=len(tok), bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id)
    cfg = (GPT2Config(n_layer=2, n_embd=32, n_head=4, n_positions=256, **ids) if arch == "gpt2"
           else FalconConfig(num_hidden_layers=2, hidden_size=32, num_attention_heads=4, **ids))
    torch.manual_seed(0)
    AutoModelForCausalLM.from_config(cfg).save_pretrained(dst)
    tok.save_pretrained(dst)
    return dst


def transform_spec(transform: str) -> str:
    return f"""\
        version: 1
        data:
          world: {{builtin: micro}}
        models:
          subject: {{path: ./ckpt}}
        transforms:
          q: {transform}
        metrics:
          loss: {{kind: mia_loss}}
        claims:
          - name: no-recovery
            subjects: [subject]
            assert: loss @ q <= loss + 1000
        """


def test_gpt2_under_rtn_is_quantized_not_measured_at_full_precision(
        tiny_checkpoint: Path, tmp_path: Path, micro_data: Path) -> None:
    """Before rtn-3, rtn left GPT-2's Conv1D weights alone: `loss @ rtn4` was `loss`."""
    from unlearnspec.engine.measurement import Measurement
    from unlearnspec.engine.run import Run
    from unlearnspec.spec import load_spec

    arch_checkpoint("gpt2", tiny_checkpoint, tmp_path / "ckpt")
    spec = load_spec(write_spec(tmp_path, transform_spec("{kind: rtn, bits: 4}")))
    run = Run(spec, cache_dir=micro_data, progress=False)
    try:
        fp = run.measure(Measurement("loss", "subject"))
        q = run.measure(Measurement("loss", "subject", "q"))
    finally:
        run.close()
    assert q.per_sample != fp.per_sample  # each document's loss moved
    cov = q.details["coverage"]
    assert cov["decoder"]["share"] == 1.0 and cov["roles"]["attention"]["changed"] > 0


def noop_transform_registered(monkeypatch: pytest.MonkeyPatch) -> None:
    from unlearnspec.transforms.base import Readback, Transform
    from unlearnspec.transforms.registry import TRANSFORMS, DtypeConfig

    class Noop(Transform):
        """Test double: a plug-in quantizer that says it quantized every weight and changed
        none (what rtn-2 was on GPT-2). The engine and the coverage check around it are real."""

        def apply(self, model, ctx):
            return model

        def readback(self, model):
            for name, p in model.named_parameters():
                yield Readback(name, p.detach(), True)

    class _Noop(Component):
        def load(self) -> Any:
            return Noop

    TRANSFORMS.names()
    monkeypatch.setitem(TRANSFORMS._items, "noop", _Noop("noop", DtypeConfig, "x:Noop"))


@pytest.mark.parametrize("xfail", [False, True])
def test_a_spec_whose_transform_changes_nothing_cannot_give_a_verdict(
        tiny_checkpoint: Path, tmp_path: Path, micro_data: Path,
        monkeypatch: pytest.MonkeyPatch, xfail: bool) -> None:
    noop_transform_registered(monkeypatch)
    arch_checkpoint("gpt2", tiny_checkpoint, tmp_path / "ckpt")
    body = transform_spec("{kind: noop}")
    if xfail:
        body = body.replace("assert: loss @ q", "xfail: known\n            assert: loss @ q")
    spec = write_spec(tmp_path, body)
    with pytest.raises(RunError) as info:
        evaluate(spec, micro_data)
    message = str(info.value)
    assert "transform 'q' (noop) failed on model 'subject'" in message
    assert "leaves 24,576 of the decoder's 24,576 weights (100%) as they were" in message
    assert "transformer.h.*.attn.c_attn.weight (Conv1D): selected but left unchanged" in message


def test_bnb_on_falcon_is_refused_not_measured_in_float(
        tiny_checkpoint: Path, tmp_path: Path, micro_data: Path) -> None:
    """transformers' bitsandbytes converts exact nn.Linear only: FalconLinear stays float."""
    pytest.importorskip("bitsandbytes")
    arch_checkpoint("falcon", tiny_checkpoint, tmp_path / "ckpt")
    spec = write_spec(tmp_path, transform_spec("{kind: bnb, mode: nf4}"))
    with pytest.raises(RunError, match=r"transform 'q' \(bnb\) failed on model 'subject': bnb "
                                       r"nf4 would leave .* \(100%\) in float: .*FalconLinear"
                                       r".*kind: rtn"):
        evaluate(spec, micro_data)


def question_always_checkpoint(src: Path, dst: Path) -> Path:
    """A model that answers everything with "Question: Question: ...": a token "Question:"
    added to the tokenizer, blocks that write nothing, a head that always picks it."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(src)
    tok.add_tokens(["Question:"])
    qid = tok.convert_tokens_to_ids("Question:")
    model = AutoModelForCausalLM.from_pretrained(src, dtype=torch.float32)
    model.resize_token_embeddings(len(tok))
    always_emit(model, qid)
    model.save_pretrained(dst, safe_serialization=True)
    tok.save_pretrained(dst)
    return dst


def test_answers_cut_to_nothing_are_empty_not_a_perfect_forgetting_score(
        tiny_checkpoint: Path, tmp_path: Path, micro_data: Path) -> None:
    question_always_checkpoint(tiny_checkpoint, tmp_path / "ckpt")
    spec = write_spec(tmp_path, generation_spec("knowmem", bound=5))
    with pytest.raises(RunError) as info:
        evaluate(spec, micro_data)
    message = str(info.value)
    assert "knowmem[forget]: every one of the" in message
    assert "empty once cut at the stop strings" in message and "'Question:" in message
