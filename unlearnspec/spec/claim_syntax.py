"""Claim text to a raw syntax tree: a hand-written lexer and a recursive-descent parser.

    claim   := sum CMP sum                       exactly one comparison
    sum     := product (('+' | '-') product)*
    product := unary (('*' | '/') unary)*
    unary   := '-' unary | term
    term    := primary (('@' | 'under') NAME)?
    primary := NUMBER | NAME | NAME '(' sum (',' sum)* ')' | '(' sum ')'

Names may contain `-` and `.` inside (`rtn-4bit`), so `retrain-5` is ambiguous; when the
scope is known the lexer takes the longest spec name that is a prefix at a `-` boundary, so
`retrain-5` reads as `retrain - 5` and `rtn-4bit` stays one name if the spec defines it.

The raw tree keeps names as written and every node's span and depth; `spec.claims` resolves
it against a spec into the tree of `spec.tree`. Every error here is a SpecError with a caret
under the offending part of the text.
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any, Iterator, NoReturn

from ..errors import Location, SpecError

NAME_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(?:[-.][A-Za-z0-9_]+)*")
_NUMBER_RE = re.compile(r"(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?")
_CMP = {"<=": "<=", ">=": ">=", "==": "==", "<": "<", ">": ">", "≤": "<=", "≥": ">="}
_OPS = "+-*/(),@"
MAX_DEPTH = 64  # deeper claims are surely mistakes, and recursion must stay bounded


# ---------------------------------------------------------------- errors pointing into text


@dataclass(frozen=True)
class ClaimText:
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


def tokenize(text: str, names: frozenset[str] | None = None, src: ClaimText | None = None
             ) -> list[Token]:
    """Split a claim into tokens. `names` (the spec's names) settles `a-b` (see module doc)."""
    src = src or ClaimText(text, None)
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


def _number(m: re.Match[str], src: ClaimText) -> Token:
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


def _comparison(text: str, i: int, out: list[Token], src: ClaimText) -> int:
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
class Num:
    value: float
    span: tuple[int, int]
    depth: int = 1


@dataclass(frozen=True)
class Name:
    name: str
    span: tuple[int, int]
    depth: int = 1


@dataclass(frozen=True)
class Call:
    func: str
    func_span: tuple[int, int]
    args: tuple[Any, ...]
    span: tuple[int, int]
    depth: int


@dataclass(frozen=True)
class At:
    operand: Any
    transform: str
    transform_span: tuple[int, int]
    span: tuple[int, int]
    depth: int


@dataclass(frozen=True)
class Bin:
    op: str
    left: Any
    right: Any
    span: tuple[int, int]
    depth: int


@dataclass(frozen=True)
class Neg:
    operand: Any
    span: tuple[int, int]
    depth: int


def walk(node: Any) -> Iterator[Any]:
    """The raw node and every node below it, depth first, in the order they are written."""
    yield node
    if isinstance(node, Bin):
        yield from walk(node.left)
        yield from walk(node.right)
    elif isinstance(node, (At, Neg)):
        yield from walk(node.operand)
    elif isinstance(node, Call):
        for arg in node.args:
            yield from walk(arg)


class Parser:
    def __init__(self, tokens: list[Token], src: ClaimText) -> None:
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

    def binary(self, op: str, left: Any, right: Any) -> Bin:
        depth = max(left.depth, right.depth) + 1
        span = (left.span[0], right.span[1])
        self.check_depth(depth, span)
        return Bin(op, left, right, span, depth)

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
            return Neg(operand, (minus.start, operand.span[1]), operand.depth + 1)
        return self.term()

    def term(self) -> Any:
        node = self.primary()
        if self.is_op("@"):
            at = self.take()
            if self.tok.kind != "name":
                self.fail(f"expected a transform name after '{self.src.text[at.start:at.end]}', "
                          f"got {self.tok.describe()}")
            name = self.take()
            node = At(node, name.text, (name.start, name.end), (node.span[0], name.end),
                       node.depth + 1)
            if self.is_op("@"):
                self.fail("a term takes one transform; found a second '@'")
        return node

    def primary(self) -> Any:
        tok = self.tok
        if tok.kind == "num":
            self.take()
            return Num(tok.value, (tok.start, tok.end))
        if tok.kind == "name":
            self.take()
            if self.is_op("("):
                return self.call(tok)
            return Name(tok.text, (tok.start, tok.end))
        if self.is_op("("):
            self.take()
            self.nesting += 1
            self.check_depth(0, (tok.start, tok.end))
            inner = self.sum()
            self.nesting -= 1
            self.expect_close(tok)
            return inner
        self.fail(f"expected a number, a name or '(', got {tok.describe()}")

    def call(self, name: Token) -> Call:
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
        return Call(name.text, (name.start, name.end), tuple(args), (name.start, close.end),
                     depth)

    def expect_close(self, opening: Token) -> Token:
        if not self.is_op(")"):
            self.fail(f"expected ')' to close the '(' at column {opening.start + 1}, "
                      f"got {self.tok.describe()}")
        return self.take()
