"""Deciding a claim for one subject, and saying why.

`evaluate_claim` walks the claim's tree with plain float arithmetic (in the tree's order, so the
result equals the same expression computed directly). A term that is NaN or infinite, a
division by zero, or an overflow raises `ClaimNotComputable`: a claim that cannot be decided
is an error, never a pass.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Any, Callable

from ..errors import RunError
from ..numbers import format_number
from .confidence import Interval
from .tree import Call, ClaimSpec, Expr, MetricRef, Neg, Num, map_refs

EQ_TOLERANCE = 1e-9
_NEGATED = {"<=": ">", "<": ">=", ">=": "<", ">": "<=", "==": "!="}
_PREC = {"+": 1, "-": 1, "*": 2, "/": 2}
_ARITH: dict[str, Callable[[float, float], float]] = {
    "+": lambda a, b: a + b, "-": lambda a, b: a - b,
    "*": lambda a, b: a * b, "/": lambda a, b: a / b,
}

OUTCOME_ORDER = ("pass", "inconclusive", "fail")  # the worst last
_INTERVAL_WORDS = {
    "pass": "holds over the whole interval",
    "fail": "violated over the whole interval",
    "inconclusive": "INCONCLUSIVE: the interval of the margin straddles 0",
}

# a term's value at full precision (the explanation prints it beside a transformed term)
FpReference = Callable[[MetricRef], "float | None"]


class ClaimNotComputable(RunError):
    """A claim's value could not be computed (a NaN or infinite term, a division by zero).
    `term` names the culprit as the explanation would print it."""

    def __init__(self, message: str, term: str | None = None) -> None:
        super().__init__(message)
        self.term = term


def term_label(metric: str, model: str, transform: str | None) -> str:
    """`knowmem_forget[ga_klr @ rtn4]` (no `@` at full precision): how a term is named in
    explanations and reports; the one place that writes this text."""
    at = f" @ {transform}" if transform else ""
    return f"{metric}[{model}{at}]"


def format_ref(ref: MetricRef) -> str:
    """`knowmem_forget[ga_klr @ rtn4]`; an unsubstituted subject prints as `subject`."""
    return term_label(ref.metric, ref.model or "subject", ref.transform)


def format_expr(expr: Expr, parent: int = 0, right_of_same: bool = False) -> str:
    """The expression with concrete references; parentheses only where the tree needs them."""
    if isinstance(expr, Num):
        return f"{expr.value:g}"
    if isinstance(expr, MetricRef):
        return format_ref(expr)
    if isinstance(expr, Neg):
        return "-" + format_expr(expr.operand, 3)
    if isinstance(expr, Call):
        return f"{expr.func}({', '.join(format_expr(a) for a in expr.args)})"
    prec = _PREC[expr.op]
    text = f"{format_expr(expr.left, prec)} {expr.op} {format_expr(expr.right, prec, True)}"
    if prec < parent or (prec == parent and right_of_same):
        return f"({text})"
    return text


@dataclass(frozen=True)
class Verdict:
    """The outcome of one claim for one subject. `margin` > 0 means it passes by that much;
    for `==` it is -|lhs - rhs| (a pass within EQ_TOLERANCE). Under `confidence:` the
    outcome is decided on `interval` (of the margin), not on the point estimate: `outcome`
    is then "pass", "fail" or "inconclusive" and `passed` is true only for "pass"."""

    passed: bool
    lhs: float
    rhs: float
    margin: float
    terms: tuple[tuple[str, float], ...]
    op: str = "<="
    lhs_text: str = ""
    rhs_text: str = ""
    refs: tuple[MetricRef, ...] = ()  # the concrete reference behind each term
    interval: Interval | None = None
    decided: str | None = None  # the interval's outcome; None: decided on the point estimate
    # a seeded subject: each seed's own verdict, and how they were combined ("every": this
    # verdict is the worst seed's; "mean"/"median": the claim on that aggregate of each term)
    per_seed: tuple[tuple[int, "Verdict"], ...] = ()
    aggregate: str | None = None

    @property
    def outcome(self) -> str:
        """pass / fail / inconclusive."""
        if self.decided is not None:
            return self.decided
        return "pass" if self.passed else "fail"

    def term_labels(self) -> list[str]:
        """Every measurement the verdict read, each seed's included."""
        labels = [label for label, _ in self.terms]
        for _, v in self.per_seed:
            labels += [label for label in v.term_labels() if label not in labels]
        return labels

    def explain(self, fp_reference: FpReference | None = None) -> str:
        """The comparison as measured, then each term; for a transformed term, the same
        measurement at full precision when `fp_reference` knows it (returns None otherwise).
        Over seeds: how they combine and their spread first, then the deciding verdict, then
        one line per seed."""
        if not self.per_seed:
            return self._explain_one(fp_reference)
        outcomes = [v.outcome for _, v in self.per_seed]
        counts = ", ".join(f"{outcomes.count(o)} {o}" for o in OUTCOME_ORDER if o in outcomes)
        ms = [v.margin for _, v in self.per_seed]
        spread = f"margin {format_number(min(ms))} to {format_number(max(ms))}"
        n = len(self.per_seed)
        if self.aggregate == "every":
            head = f"every one of {n} seeds must hold: {counts} ({spread}); the deciding seed:"
        else:
            head = f"the claim on the {self.aggregate} of each term over {n} seeds " \
                   f"(per seed: {counts}, {spread}):"
        lines = [head, self._explain_one(fp_reference)]
        for seed, v in self.per_seed:
            first = v._explain_one(None).splitlines()[0]
            lines.append(f"  seed {seed}: {v.outcome.upper()}  {first}")
        return "\n".join(lines)

    def _explain_one(self, fp_reference: FpReference | None) -> str:
        shown = {"pass": self.op, "fail": _NEGATED[self.op], "inconclusive": "vs"}[self.outcome]

        def side(text: str, value: float) -> str:  # a plain number needs no "= value"
            return text if text == format_number(value) else f"{text} = {format_number(value)}"

        iv = self.interval
        within = "" if iv is None else \
            f", {iv.confidence:.0%} interval [{format_number(iv.low)}, {format_number(iv.high)}]"
        lines = [f"{side(self.lhs_text, self.lhs)}  {shown}  {side(self.rhs_text, self.rhs)}  "
                 f"(margin {format_number(self.margin)}{within})"]
        if iv is not None:
            lines.append(f"  {_INTERVAL_WORDS[self.outcome]} at {iv.confidence:.0%}: "
                         f"{iv.replicates} bootstrap resamples of {iv.samples}")
        for (label, value), ref in zip(self.terms, self.refs):
            lines.append(f"  {label} = {format_number(value)}")
            if fp_reference is not None and ref.transform is not None:
                fp = replace(ref, transform=None)
                fp_value = fp_reference(fp)
                if fp_value is not None and math.isfinite(fp_value):
                    lines.append(f"  {format_ref(fp)} = {format_number(fp_value)} (fp)")
        return "\n".join(lines)


def evaluate_claim(claim: ClaimSpec, subject: str, lookup: Callable[[MetricRef], Any]
                   ) -> Verdict:
    """Decide `claim` for `subject`. `lookup` gets each distinct concrete reference once (its
    `model` filled in) and returns a float (a MetricResult is accepted too: one that is not
    `.ok` cannot be decided)."""
    ev = _Evaluator(claim, subject, lookup)
    expr = claim.expr
    lhs, rhs = ev.value(expr.left), ev.value(expr.right)
    passed, margin = _compare(expr.op, lhs, rhs)
    return Verdict(
        passed=passed, lhs=lhs, rhs=rhs, margin=margin,
        terms=tuple((format_ref(r), v) for r, v in ev.values.items()),
        op=expr.op,
        lhs_text=format_expr(ev.concrete(expr.left)),
        rhs_text=format_expr(ev.concrete(expr.right)),
        refs=tuple(ev.values),
    )


def constant_value(expr: Expr) -> float:
    """The value of an expression without metric references, computed exactly as
    `evaluate_claim` would (the claim parser folds such sub-expressions). A division by zero
    or an overflow raises ClaimNotComputable."""
    return _Evaluator(None, "", _no_lookup).value(expr)


def _no_lookup(ref: MetricRef) -> Any:
    raise AssertionError(f"a constant expression has no metric terms, got {ref}")


def _compare(op: str, lhs: float, rhs: float) -> tuple[bool, float]:
    if op == "==":
        diff = abs(lhs - rhs)
        return diff <= EQ_TOLERANCE, -diff
    if op in ("<=", "<"):
        return (lhs <= rhs if op == "<=" else lhs < rhs), rhs - lhs
    return (lhs >= rhs if op == ">=" else lhs > rhs), lhs - rhs


class _Evaluator:
    def __init__(self, claim: ClaimSpec | None, subject: str,
                 lookup: Callable[[MetricRef], Any]) -> None:
        self.claim, self.subject, self.lookup = claim, subject, lookup
        self.values: dict[MetricRef, float] = {}  # keys have span (0, 0): one per term

    def fail(self, message: str, term: str | None = None) -> ClaimNotComputable:
        if self.claim is None:
            return ClaimNotComputable(message, term)
        return ClaimNotComputable(
            f"claim '{self.claim.name}' for subject '{self.subject}' cannot be decided: "
            f"{message}", term)

    def concrete(self, expr: Expr) -> Expr:
        """The tree with every reference's model filled in (for printing)."""
        return map_refs(expr, lambda r: replace(r, model=r.model or self.subject))

    def term(self, ref: MetricRef) -> float:
        ref = replace(ref, model=ref.model or self.subject)
        key = replace(ref, span=(0, 0))
        if key not in self.values:
            label = format_ref(ref)
            raw = self.lookup(ref)
            if hasattr(raw, "ok") and hasattr(raw, "value"):  # a MetricResult
                if not raw.ok:
                    raise self.fail(f"{label} could not be measured "
                                    f"(value {raw.value}, {raw.n} samples)", label)
                raw = raw.value
            try:
                value = float(raw)
            except (TypeError, ValueError):
                raise self.fail(f"{label} is {raw!r}, not a number", label) from None
            if not math.isfinite(value):
                raise self.fail(f"{label} is {value}", label)
            self.values[key] = value
        return self.values[key]

    def value(self, expr: Expr) -> float:
        if isinstance(expr, Num):
            return expr.value
        if isinstance(expr, MetricRef):
            return self.term(expr)
        if isinstance(expr, Neg):
            return -self.value(expr.operand)
        if isinstance(expr, Call):
            args = [self.value(a) for a in expr.args]
            return abs(args[0]) if expr.func == "abs" else (min if expr.func == "min" else max)(args)
        left, right = self.value(expr.left), self.value(expr.right)
        if expr.op == "/" and right == 0:
            raise self.fail(f"division by zero: {format_expr(self.concrete(expr.right))} = 0",
                            format_expr(self.concrete(expr.right)))
        try:
            out = _ARITH[expr.op](left, right)
        except OverflowError:
            out = math.inf
        if not math.isfinite(out):
            text = format_expr(self.concrete(expr))
            raise self.fail(f"{text} overflows ({out})", text)
        return out
