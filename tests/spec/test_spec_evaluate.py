"""Deciding claims: margins, equality, values that cannot be used, and the explanation."""
from __future__ import annotations

import math

import pytest

from spec_helpers import claim
from unlearnspec.errors import RunError
from unlearnspec.metrics.result import MetricResult
from unlearnspec.spec import ClaimNotComputable, evaluate_claim, format_ref
from unlearnspec.spec.evaluate import constant_value
from unlearnspec.spec.tree import BinOp, MetricRef, Num

VALUES = {
    ("knowmem_forget", "ga_klr", "rtn4"): 51.4,
    ("knowmem_forget", "ga_klr", None): 21.0,
    ("knowmem_forget", "retrain", None): 33.1,
    ("knowmem_retain", "ga_klr", "rtn4"): 40.0,
    ("knowmem_retain", "target", None): 50.0,
    ("gamma", "ga_klr", "rtn4"): 0.0123,
}


def lookup(ref: MetricRef) -> float:
    return VALUES[(ref.metric, ref.model, ref.transform)]


def decide(text: str, values: dict | None = None):
    table = VALUES if values is None else values
    return evaluate_claim(claim(text), "ga_klr",
                          lambda r: table[(r.metric, r.model, r.transform)])


def test_failing_claim_margin_and_terms() -> None:
    v = decide("knowmem_forget @ rtn4 <= retrain + 5")
    assert not v.passed
    assert (v.lhs, v.rhs) == (51.4, 33.1 + 5)
    assert v.margin == pytest.approx(33.1 + 5 - 51.4)
    assert v.terms == (("knowmem_forget[ga_klr @ rtn4]", 51.4),
                       ("knowmem_forget[retrain]", 33.1))


def test_passing_claim_has_positive_margin() -> None:
    v = decide("knowmem_retain @ rtn4 >= 0.5 * knowmem_retain(target)")
    assert v.passed and v.margin == pytest.approx(15.0)


@pytest.mark.parametrize("op, lhs, rhs, passed, margin", [
    ("<", 1.0, 1.0, False, 0.0),
    ("<=", 1.0, 1.0, True, 0.0),
    (">", 2.0, 1.0, True, 1.0),
    (">=", 0.5, 1.0, False, -0.5),
    ("==", 1.0, 1.0 + 1e-12, True, -1e-12),
    ("==", 1.0, 1.1, False, -0.1),
])
def test_comparison_semantics(op: str, lhs: float, rhs: float, passed: bool,
                              margin: float) -> None:
    values = {("knowmem_forget", "ga_klr", None): lhs, ("knowmem_forget", "retrain", None): rhs}
    v = decide(f"knowmem_forget {op} retrain", values)
    assert v.passed is passed
    assert v.margin == pytest.approx(margin, abs=1e-15)


def test_lookup_gets_concrete_refs_once_each() -> None:
    seen: list[MetricRef] = []

    def spy(ref: MetricRef) -> float:
        seen.append(ref)
        return 2.0

    v = evaluate_claim(claim("knowmem_forget + knowmem_forget <= 2 * knowmem_forget"),
                       "npo_klr", spy)
    assert [(r.metric, r.model, r.transform) for r in seen] == [("knowmem_forget", "npo_klr",
                                                                 None)]
    assert v.passed and v.terms == (("knowmem_forget[npo_klr]", 2.0),)


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf])
def test_non_finite_term_is_never_a_pass(bad: float) -> None:
    values = {**VALUES, ("knowmem_forget", "retrain", None): bad}
    with pytest.raises(ClaimNotComputable) as info:
        decide("knowmem_forget @ rtn4 <= retrain + 5", values)
    assert info.value.term == "knowmem_forget[retrain]"
    assert "knowmem_forget[retrain] is" in str(info.value)
    assert "claim 'c' for subject 'ga_klr' cannot be decided" in str(info.value)
    assert isinstance(info.value, RunError)


def test_metric_result_that_is_not_ok_is_not_computable() -> None:
    empty = MetricResult(value=0.0, n=0)
    with pytest.raises(ClaimNotComputable, match="could not be measured"):
        evaluate_claim(claim("knowmem_forget <= 5"), "ga_klr", lambda r: empty)
    v = evaluate_claim(claim("knowmem_forget <= 5"), "ga_klr",
                       lambda r: MetricResult(value=3.0, n=10))
    assert v.passed and v.lhs == 3.0


def test_division_by_zero_is_not_computable() -> None:
    values = {**VALUES, ("knowmem_forget", "retrain", None): 0.0}
    with pytest.raises(ClaimNotComputable, match="division by zero: knowmem_forget\\[retrain\\]"):
        decide("1 / knowmem_forget(retrain) <= 1", values)
    # a constant divisor of zero is already an error when the claim is parsed (test_spec_claims);
    # the evaluator still refuses one in a tree built another way
    zero = BinOp("-", Num(2.0, (0, 1)), Num(2.0, (4, 5)), (0, 5))
    with pytest.raises(ClaimNotComputable, match="division by zero: 2 - 2 = 0"):
        constant_value(BinOp("/", Num(1.0, (0, 1)), zero, (0, 5)))


def test_overflow_is_not_computable() -> None:
    values = {("knowmem_forget", "ga_klr", None): 1e308}
    with pytest.raises(ClaimNotComputable, match="overflows"):
        decide("knowmem_forget * 10 <= 1", values)


def test_lookup_returning_garbage_is_not_computable() -> None:
    with pytest.raises(ClaimNotComputable, match="not a number"):
        evaluate_claim(claim("knowmem_forget <= 5"), "ga_klr", lambda r: "n/a")


def test_functions_evaluate() -> None:
    values = {("knowmem_forget", "ga_klr", None): -3.0, ("knowmem_forget", "retrain", None): 7.0}
    v = decide("abs(knowmem_forget) + min(retrain, 1, 2) - max(retrain, 9) <= -5", values)
    assert v.lhs == 3.0 + 1.0 - 9.0


def test_explain_reads_like_the_design() -> None:
    v = decide("knowmem_forget @ rtn4 <= retrain + 5")
    baseline = {("knowmem_forget", "ga_klr", None): 21.0}
    text = v.explain(lambda r: baseline.get((r.metric, r.model, r.transform)))
    assert text.splitlines() == [
        "knowmem_forget[ga_klr @ rtn4] = 51.4  >  knowmem_forget[retrain] + 5 = 38.1  "
        "(margin -13.3)",
        "  knowmem_forget[ga_klr @ rtn4] = 51.4",
        "  knowmem_forget[ga_klr] = 21.0 (fp)",
        "  knowmem_forget[retrain] = 33.1",
    ]


def test_explain_without_fp_reference_and_when_passing() -> None:
    v = decide("gamma @ rtn4 < 0.2")
    assert v.explain().splitlines() == [
        "gamma[ga_klr @ rtn4] = 0.0123  <  0.2  (margin 0.188)",
        "  gamma[ga_klr @ rtn4] = 0.0123",
    ]


def test_explain_keeps_needed_parentheses() -> None:
    v = decide("-(knowmem_forget @ rtn4 - retrain) * 2 >= 1 - (2 - 3)")
    head = v.explain().splitlines()[0]
    assert head.startswith("-(knowmem_forget[ga_klr @ rtn4] - knowmem_forget[retrain]) * 2 = ")
    assert "1 - (2 - 3) = 2.0" in head


def test_format_ref() -> None:
    assert format_ref(MetricRef("knowmem_forget", "ga_klr", "rtn4", (0, 0))) == \
        "knowmem_forget[ga_klr @ rtn4]"
    assert format_ref(MetricRef("knowmem_forget", "retrain", None, (0, 0))) == \
        "knowmem_forget[retrain]"
    assert format_ref(MetricRef("gamma", None, "rtn4", (0, 0))) == "gamma[subject @ rtn4]"
