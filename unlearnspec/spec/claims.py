"""The claim language: a hand-written lexer and recursive-descent parser, then name resolution
and unit checking against a spec. Nothing here evaluates anything (see `spec.evaluate`).

    claim   := sum CMP sum                       exactly one comparison
    sum     := product (('+' | '-') product)*
    product := unary (('*' | '/') unary)*
    unary   := '-' unary | term
    term    := primary (('@' | 'under') NAME)?
    primary := NUMBER | NAME | NAME '(' sum (',' sum)* ')' | '(' sum ')'

Names may contain `-` and `.` inside (`rtn-4bit`), so `retrain-5` is ambiguous; when the
scope is known the lexer takes the longest spec name that is a prefix at a `-` boundary, so
`retrain-5` reads as `retrain - 5` and `rtn-4bit` stays one name if the spec defines it.
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass, field, replace
from typing import Any, Mapping, NoReturn

from ..errors import Location, SpecError, did_you_mean
from .evaluate import ClaimNotComputable, constant_value
from .tree import BinOp, Call, Comparison, Expr, MetricRef, Neg, Num, map_refs, metric_refs

FUNCTIONS = ("abs", "min", "max")
BASELINE = "baseline"  # the stored run given by --unlearn-baseline (see docs/methods.md)
RESERVED = ("under", "fp", BASELINE, *FUNCTIONS)
NAME_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(?:[-.][A-Za-z0-9_]+)*")
_NUMBER_RE = re.compile(r"(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?")
_CMP = {"<=": "<=", ">=": ">=", "==": "==", "<": "<", ">": ">", "≤": "<=", "≥": ">="}
_OPS = "+-*/(),@"
MAX_DEPTH = 64  # deeper claims are surely mistakes, and recursion must stay bounded


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


# ---------------------------------------------------------------- errors pointing into text


@dataclass(frozen=True)
class _Text:
    text: str
    loc: Location | None

    def fail(self, message: str, span: tuple[int, int], hint: str | None = None) -> NoReturn:
        """Raise SpecError with a caret under `span`; for multi-line claims (YAML block
        scalars) show and point at the line of the text that holds the span."""
        start, end = span
        line_start = self.text.rfind("\n", 0, start) + 1
        line_end = self.text.find("\n", start)
        line_end = len(self.text) if line_end < 0 else line_end
        source = self.text[line_start:line_end]
        rel = (start - line_start, max(start + 1, min(end, line_end + 1)) - line_start)
        loc = None
        if self.loc is not None:
            row = self.text.count("\n", 0, start)
            loc = Location(self.loc.path, self.loc.line + row, self.loc.column + rel[0])
        raise SpecError(message, loc, source=source, span=rel, hint=hint)


# ---------------------------------------------------------------- lexer


@dataclass(frozen=True)
class Token:
    kind: str  # "num" "name" "op" "cmp" "eof"
    text: str
    start: int
    end: int
    value: Any = None

    def describe(self) -> str:
        return "the end of the claim" if self.kind == "eof" else f"'{self.text}'"


def tokenize(text: str, names: frozenset[str] | None = None, src: _Text | None = None
             ) -> list[Token]:
    """Split a claim into tokens. `names` (the spec's names) settles `a-b` (see module doc)."""
    src = src or _Text(text, None)
    out: list[Token] = []
    i = 0
    while i < len(text):
        ch = text[i]
        if ch.isspace():
            i += 1
            continue
        if (m := _NUMBER_RE.match(text, i)) is not None:
            out.append(_number(m, src))
            i = m.end()
        elif (m := NAME_RE.match(text, i)) is not None:
            word = _split_name(m.group(), names)
            kind = "op" if word == "under" else "name"
            out.append(Token(kind, "@" if word == "under" else word, i, i + len(word)))
            i += len(word)
        elif ch in "<>=≤≥!":
            i = _comparison(text, i, out, src)
        elif ch in _OPS or ch == "−":  # U+2212, as printed in explanations
            out.append(Token("op", "-" if ch == "−" else ch, i, i + 1))
            i += 1
        else:
            src.fail(f"unexpected character {ch!r} in claim", (i, i + 1),
                     "a claim uses names, numbers, + - * /, parentheses, @ and one comparison")
    out.append(Token("eof", "", len(text), len(text)))
    return out


def _number(m: re.Match[str], src: _Text) -> Token:
    value = float(m.group())
    if not math.isfinite(value):
        src.fail(f"number {m.group()} is too large", m.span())
    return Token("num", m.group(), m.start(), m.end(), value)


def _split_name(word: str, names: frozenset[str] | None) -> str:
    if names is None or word in names or "-" not in word:
        return word
    cuts = [i for i, ch in enumerate(word) if ch == "-"]
    for cut in reversed(cuts):
        if word[:cut] in names:
            return word[:cut]
    return word


def _comparison(text: str, i: int, out: list[Token], src: _Text) -> int:
    two = text[i:i + 2]
    if two in ("=>", "=<"):
        src.fail(f"'{two}' is not a comparison", (i, i + 2), f"did you mean '{two[::-1]}'?")
    if two == "!=":
        src.fail("'!=' is not supported", (i, i + 2),
                 "state what should hold, e.g. abs(a - b) > 0.1")
    for op in (two, text[i]):
        if op in _CMP:
            out.append(Token("cmp", _CMP[op], i, i + len(op)))
            return i + len(op)
    src.fail("'=' is not a comparison", (i, i + 1), "use '==' for equality")


# ---------------------------------------------------------------- parser (raw tree)


@dataclass(frozen=True)
class _Num:
    value: float
    span: tuple[int, int]
    depth: int = 1


@dataclass(frozen=True)
class _Name:
    name: str
    span: tuple[int, int]
    depth: int = 1


@dataclass(frozen=True)
class _Call:
    func: str
    func_span: tuple[int, int]
    args: tuple[Any, ...]
    span: tuple[int, int]
    depth: int


@dataclass(frozen=True)
class _At:
    operand: Any
    transform: str
    transform_span: tuple[int, int]
    span: tuple[int, int]
    depth: int


@dataclass(frozen=True)
class _Bin:
    op: str
    left: Any
    right: Any
    span: tuple[int, int]
    depth: int


@dataclass(frozen=True)
class _Neg:
    operand: Any
    span: tuple[int, int]
    depth: int


class _Parser:
    def __init__(self, tokens: list[Token], src: _Text) -> None:
        self.tokens, self.src, self.pos, self.nesting = tokens, src, 0, 0

    @property
    def tok(self) -> Token:
        return self.tokens[self.pos]

    def take(self) -> Token:
        tok = self.tokens[self.pos]
        self.pos += 1
        return tok

    def fail(self, message: str, tok: Token | None = None, hint: str | None = None) -> NoReturn:
        tok = tok or self.tok
        self.src.fail(message, (tok.start, max(tok.end, tok.start + 1)), hint)

    def is_op(self, *ops: str) -> bool:
        return self.tok.kind == "op" and self.tok.text in ops

    def claim(self) -> tuple[str, Any, Any, Token]:
        if self.tok.kind == "eof":
            self.fail("the claim is empty", hint="write e.g. knowmem_forget @ rtn4 <= retrain + 5")
        left = self.sum()
        if self.tok.kind != "cmp":
            if self.tok.kind == "eof":
                self.fail("a claim needs one comparison (<=, <, >=, >, ==), found none")
            self.fail(f"expected an operator or a comparison, got {self.tok.describe()}")
        op = self.take()
        right = self.sum()
        if self.tok.kind == "cmp":
            self.fail(f"a claim has exactly one comparison; found a second one, "
                      f"'{self.tok.text}'", hint="split it into two claims")
        if self.tok.kind != "eof":
            self.fail(f"expected an operator or the end of the claim, got {self.tok.describe()}")
        return op.text, left, right, op

    def sum(self) -> Any:
        left = self.product()
        while self.is_op("+", "-"):
            op = self.take().text
            left = self.binary(op, left, self.product())
        return left

    def product(self) -> Any:
        left = self.unary()
        while self.is_op("*", "/"):
            op = self.take().text
            left = self.binary(op, left, self.unary())
        return left

    def binary(self, op: str, left: Any, right: Any) -> _Bin:
        depth = max(left.depth, right.depth) + 1
        span = (left.span[0], right.span[1])
        self.check_depth(depth, span)
        return _Bin(op, left, right, span, depth)

    def check_depth(self, depth: int, span: tuple[int, int]) -> None:
        if depth > MAX_DEPTH or self.nesting > MAX_DEPTH:
            self.src.fail(f"this claim is nested too deeply (more than {MAX_DEPTH} levels)",
                          span, "split it into simpler claims")

    def unary(self) -> Any:
        if self.is_op("-"):
            minus = self.take()
            self.nesting += 1
            self.check_depth(0, (minus.start, minus.end))
            operand = self.unary()
            self.nesting -= 1
            return _Neg(operand, (minus.start, operand.span[1]), operand.depth + 1)
        return self.term()

    def term(self) -> Any:
        node = self.primary()
        if self.is_op("@"):
            at = self.take()
            if self.tok.kind != "name":
                self.fail(f"expected a transform name after '{self.src.text[at.start:at.end]}', "
                          f"got {self.tok.describe()}")
            name = self.take()
            node = _At(node, name.text, (name.start, name.end), (node.span[0], name.end),
                       node.depth + 1)
            if self.is_op("@"):
                self.fail("a term takes one transform; found a second '@'")
        return node

    def primary(self) -> Any:
        tok = self.tok
        if tok.kind == "num":
            self.take()
            return _Num(tok.value, (tok.start, tok.end))
        if tok.kind == "name":
            self.take()
            if self.is_op("("):
                return self.call(tok)
            return _Name(tok.text, (tok.start, tok.end))
        if self.is_op("("):
            self.take()
            self.nesting += 1
            self.check_depth(0, (tok.start, tok.end))
            inner = self.sum()
            self.nesting -= 1
            self.expect_close(tok)
            return inner
        self.fail(f"expected a number, a name or '(', got {tok.describe()}")

    def call(self, name: Token) -> _Call:
        opening = self.take()
        self.nesting += 1
        self.check_depth(0, (opening.start, opening.end))
        args = []
        if not self.is_op(")"):
            args.append(self.sum())
            while self.is_op(","):
                self.take()
                args.append(self.sum())
        self.nesting -= 1
        close = self.expect_close(opening)
        depth = max((a.depth for a in args), default=0) + 1
        return _Call(name.text, (name.start, name.end), tuple(args), (name.start, close.end),
                     depth)

    def expect_close(self, opening: Token) -> Token:
        if not self.is_op(")"):
            self.fail(f"expected ')' to close the '(' at column {opening.start + 1}, "
                      f"got {self.tok.describe()}")
        return self.take()


# ---------------------------------------------------------------- resolution and units


def parse_claim(text: str, scope: Any, *, loc: Location | None = None) -> Comparison:
    """Parse `text` and resolve its names against `scope` (a Spec or a ClaimScope).

    Every error is a SpecError with a caret under the offending part; `loc` is where the
    text starts in the spec file, so the error names file:line:col."""
    if not isinstance(scope, ClaimScope):
        scope = ClaimScope.from_spec(scope)
    src = _Text(text, loc)
    op, left, right, op_tok = _Parser(tokenize(text, scope.names, src), src).claim()
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
    stack = list(reversed(nodes))
    while stack:
        node = stack.pop()
        name = node.name if isinstance(node, _Name) else getattr(node, "func", None)
        if name in scope.metrics and name not in found:
            found.append(name)
        children = [getattr(node, a) for a in ("operand", "left", "right") if hasattr(node, a)]
        stack.extend(reversed(children + list(getattr(node, "args", ()))))
    return found


@dataclass
class _Resolver:
    scope: ClaimScope
    src: _Text
    claim_metrics: list[str]
    bare_baselines: set[tuple[int, int]] = field(default_factory=set)

    def resolve(self, node: Any) -> tuple[Expr, str | None]:
        if isinstance(node, _Num):
            return Num(node.value, node.span), None
        if isinstance(node, _Neg):
            inner, unit = self.resolve(node.operand)
            return self.fold(Neg(inner, node.span)), unit
        if isinstance(node, _Bin):
            expr, unit = self.binary(node)
            return self.fold(expr), unit
        if isinstance(node, (_Name, _At)) or (
            isinstance(node, _Call) and node.func in self.scope.metrics
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

    def binary(self, node: _Bin) -> tuple[Expr, str | None]:
        left, lu = self.resolve(node.left)
        right, ru = self.resolve(node.right)
        expr = BinOp(node.op, left, right, node.span)  # type: ignore[arg-type]
        ltxt, rtxt = _snippet(self.src.text, node.left.span), _snippet(self.src.text, node.right.span)
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
        assert isinstance(node, _Call)
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

    def unknown_callable(self, node: _Call) -> NoReturn:
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
        if isinstance(node, _At):
            transform, inner = self.transform(node), node.operand
        if isinstance(inner, _Call):
            metric, model = self.explicit(inner, transform)
            if isinstance(node, _At) and model[1]:
                self.src.fail("a term takes one transform; this one has two", node.span)
            model, transform = model[0], transform or model[1]
        elif isinstance(inner, _Name):
            metric, model = self.bare(inner)
            if model == BASELINE and not isinstance(node, _At):
                self.bare_baselines.add(node.span)
        else:
            self.src.fail("'@' must follow a metric or a model name", node.span,
                          "write e.g. knowmem_forget @ rtn4 or retrain @ rtn4")
        info = self.scope.metrics[metric]
        if info.weights and transform is None:
            self.src.fail(f"'{metric}' is a weight-space metric and needs a transform",
                          node.span, f"write {metric} @ {self.example_transform()}")
        return MetricRef(metric, model, transform, node.span), info.unit

    def transform(self, node: _At) -> str | None:
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

    def bare(self, node: _Name) -> tuple[str, str | None]:
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

    def claim_metric(self, node: _Name) -> str:
        if len(self.claim_metrics) == 1:
            return self.claim_metrics[0]
        if not self.claim_metrics:
            self.src.fail(f"'{node.name}' is a model, but this claim names no metric to "
                          f"measure it with", node.span,
                          f"write e.g. {self.example_metric()}({node.name})")
        forms = " or ".join(f"{m}({node.name})" for m in self.claim_metrics)
        self.src.fail(f"'{node.name}' is ambiguous: this claim mentions the metrics "
                      f"{', '.join(self.claim_metrics)}", node.span, f"write {forms}")

    def explicit(self, node: _Call, outer: str | None) -> tuple[str, tuple[str, str | None]]:
        example = f"{node.func}(retrain @ {self.example_transform()})"
        if len(node.args) != 1:
            self.src.fail(f"{node.func}(...) takes one model, got {len(node.args)} arguments",
                          node.span, f"write e.g. {example}")
        arg = node.args[0]
        transform = None
        if isinstance(arg, _At):
            transform, arg = self.transform(arg), arg.operand
        if not isinstance(arg, _Name):
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
