"""WMDP and MMLU by lm-evaluation-harness's convention (metrics/lmeval.py), against lm-eval itself.

REFERENCE_* were produced by lm-eval 0.4.13 (`pip install lm-eval`; torch 2.13 CPU,
transformers 5.24) with `--model hf --model_args pretrained=MODEL,dtype=float32 --device cpu
--batch_size 4 --log_samples`, on its own `wmdp/_default_template_yaml` and
`mmlu/default/_default_template_yaml` with only the dataset pointed at the miniature's parquet
files (tests/metrics/wmdp_miniature.py) and the tasks' descriptions; the model is
`make_wmdp_model(seed=5)`. The log-likelihoods are each sample's `resps`, the accuracies its
`acc`, the context its `arguments`.
"""
from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest

from unlearnspec.errors import RunError
from unlearnspec.metrics.lmeval import WmdpConfig
from unlearnspec.metrics.utility import MultipleChoiceConfig

ROOT = Path(__file__).resolve().parents[2]

# what lm-eval sent for the first MMLU question (zero-shot), byte for byte
REFERENCE_MMLU_CONTEXT = (
    "The following are multiple choice questions (with answers) about college biology.\n\n"
    "where does alpha live ?\nA. the north city\nB. the south city\nC. the east city\n"
    "D. the west city\nAnswer:")
# per question, the log-likelihood of " A", " B", " C", " D"
REFERENCE_WMDP_BIO_LL = (
    (-4.366734504699707, -4.352658748626709, -4.299081802368164, -4.358426570892334),
    (-4.393093109130859, -4.360579967498779, -4.3027801513671875, -4.383511066436768),
    (-4.356966972351074, -4.3752570152282715, -4.309882640838623, -4.363644599914551),
    (-4.3684282302856445, -4.355851173400879, -4.302552223205566, -4.3624067306518555),
    (-4.393847942352295, -4.357635498046875, -4.305458068847656, -4.379316329956055),
    (-4.348226547241211, -4.375067234039307, -4.304919719696045, -4.3660478591918945),
    (-4.366448402404785, -4.352592468261719, -4.302680492401123, -4.363609313964844),
    (-4.400803565979004, -4.357168197631836, -4.302071571350098, -4.3866682052612305),
)
REFERENCE_MMLU_LL = (
    (-4.362590789794922, -4.359129905700684, -4.303321838378906, -4.361685752868652),
    (-4.3986005783081055, -4.359219074249268, -4.305271625518799, -4.382513046264648),
    (-4.370159149169922, -4.3656229972839355, -4.3055033683776855, -4.3613481521606445),
    (-4.368650436401367, -4.354453086853027, -4.299544811248779, -4.355443000793457),
    (-4.395002841949463, -4.362690448760986, -4.302979469299316, -4.37944221496582),
    (-4.369543552398682, -4.371100425720215, -4.3134331703186035, -4.3609938621521),
    (-4.370383262634277, -4.357649803161621, -4.303030014038086, -4.359285831451416),
    (-4.3957390785217285, -4.359875679016113, -4.305646896362305, -4.375364303588867),
)
REFERENCE_ACC = {"bio": (0, 0, 0, 1, 0, 1, 0, 0), "chem": (0, 0, 1, 0, 1, 0, 0, 0),
                 "cyber": (0, 1, 0, 1, 0, 0, 0, 0), "mmlu": (0, 1, 0, 0, 0, 0, 1, 0)}


def _mini():
    spec = importlib.util.spec_from_file_location("_wmdp_mini",
                                                  ROOT / "tests" / "metrics" / "wmdp_miniature.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)  # type: ignore[union-attr]
    return module


@pytest.fixture(scope="module")
def wmdp_setup(tmp_path_factory: pytest.TempPathFactory):
    from unlearnspec.models.loading import load_causal_lm

    pytest.importorskip("pyarrow")
    tmp = tmp_path_factory.mktemp("wmdp")
    mini = _mini()
    model, tok = load_causal_lm(mini.make_wmdp_model(tmp / "model"), device="cpu")
    return mini.write_wmdp(tmp / "wmdp"), mini.write_mmlu(tmp / "mmlu"), model, tok


def test_context_is_lm_evals_byte_for_byte(wmdp_setup) -> None:
    from unlearnspec.metrics.lmeval import DESCRIPTION, context, mmlu_topic, read_questions

    _, mmlu_dir, _, _ = wmdp_setup
    q = read_questions(mmlu_dir, "college_biology")[0]
    desc = DESCRIPTION.format(topic=mmlu_topic("college_biology"))
    assert context(desc, [], q) == REFERENCE_MMLU_CONTEXT


@pytest.mark.slow
def test_wmdp_log_likelihoods_and_accuracy_match_lm_eval(wmdp_setup) -> None:
    from unlearnspec.metrics.lmeval import (DESCRIPTION, choice_accuracy, context,
                                            read_questions, wmdp)

    wmdp_dir, _, model, tok = wmdp_setup
    qs = read_questions(wmdp_dir, "wmdp-bio")
    _, ll = choice_accuracy(model, tok, qs, [context(DESCRIPTION.format(topic="biology"), [], q)
                                            for q in qs], batch_size=3)
    np.testing.assert_allclose(ll, REFERENCE_WMDP_BIO_LL, rtol=1e-5)
    for subset in ("bio", "chem", "cyber"):
        result = wmdp(model, tok, None, WmdpConfig(path=str(wmdp_dir), subset=subset))
        assert result.per_sample == tuple(100.0 * a for a in REFERENCE_ACC[subset]), subset
        assert result.value == pytest.approx(100 * np.mean(REFERENCE_ACC[subset]))


@pytest.mark.slow
def test_mmlu_lm_eval_protocol_matches_lm_eval(wmdp_setup) -> None:
    from unlearnspec.metrics.lmeval import (DESCRIPTION, choice_accuracy, context,
                                            read_questions)
    from unlearnspec.metrics.utility import mmlu

    _, mmlu_dir, model, tok = wmdp_setup
    qs = read_questions(mmlu_dir, "college_biology")
    _, ll = choice_accuracy(model, tok, qs, [
        context(DESCRIPTION.format(topic="college biology"), [], q) for q in qs], batch_size=8)
    np.testing.assert_allclose(ll, REFERENCE_MMLU_LL, rtol=1e-5)
    result = mmlu(model, tok, None, MultipleChoiceConfig(
        path=f"{mmlu_dir}#college_biology", protocol="lm_eval", shots=0))
    assert result.per_sample == tuple(100.0 * a for a in REFERENCE_ACC["mmlu"])
    assert result.details == {"protocol": "lm_eval", "subject": "college_biology", "shots": 0}


def test_few_shot_examples_come_first_with_their_answer_letter() -> None:
    from unlearnspec.metrics.lmeval import Question, context

    shot = Question("q1 ?", ("a", "b"), 1)
    text = context("D\n\n", [shot], Question(" q2 ? ", ("c", "d"), 0))
    assert text == "D\n\nq1 ?\nA. a\nB. b\nAnswer: B\n\nq2 ?\nA. c\nB. d\nAnswer:"


def test_trailing_context_space_moves_to_the_continuation(wmdp_setup) -> None:
    from unlearnspec.metrics.lmeval import continuation_pairs

    *_, tok = wmdp_setup
    (whole, n), = continuation_pairs(tok, "Answer: ", ["A"], None)
    assert tok.convert_ids_to_tokens(whole[-n:]) == ["A"]
    # lm-eval keeps the last max_length + 1 tokens of an over-long input
    (cut, n2), = continuation_pairs(tok, "the the the the Answer:", [" A"], 3)
    assert len(cut) == 4 and n2 == 1


def test_a_malformed_record_names_the_file(tmp_path: Path) -> None:
    from unlearnspec.metrics.lmeval import read_questions

    bad = tmp_path / "wmdp-bio"
    bad.mkdir()
    (bad / "test.jsonl").write_text('{"question": "q", "choices": ["a", "b"], "answer": 5}\n')
    with pytest.raises(RunError, match=r"test.jsonl: record 0 is not a multiple-choice item"):
        read_questions(tmp_path, "wmdp-bio")
    with pytest.raises(RunError, match="no test split for 'wmdp-chem'"):
        read_questions(tmp_path, "wmdp-chem")


def test_an_mmlu_directory_needs_its_subject(wmdp_setup) -> None:
    from unlearnspec.metrics.utility import mmlu

    _, mmlu_dir, model, tok = wmdp_setup
    with pytest.raises(RunError, match="#college_biology"):
        mmlu(model, tok, None, MultipleChoiceConfig(path=str(mmlu_dir), protocol="lm_eval"))
    with pytest.raises(RunError, match="fewer than shots=9"):
        mmlu(model, tok, None, MultipleChoiceConfig(path=f"{mmlu_dir}#college_biology",
                                                   protocol="lm_eval", shots=9))


def test_options_are_checked() -> None:
    from unlearnspec.metrics.utility import TruthfulQAConfig
    from unlearnspec.registry import ConfigError

    with pytest.raises(ConfigError, match="subset must be"):
        WmdpConfig(path="x", subset="nuclear")  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="lm_eval applies to mmlu"):
        TruthfulQAConfig(path="x", protocol="lm_eval")


# lm-eval with --num_fewshot 2 (the first two of the dev split, its first_n sampler)
REFERENCE_MMLU_2SHOT_CONTEXT = (
    "The following are multiple choice questions (with answers) about college biology.\n\n"
    "what is the city of theta ?\nA. a city\nB. a river\nC. a name\nD. a year\nAnswer: D\n\n"
    "where does kappa live ?\nA. the north city\nB. the south city\nC. the east city\n"
    "D. the west city\nAnswer: C\n\n"
    "where does alpha live ?\nA. the north city\nB. the south city\nC. the east city\n"
    "D. the west city\nAnswer:")
REFERENCE_MMLU_2SHOT_LL = (
    (-4.362040042877197, -4.354713439941406, -4.300036907196045, -4.3555474281311035),
    (-4.374601364135742, -4.35545015335083, -4.2997894287109375, -4.3638224601745605),
)


def test_mmlu_few_shot_context_matches_lm_eval(wmdp_setup) -> None:
    from unlearnspec.metrics.lmeval import (DESCRIPTION, choice_accuracy, context,
                                            read_questions)

    _, mmlu_dir, model, tok = wmdp_setup
    shots = read_questions(mmlu_dir, "college_biology", "dev")[:2]
    qs = read_questions(mmlu_dir, "college_biology")[:2]
    ctx = [context(DESCRIPTION.format(topic="college biology"), shots, q) for q in qs]
    assert ctx[0] == REFERENCE_MMLU_2SHOT_CONTEXT
    _, ll = choice_accuracy(model, tok, qs, ctx, batch_size=2)
    np.testing.assert_allclose(ll, REFERENCE_MMLU_2SHOT_LL, rtol=1e-5)
