"""The spec tree: the validated, typed form of a spec file, down to each claim's expression tree.

These are plain frozen values: the loader (`spec.loader`) builds them from YAML, the claim
parser (`spec.claims`) builds the expression trees, the engine and the plugin read them.
Nothing here imports torch.
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Callable, Iterator, Literal, Mapping, Union

from ..errors import Location

SPEC_VERSION = 1

# ---------------------------------------------------------------- claim expressions
# `span` is (start, end) offsets into the claim's text, for carets under the bad part.


@dataclass(frozen=True)
class Num:
    value: float
    span: tuple[int, int]


@dataclass(frozen=True)
class MetricRef:
    """`metric` measured on `model` (None = the claim's subject) after `transform` (None = fp).

    After parsing, a bare model name such as `retrain` has been resolved to a MetricRef whose
    metric is the claim's metric (the one on the left-hand side)."""

    metric: str
    model: str | None
    transform: str | None
    span: tuple[int, int]


@dataclass(frozen=True)
class BinOp:
    op: Literal["+", "-", "*", "/"]
    left: "Expr"
    right: "Expr"
    span: tuple[int, int]


@dataclass(frozen=True)
class Neg:
    operand: "Expr"
    span: tuple[int, int]


@dataclass(frozen=True)
class Call:
    func: Literal["abs", "min", "max"]
    args: tuple["Expr", ...]
    span: tuple[int, int]


Expr = Union[Num, MetricRef, BinOp, Neg, Call]


@dataclass(frozen=True)
class Comparison:
    op: Literal["<=", "<", ">=", ">", "=="]
    left: Expr
    right: Expr
    span: tuple[int, int]


# ---------------------------------------------------------------- the one walker over them
# Every pass that collects or rewrites a claim's metric references goes through these three;
# evaluation (spec.evaluate, spec.confidence) folds the tree with its own arithmetic.

Node = Union[Expr, Comparison]


def children(node: Node) -> tuple[Expr, ...]:
    """A node's sub-expressions, in the order they are written."""
    if isinstance(node, (BinOp, Comparison)):
        return node.left, node.right
    if isinstance(node, Neg):
        return (node.operand,)
    if isinstance(node, Call):
        return node.args
    return ()


def walk(node: Node) -> Iterator[Node]:
    """The node and every node below it, depth first, left to right."""
    yield node
    for child in children(node):
        yield from walk(child)


def metric_refs(node: Node) -> Iterator[MetricRef]:
    """Every metric reference of a claim's tree, in the order they are written."""
    return (n for n in walk(node) if isinstance(n, MetricRef))


def map_refs(node: Node, fn: Callable[[MetricRef], Expr]) -> Any:
    """The same tree with every metric reference replaced by `fn(ref)`."""
    if isinstance(node, MetricRef):
        return fn(node)
    if isinstance(node, (BinOp, Comparison)):
        return replace(node, left=map_refs(node.left, fn), right=map_refs(node.right, fn))
    if isinstance(node, Neg):
        return replace(node, operand=map_refs(node.operand, fn))
    if isinstance(node, Call):
        return replace(node, args=tuple(map_refs(a, fn) for a in node.args))
    return node


# ---------------------------------------------------------------- spec entries


@dataclass(frozen=True)
class DataSpec:
    """A corpus in MUSE's layout: `builtin: tiny` (the embedded benchmark) or `path:` a local
    directory / hub dataset id."""

    name: str
    loc: Location
    builtin: str | None = None
    path: str | None = None
    revision: str | None = None


@dataclass(frozen=True)
class ModelSpec:
    """A model: a checkpoint (`path:` a directory, a hub id, or a llama.cpp `.gguf` file), a
    benchmark model (`builtin:`), or the output of an unlearning run (`unlearn:` method +
    `from:` model + `data:` corpus + method options)."""

    name: str
    loc: Location
    source: Literal["path", "builtin", "unlearn"]
    path: str | None = None
    builtin: str | None = None
    method: str | None = None
    from_: str | None = None
    data: str | None = None
    config: Any = None  # the method's config dataclass, for source == "unlearn"
    revision: str | None = None
    allow_pickle: bool = False
    trust_remote_code: bool = False
    dtype: str | None = None
    device_map: str | None = None  # accelerate's placement over several GPUs ("auto", ...)
    tokenizer: str | None = None  # a tokenizer directory for a `.gguf` path (else its metadata)
    # `seeds: [0, 1, 2]`: this entry is a group, never built itself; each seed is the model
    # `<name>.seed<S>` (seed_of = name), and a claim over the group holds for every seed
    # (or for the aggregate it names)
    seeds: tuple[int, ...] = ()
    seed_of: str | None = None


def seed_model_name(group: str, seed: int) -> str:
    """The model one seed of a seeded group is: `ga_klr.seed1`."""
    return f"{group}.seed{seed}"


@dataclass(frozen=True)
class TransformSpec:
    name: str
    loc: Location
    kind: str
    config: Any  # the transform's config dataclass


@dataclass(frozen=True)
class MetricSpec:
    name: str
    loc: Location
    kind: str
    config: Any  # the metric's config dataclass
    data: str | None = None


@dataclass(frozen=True)
class ClaimSpec:
    name: str
    loc: Location  # the claim's `- name:` line
    assert_loc: Location  # where the assert text starts (caret offsets are relative to it)
    text: str
    expr: Comparison
    subjects: tuple[str, ...]
    xfail: str | None = None
    # decided on a paired-bootstrap interval at this level (the claim's own `confidence:`,
    # else settings.confidence); None: on the point estimate
    confidence: float | None = None
    # over a seeded subject: "every" seed must hold, or the claim on the seeds' "mean" /
    # "median" of each term
    aggregate: str = "every"


@dataclass(frozen=True)
class Settings:
    batch_size: int | Literal["auto"] = 32
    max_models_in_memory: int = 2
    device: str = "auto"
    confidence: float | None = None  # every claim's, unless it sets its own
    bootstrap_samples: int = 2000  # resamples behind each confidence interval


@dataclass(frozen=True)
class Spec:
    path: Path
    version: int
    seed: int
    data: Mapping[str, DataSpec]
    models: Mapping[str, ModelSpec]
    transforms: Mapping[str, TransformSpec]
    metrics: Mapping[str, MetricSpec]
    claims: tuple[ClaimSpec, ...]
    settings: Settings = field(default_factory=Settings)
    text: str = ""  # the file's text, for hashing and error messages
