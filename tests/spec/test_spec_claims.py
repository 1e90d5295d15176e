"""The claim language: syntax, precedence, name resolution, units, and where errors point."""
from __future__ import annotations

import pytest

from spec_helpers import SCOPE
from unlearnspec.errors import Location, SpecError
from unlearnspec.spec import parse_claim
from unlearnspec.spec.claim_syntax import MAX_DEPTH, tokenize
from unlearnspec.spec.tree import BinOp, Call, MetricRef, Neg, Num


def parse(text: str):
    return parse_claim(text, SCOPE)


def shape(expr) -> object:
    """A compact, span-free picture of a tree, to compare structure."""
    if isinstance(expr, Num):
        return expr.value
    if isinstance(expr, MetricRef):
        return (expr.metric, expr.model, expr.transform)
    if isinstance(expr, Neg):
        return ("neg", shape(expr.operand))
    if isinstance(expr, Call):
        return (expr.func, *[shape(a) for a in expr.args])
    assert isinstance(expr, BinOp)
    return (expr.op, shape(expr.left), shape(expr.right))


def error(text: str, loc: Location | None = None) -> SpecError:
    with pytest.raises(SpecError) as info:
        parse_claim(text, SCOPE, loc=loc)
    return info.value


def caret(err: SpecError) -> str:
    """The part of the source the caret is under."""
    start, end = err.span
    return err.source[start:end]


KF = ("knowmem_forget", None, None)


# ---------------------------------------------------------------- syntax


def test_mission_sentence_parses() -> None:
    c = parse("knowmem_forget @ rtn4 <= retrain + 5")
    assert c.op == "<="
    assert shape(c.left) == ("knowmem_forget", None, "rtn4")
    assert shape(c.right) == ("+", ("knowmem_forget", "retrain", None), 5.0)


@pytest.mark.parametrize(
    "text, left",
    [
        ("1 + 2 * 3 < 0", ("+", 1.0, ("*", 2.0, 3.0))),
        ("(1 + 2) * 3 < 0", ("*", ("+", 1.0, 2.0), 3.0)),
        ("1 - 2 - 3 < 0", ("-", ("-", 1.0, 2.0), 3.0)),  # left-associative
        ("8 / 4 / 2 < 0", ("/", ("/", 8.0, 4.0), 2.0)),
        ("1 - 2 * 3 / 4 < 0", ("-", 1.0, ("/", ("*", 2.0, 3.0), 4.0))),
        ("-2 * 3 < 0", ("*", ("neg", 2.0), 3.0)),  # unary minus binds tighter than *
        ("--2 < 0", ("neg", ("neg", 2.0))),
        ("1 - -2 < 0", ("-", 1.0, ("neg", 2.0))),
        ("2.5e-1 + .5 + 3. + 1E2 < 0", ("+", ("+", ("+", 0.25, 0.5), 3.0), 100.0)),
        ("-knowmem_forget @ rtn4 < 0", ("neg", ("knowmem_forget", None, "rtn4"))),
    ],
)
def test_precedence_and_associativity(text: str, left: object) -> None:
    assert shape(parse(text).left) == left


@pytest.mark.parametrize("text", [
    "knowmem_forget under rtn4 <= 5",
    "knowmem_forget@rtn4<=5",
    "knowmem_forget @ rtn4 ≤ 5",
])
def test_under_at_and_unicode_comparison_are_the_same(text: str) -> None:
    c = parse(text)
    assert (c.op, shape(c.left), shape(c.right)) == ("<=", ("knowmem_forget", None, "rtn4"), 5.0)


@pytest.mark.parametrize("sym, op", [("<=", "<="), ("<", "<"), (">=", ">="), (">", ">"),
                                     ("==", "=="), ("≤", "<="), ("≥", ">=")])
def test_every_comparison(sym: str, op: str) -> None:
    assert parse(f"knowmem_forget {sym} 1").op == op


def test_explicit_form_and_bare_model_mean_the_same() -> None:
    explicit = parse("knowmem_forget <= knowmem_forget(retrain @ rtn4)")
    bare = parse("knowmem_forget <= retrain @ rtn4")
    outer = parse("knowmem_forget <= knowmem_forget(retrain) @ rtn4")
    assert shape(explicit.right) == shape(bare.right) == shape(outer.right) == (
        "knowmem_forget", "retrain", "rtn4")


def test_explicit_form_names_a_second_metric() -> None:
    c = parse("knowmem_retain @ rtn4 >= 0.9 * knowmem_retain(target)")
    assert shape(c.right) == ("*", 0.9, ("knowmem_retain", "target", None))


def test_functions() -> None:
    c = parse("abs(knowmem_forget - retrain) <= max(1, 2, min(3, 4))")
    assert shape(c.left) == ("abs", ("-", KF, ("knowmem_forget", "retrain", None)))
    assert shape(c.right) == ("max", 1.0, 2.0, ("min", 3.0, 4.0))


def test_at_fp_means_untransformed() -> None:
    assert shape(parse("knowmem_forget @ fp <= 1").left) == KF


def test_dashed_names_and_subtraction() -> None:
    # `rtn-4bit` is one name; `retrain-5` is retrain minus 5 because `retrain-5` is no name
    c = parse("knowmem_forget @ rtn-4bit <= retrain-5")
    assert shape(c.left) == ("knowmem_forget", None, "rtn-4bit")
    assert shape(c.right) == ("-", ("knowmem_forget", "retrain", None), 5.0)


def test_spans_cover_the_source_text() -> None:
    text = "knowmem_forget @ rtn4 <= retrain + 5"
    c = parse(text)
    assert text[slice(*c.left.span)] == "knowmem_forget @ rtn4"
    assert text[slice(*c.right.left.span)] == "retrain"
    assert text[slice(*c.right.span)] == "retrain + 5"


# ---------------------------------------------------------------- syntax errors


@pytest.mark.parametrize(
    "text, under, message",
    [
        ("knowmem_forget <=", "", "expected a number, a name or '(', got the end of the claim"),
        ("knowmem_forget + 5", "", "a claim needs one comparison"),
        ("1 < knowmem_forget < 2", "<", "exactly one comparison"),
        ("knowmem_forget @ <= 1", "<=", "expected a transform name after '@', got '<='"),
        ("knowmem_forget under 5 <= 1", "5", "expected a transform name after 'under'"),
        ("(1 + 2 <= 3", "<=", "expected ')' to close the '(' at column 1"),
        ("max(1, 2 <= 3", "<=", "expected ')' to close the '(' at column 4"),
        ("knowmem_forget = 3", "=", "'=' is not a comparison"),
        ("knowmem_forget => 3", "=>", "'=>' is not a comparison"),
        ("knowmem_forget != 3", "!=", "'!=' is not supported"),
        ("knowmem_forget $ 3", "$", "unexpected character '$'"),
        ("knowmem_forget 3 < 4", "3", "expected an operator or a comparison, got '3'"),
        ("1 < 2 )", ")", "expected an operator or the end of the claim, got ')'"),
        ("", "", "the claim is empty"),
        ("knowmem_forget @ rtn4 @ rtn8 < 1", "@", "one transform"),
        ("1e999 < 1", "1e999", "too large"),
    ],
)
def test_syntax_errors_point_at_the_bad_token(text: str, under: str, message: str) -> None:
    err = error(text)
    assert message in err.message
    assert err.source == text
    if under:
        assert caret(err) == under
    else:  # at the end: the caret sits just past the text
        assert err.span[0] == len(text)


def test_error_location_is_file_line_and_column_of_the_token() -> None:
    # the assert text starts at line 21, column 13 of the file
    err = error("knowmem_forget @ rtn5 <= retrain + 5", Location("specs/tiny.yaml", 21, 13))
    assert err.loc == Location("specs/tiny.yaml", 21, 13 + 17)
    rendered = str(err).splitlines()
    assert rendered[0] == "specs/tiny.yaml:21:30: unknown transform 'rtn5'"
    assert rendered[1] == "    knowmem_forget @ rtn5 <= retrain + 5"
    assert rendered[2] == "    " + " " * 17 + "^^^^"
    assert "did you mean" in rendered[3]


def test_multiline_claim_points_at_the_right_line() -> None:
    err = error("knowmem_forget @ rtn4\n  <= retrian + 5", Location("s.yaml", 10, 7))
    assert err.loc == Location("s.yaml", 11, 7 + 5)
    assert err.source == "  <= retrian + 5"
    assert caret(err) == "retrian"


def test_nesting_is_bounded() -> None:
    deep = "(" * (MAX_DEPTH + 2) + "1" + ")" * (MAX_DEPTH + 2) + " < 2"
    assert "nested too deeply" in error(deep).message
    long_sum = " + ".join(["1"] * (MAX_DEPTH + 2)) + " < 2"
    assert "nested too deeply" in error(long_sum).message
    assert parse(" + ".join(["1"] * 10) + " < 2")  # ordinary lengths are fine


def test_tokenize_without_scope_keeps_maximal_names() -> None:
    assert [t.text for t in tokenize("retrain-5 < 1")][:1] == ["retrain-5"]


# ---------------------------------------------------------------- resolution


@pytest.mark.parametrize(
    "text, under, message, hint",
    [
        ("knowmem_forgt <= 1", "knowmem_forgt", "unknown metric or model 'knowmem_forgt'",
         "did you mean 'knowmem_forget'?"),
        ("knowmem_forget <= retrian", "retrian", "unknown metric or model 'retrian'",
         "did you mean 'retrain'?"),
        ("knowmem_forget @ rtn5 <= 1", "rtn5", "unknown transform 'rtn5'", "did you mean"),
        ("knowmem_forget @ retrain <= 1", "retrain", "'retrain' is a model, not a transform",
         None),
        ("knowmem_forget(retrian) <= 1", "retrian", "unknown model 'retrian'",
         "did you mean 'retrain'?"),
        ("knowmem_forget(gamma) <= 1", "gamma", "'gamma' is not a model", None),
        ("knowmem_forget(1 + 2) <= 1", "1 + 2", "takes a model name", None),
        ("knowmem_forget(retrain, target) <= 1", "knowmem_forget(retrain, target)",
         "takes one model, got 2 arguments", None),
        ("knowmem_forget(retrain @ rtn4) @ rtn8 <= 1", "knowmem_forget(retrain @ rtn4) @ rtn8",
         "two", None),
        ("retrain(knowmem_forget) <= 1", "retrain", "'retrain' is a model, not a metric",
         None),
        ("sqrt(knowmem_forget) <= 1", "sqrt", "unknown function or metric 'sqrt'", None),
        ("rtn4 <= 1", "rtn4", "'rtn4' is a transform; it goes after '@'", None),
        ("fp <= 1", "fp", "'fp' is a transform", None),
        ("abs <= 1", "abs", "abs needs parentheses", None),
        ("abs(1, 2) <= 1", "abs(1, 2)", "abs() takes one argument, got 2", None),
        ("max(knowmem_forget) <= 1", "max(knowmem_forget)", "at least two arguments", None),
        ("(1 + 2) @ rtn4 <= 1", "(1 + 2) @ rtn4"[1:], "'@' must follow a metric or a model",
         None),
        ("retrain <= 5", "retrain", "names no metric", "knowmem_forget(retrain)"),
        ("knowmem_forget <= knowmem_retain + retrain", "retrain", "'retrain' is ambiguous",
         "knowmem_forget(retrain) or knowmem_retain(retrain)"),
    ],
)
def test_resolution_errors(text: str, under: str, message: str, hint: str | None) -> None:
    err = error(text)
    assert message in err.message
    assert caret(err) == under
    if hint:
        assert hint in (err.hint or "")


def test_weight_metric_needs_a_transform() -> None:
    err = error("gamma < 0.2")
    assert "'gamma' is a weight-space metric and needs a transform" in err.message
    assert err.hint.startswith("write gamma @ rtn")
    assert "needs a transform" in error("gamma @ fp < 0.2").message
    assert shape(parse("gamma @ rtn4 < 0.2").left) == ("gamma", None, "rtn4")


def test_bare_model_takes_the_claims_single_metric_even_with_explicit_forms() -> None:
    c = parse("knowmem_forget @ rtn4 - knowmem_forget(target) <= retrain")
    assert shape(c.right) == ("knowmem_forget", "retrain", None)


# ---------------------------------------------------------------- units


@pytest.mark.parametrize("text", [
    "knowmem_forget <= gamma @ rtn4",
    "knowmem_forget + gamma @ rtn4 <= 1",
    "knowmem_forget - mia <= 1",
    "max(knowmem_forget, mia) <= 1",
])
def test_incompatible_units(text: str) -> None:
    err = error(text)
    assert "incompatible units" in err.message


def test_incompatible_units_message_names_both_units() -> None:
    err = error("knowmem_forget <= gamma @ rtn4")
    assert "percent vs ratio" in err.message
    assert caret(err) == "knowmem_forget <= gamma @ rtn4"


@pytest.mark.parametrize("text", [
    "knowmem_forget <= privleak + 3",        # same unit: percent
    "0.5 * knowmem_forget <= knowmem_retain / 2",
    "gamma @ rtn4 <= 0.2 * gamma @ rtn8",
    "mia <= 0.5",
    "-(knowmem_forget - retrain) <= abs(-3)",
])
def test_compatible_units(text: str) -> None:
    parse(text)


def test_multiplying_two_metrics_is_an_error() -> None:
    err = error("knowmem_forget * knowmem_retain <= 1")
    assert "'*' needs a plain number on one side" in err.message
    assert "percent" in err.message


def test_number_over_metric_is_not_that_metrics_unit() -> None:
    # 1 / gamma has unit 1/ratio: it may be compared with a number but not with gamma
    parse("1 / (gamma @ rtn4) <= 10")
    assert "incompatible units" in error("1 / (gamma @ rtn4) <= gamma @ rtn8").message


@pytest.mark.parametrize("text, under, message", [
    ("knowmem_forget <= retrain + 1/0", "0", "division by zero: '0' is 0"),
    ("knowmem_forget / (2 - 2) <= 1", "2 - 2", "division by zero: '2 - 2' is 0"),
    ("knowmem_forget <= max(1, 1e300 * 1e300)", "1e300 * 1e300", "is not a finite number"),
    ("knowmem_forget <= -(1e308 + 1e308) + retrain", "1e308 + 1e308", "is not a finite number"),
])
def test_constant_arithmetic_errors_are_caught_when_parsed(text: str, under: str,
                                                           message: str) -> None:
    err = error(text)
    assert message in err.message and caret(err) == under


def test_constant_arithmetic_keeps_the_tree_as_written() -> None:
    # an explanation prints what the user wrote, so 2 * 2.5 is not shown as 5
    assert shape(parse("knowmem_forget <= retrain + 2 * 2.5").right) == (
        "+", ("knowmem_forget", "retrain", None), ("*", 2.0, 2.5))


def test_three_thousand_nested_parentheses_are_a_clear_error() -> None:
    text = "(" * 3000 + "knowmem_forget" + ")" * 3000 + " <= 1"
    assert "nested too deeply" in error(text).message
