"""Deciding a claim on a confidence interval: pass, fail or inconclusive.

With `confidence: c` a claim is decided on the central c-interval of its *margin* (how far
the comparison holds: `rhs - lhs` for `<=`/`<`, `lhs - rhs` for `>=`/`>`) over bootstrap
replicates of its terms: pass when the whole interval satisfies the comparison, fail when the
whole interval violates it, inconclusive otherwise. The replicates come through a callback
(one array per term, the same resample indices on both sides), so this module never learns
who measured them. numpy is imported inside the functions: the plugin loads this module at
collection time.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

from .tree import BinOp, Call, Comparison, Expr, MetricRef, Neg, Num

OUTCOMES = ("pass", "fail", "inconclusive")


@dataclass(frozen=True)
class Interval:
    """The central `confidence` interval of the margin over `replicates` bootstrap
    resamples; `samples` says what was resampled, e.g. '60 questions'."""

    low: float
    high: float
    confidence: float
    replicates: int
    samples: str = ""

    def to_json(self) -> dict[str, Any]:
        return {"low": self.low, "high": self.high, "confidence": self.confidence,
                "replicates": self.replicates, "samples": self.samples}


def margins(op: str, lhs: Any, rhs: Any) -> Any:
    """The margin of each replicate (arrays in, array out); for `==` it is -|lhs - rhs|."""
    import numpy as np

    if op == "==":
        return -np.abs(np.asarray(lhs) - np.asarray(rhs))
    if op in ("<=", "<"):
        return np.asarray(rhs) - np.asarray(lhs)
    return np.asarray(lhs) - np.asarray(rhs)


def percentile_interval(values: Any, confidence: float) -> tuple[float, float]:
    """The central `confidence` percentile interval (numpy's linear interpolation)."""
    import numpy as np

    alpha = (1.0 - confidence) / 2.0
    low, high = np.quantile(np.asarray(values, dtype=np.float64), [alpha, 1.0 - alpha])
    return float(low), float(high)


def decide(op: str, low: float, high: float, tolerance: float) -> str:
    """pass / fail / inconclusive for a margin interval [low, high]."""
    if op == "==":  # margin = -|diff|: holds within tolerance
        if low >= -tolerance:
            return "pass"
        return "fail" if high < -tolerance else "inconclusive"
    if op in ("<=", ">="):
        if low >= 0:
            return "pass"
        return "fail" if high < 0 else "inconclusive"
    if low > 0:
        return "pass"
    return "fail" if high <= 0 else "inconclusive"


def replicate_sides(comparison: Comparison, subject: str,
                    lookup: Callable[[MetricRef], Any]) -> tuple[Any, Any]:
    """Both sides of the comparison on every replicate: `lookup` gets each concrete
    reference (model filled in) and returns an array of its replicate values. A replicate
    whose arithmetic is not finite (a division by a resampled zero) makes the result carry
    inf/nan; the caller refuses such an interval."""
    import numpy as np

    cache: dict[tuple[str, str, str | None], Any] = {}

    def value(expr: Expr) -> Any:
        if isinstance(expr, Num):
            return np.float64(expr.value)
        if isinstance(expr, MetricRef):
            model = expr.model or subject
            key = (expr.metric, model, expr.transform)
            if key not in cache:
                cache[key] = np.asarray(lookup(MetricRef(expr.metric, model, expr.transform,
                                                         (0, 0))), dtype=np.float64)
            return cache[key]
        if isinstance(expr, Neg):
            return -value(expr.operand)
        if isinstance(expr, Call):
            args = [value(a) for a in expr.args]
            if expr.func == "abs":
                return np.abs(args[0])
            stack = np.broadcast_arrays(*args)
            return (np.min if expr.func == "min" else np.max)(np.stack(stack), axis=0)
        assert isinstance(expr, BinOp)
        left, right = value(expr.left), value(expr.right)
        with np.errstate(all="ignore"):
            if expr.op == "+":
                return left + right
            if expr.op == "-":
                return left - right
            if expr.op == "*":
                return left * right
            return np.where(right == 0, np.nan, left / np.where(right == 0, 1.0, right))

    return value(comparison.left), value(comparison.right)
