"""Claims resolved against a spec: names to metric references, units checked, constant
arithmetic folded at collection. The text is parsed by `spec.claim_syntax`; nothing here
evaluates a measured value (see `spec.evaluate`).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from typing import Any, Mapping, NoReturn

from ..errors import Location, did_you_mean
from . import claim_syntax as syntax
from .evaluate import ClaimNotComputable, constant_value
from .tree import BinOp, Call, Comparison, Expr, MetricRef, Neg, Num, map_refs, metric_refs

FUNCTIONS = ("abs", "min", "max")
BASELINE = "baseline"  # the stored run given by --unlearn-baseline (see docs/methods.md)
RESERVED = ("under", "fp", BASELINE, *FUNCTIONS)


@dataclass(frozen=True)
class MetricInfo:
    kind: str
    unit: str
    weights: bool = False  # a weight-space metric: needs a transform


@dataclass(frozen=True)
class ClaimScope:
    """The names a claim may use. Build it from a Spec with `ClaimScope.from_spec`."""

    models: frozenset[str]
    transforms: frozenset[str]
    metrics: Mapping[str, MetricInfo] = field(default_factory=dict)

    @classmethod
    def from_spec(cls, spec: Any) -> "ClaimScope":
        from ..metrics.registry import METRICS

        metrics = {}
        for name, m in spec.metrics.items():
            comp = METRICS.get(m.kind)
            metrics[name] = MetricInfo(m.kind, comp.unit or m.kind, "weights" in comp.tags)
        return cls(frozenset(spec.models), frozenset(spec.transforms), metrics)

    @property
    def names(self) -> frozenset[str]:
        return self.models | self.transforms | frozenset(self.metrics) | {"fp", BASELINE}


# ---------------------------------------------------------------- resolution and units


def parse_claim(text: str, scope: Any, *, loc: Location | None = None) -> Comparison:
    """Parse `text` and resolve its names against `scope` (a Spec or a ClaimScope).

    Every error is a SpecError with a caret under the offending part; `loc` is where the
    text starts in the spec file, so the error names file:line:col."""
    if not isinstance(scope, ClaimScope):
        scope = ClaimScope.from_spec(scope)
    src = syntax.ClaimText(text, loc)
    op, left, right, op_tok = syntax.Parser(syntax.tokenize(text, scope.names, src), src).claim()
    resolver = _Resolver(scope, src, _claim_metrics(scope, (left, right)))
    lexpr, lunit = resolver.resolve(left)
    rexpr, runit = resolver.resolve(right)
    span = (left.span[0], right.span[1])
    if lunit and runit and lunit != runit:
        src.fail(f"incompatible units for '{op_tok.text}': {lunit} vs {runit} "
                 f"('{_snippet(text, left.span)}' vs '{_snippet(text, right.span)}')", span,
                 "a claim can only compare values of one unit")
    lexpr, rexpr = _inherit_baseline_transform(lexpr, rexpr, resolver.bare_baselines)
    return Comparison(op, lexpr, rexpr, span)  # type: ignore[arg-type]


def _inherit_baseline_transform(left: Expr, right: Expr, bare: set[tuple[int, int]]
                                ) -> tuple[Expr, Expr]:
    """A `baseline` written without `@` means the same measurement as the claim's first
    subject term, transform included: in `knowmem_forget @ rtn4 <= baseline + 2` the
    baseline is knowmem_forget of this subject under rtn4 in the stored run."""
    refs = [*metric_refs(left), *metric_refs(right)]
    first = next((r for r in refs if r.model is None), None)
    if first is None or not bare:
        return left, right

    def fix(ref: MetricRef) -> MetricRef:
        if ref.model == BASELINE and ref.span in bare:
            return replace(ref, transform=first.transform)
        return ref

    return map_refs(left, fix), map_refs(right, fix)


def _is_constant(expr: Expr) -> bool:
    return next(metric_refs(expr), None) is None


def _constant(expr: Expr) -> float:
    try:
        return constant_value(expr)
    except ClaimNotComputable:
        return math.inf


def _snippet(text: str, span: tuple[int, int]) -> str:
    return text[span[0]:span[1]]


def _claim_metrics(scope: ClaimScope, nodes: tuple[Any, ...]) -> list[str]:
    """The distinct metric names a claim mentions, in order (bare or as `metric(model)`)."""
    found: list[str] = []
    for node in (n for top in nodes for n in syntax.walk(top)):
        name = node.name if isinstance(node, syntax.Name) else getattr(node, "func", None)
        if name in scope.metrics and name not in found:
            found.append(name)
    return found


@dataclass
class _Resolver:
    scope: ClaimScope
    src: syntax.ClaimText
    claim_metrics: list[str]
    bare_baselines: set[tuple[int, int]] = field(default_factory=set)

    def resolve(self, node: Any) -> tuple[Expr, str | None]:
        if isinstance(node, syntax.Num):
            return Num(node.value, node.span), None
        if isinstance(node, syntax.Neg):
            inner, unit = self.resolve(node.operand)
            return self.fold(Neg(inner, node.span)), unit
        if isinstance(node, syntax.Bin):
            expr, unit = self.binary(node)
            return self.fold(expr), unit
        if isinstance(node, (syntax.Name, syntax.At)) or (
            isinstance(node, syntax.Call) and node.func in self.scope.metrics
        ):
            return self.ref(node)
        expr, unit = self.function(node)
        return self.fold(expr), unit

    def fold(self, expr: Expr) -> Expr:
        """Compute a sub-expression of numbers only now, so `1/0` or an overflow is an error
        at collection with a caret, not at the end of a run; so is a division by a constant
        zero, whatever is divided. The arithmetic is `spec.evaluate`'s, in the same order.
        The tree is kept as written, so an explanation shows the user's own arithmetic."""
        if isinstance(expr, BinOp) and expr.op == "/" and _is_constant(expr.right) \
                and _constant(expr.right) == 0:
            self.src.fail(f"division by zero: '{_snippet(self.src.text, expr.right.span)}' "
                          "is 0", expr.right.span, "divide by a number other than 0")
        if _is_constant(expr) and not math.isfinite(_constant(expr)):
            self.src.fail(f"'{_snippet(self.src.text, expr.span)}' is not a finite number",
                          expr.span, "use numbers a claim can compare, e.g. retrain + 5")
        return expr

    def binary(self, node: syntax.Bin) -> tuple[Expr, str | None]:
        left, lu = self.resolve(node.left)
        right, ru = self.resolve(node.right)
        expr = BinOp(node.op, left, right, node.span)  # type: ignore[arg-type]
        ltxt = _snippet(self.src.text, node.left.span)
        rtxt = _snippet(self.src.text, node.right.span)
        if node.op in "+-":
            if lu and ru and lu != ru:
                self.src.fail(f"incompatible units for '{node.op}': {lu} vs {ru} "
                              f"('{ltxt}' vs '{rtxt}')", node.span,
                              "a claim can only add or subtract values of one unit")
            return expr, lu or ru
        if lu and ru:
            self.src.fail(f"'{node.op}' needs a plain number on one side: '{ltxt}' is {lu} "
                          f"and '{rtxt}' is {ru}", node.span,
                          "scale a metric by a number, e.g. 0.9 * knowmem_retain(target)")
        if node.op == "/" and ru:
            return expr, f"1/{ru}"
        return expr, lu or ru

    def function(self, node: Any) -> tuple[Expr, str | None]:
        assert isinstance(node, syntax.Call)
        if node.func not in FUNCTIONS:
            self.unknown_callable(node)
        if node.func == "abs" and len(node.args) != 1:
            self.src.fail(f"abs() takes one argument, got {len(node.args)}", node.span)
        if node.func != "abs" and len(node.args) < 2:
            self.src.fail(f"{node.func}() takes at least two arguments, got {len(node.args)}",
                          node.span)
        args, unit = [], None
        for arg in node.args:
            expr, u = self.resolve(arg)
            if unit and u and u != unit:
                self.src.fail(f"incompatible units in {node.func}(): {unit} vs {u}", node.span,
                              f"{node.func}() compares values of one unit")
            args.append(expr)
            unit = unit or u
        return Call(node.func, tuple(args), node.span), unit  # type: ignore[arg-type]

    def unknown_callable(self, node: syntax.Call) -> NoReturn:
        name = node.func
        if name in self.scope.models:
            self.src.fail(f"'{name}' is a model, not a metric or a function", node.func_span,
                          f"measure it with a metric, e.g. {self.example_metric()}({name})")
        if name in self.scope.transforms or name == "fp":
            self.src.fail(f"'{name}' is a transform, not a metric or a function",
                          node.func_span, f"write e.g. {self.example_metric()} @ {name}")
        choices = [*FUNCTIONS, *self.scope.metrics]
        self.src.fail(f"unknown function or metric '{name}'", node.func_span,
                      did_you_mean(name, choices) or f"known: {', '.join(choices)}")

    # ------------------------------------------------------------ metric references

    def ref(self, node: Any) -> tuple[Expr, str | None]:
        transform, inner = None, node
        if isinstance(node, syntax.At):
            transform, inner = self.transform(node), node.operand
        if isinstance(inner, syntax.Call):
            metric, model = self.explicit(inner, transform)
            if isinstance(node, syntax.At) and model[1]:
                self.src.fail("a term takes one transform; this one has two", node.span)
            model, transform = model[0], transform or model[1]
        elif isinstance(inner, syntax.Name):
            metric, model = self.bare(inner)
            if model == BASELINE and not isinstance(node, syntax.At):
                self.bare_baselines.add(node.span)
        else:
            self.src.fail("'@' must follow a metric or a model name", node.span,
                          "write e.g. knowmem_forget @ rtn4 or retrain @ rtn4")
        info = self.scope.metrics[metric]
        if info.weights and transform is None:
            self.src.fail(f"'{metric}' is a weight-space metric and needs a transform",
                          node.span, f"write {metric} @ {self.example_transform()}")
        return MetricRef(metric, model, transform, node.span), info.unit

    def transform(self, node: syntax.At) -> str | None:
        name = node.transform
        if name == "fp":
            return None
        if name not in self.scope.transforms:
            kind = ("a model" if name in self.scope.models else
                    "a metric" if name in self.scope.metrics else None)
            choices = sorted(self.scope.transforms) + ["fp"]
            hint = did_you_mean(name, choices) or f"transforms: {', '.join(choices)}"
            what = f"'{name}' is {kind}, not a transform" if kind else f"unknown transform '{name}'"
            self.src.fail(what, node.transform_span, hint)
        return name

    def bare(self, node: syntax.Name) -> tuple[str, str | None]:
        name = node.name
        if name in self.scope.metrics:
            return name, None
        if name in self.scope.models or name == BASELINE:
            return self.claim_metric(node), name
        if name in FUNCTIONS:
            self.src.fail(f"{name} needs parentheses", node.span, f"write {name}(...)")
        if name in self.scope.transforms or name == "fp":
            self.src.fail(f"'{name}' is a transform; it goes after '@'", node.span,
                          f"write e.g. {self.example_metric()} @ {name}")
        self.unknown_name(name, node.span)

    def claim_metric(self, node: syntax.Name) -> str:
        if len(self.claim_metrics) == 1:
            return self.claim_metrics[0]
        if not self.claim_metrics:
            self.src.fail(f"'{node.name}' is a model, but this claim names no metric to "
                          f"measure it with", node.span,
                          f"write e.g. {self.example_metric()}({node.name})")
        forms = " or ".join(f"{m}({node.name})" for m in self.claim_metrics)
        self.src.fail(f"'{node.name}' is ambiguous: this claim mentions the metrics "
                      f"{', '.join(self.claim_metrics)}", node.span, f"write {forms}")

    def explicit(self, node: syntax.Call, outer: str | None) -> tuple[str, tuple[str, str | None]]:
        example = f"{node.func}(retrain @ {self.example_transform()})"
        if len(node.args) != 1:
            self.src.fail(f"{node.func}(...) takes one model, got {len(node.args)} arguments",
                          node.span, f"write e.g. {example}")
        arg = node.args[0]
        transform = None
        if isinstance(arg, syntax.At):
            transform, arg = self.transform(arg), arg.operand
        if not isinstance(arg, syntax.Name):
            self.src.fail(f"{node.func}(...) takes a model name", arg.span,
                          f"write e.g. {example}")
        if arg.name not in self.scope.models and arg.name != BASELINE:
            if arg.name in self.scope.metrics or arg.name in self.scope.transforms:
                self.src.fail(f"'{arg.name}' is not a model", arg.span,
                              f"write e.g. {example}")
            self.unknown_name(arg.name, arg.span, models_only=True)
        return node.func, (arg.name, transform)

    def unknown_name(self, name: str, span: tuple[int, int], models_only: bool = False
                     ) -> NoReturn:
        models = sorted(self.scope.models)
        metrics = [] if models_only else sorted(self.scope.metrics)
        what = "model" if models_only else "metric or model"
        hint = did_you_mean(name, metrics + models)
        if hint is None:
            parts = ([f"metrics: {', '.join(metrics)}"] if metrics else []) + [
                f"models: {', '.join(models) or 'none'}"]
            hint = "; ".join(parts)
        self.src.fail(f"unknown {what} '{name}'", span, hint)

    def example_metric(self) -> str:
        data_metrics = [m for m, info in self.scope.metrics.items() if not info.weights]
        return next(iter(self.claim_metrics or data_metrics or self.scope.metrics),
                    "knowmem_forget")

    def example_transform(self) -> str:
        return min(self.scope.transforms, default="rtn4")
