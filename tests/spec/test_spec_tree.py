"""The one walker over a claim's tree (spec.tree): every pass that collects or rewrites metric
references (the run's measurement plan, the loader's seed and bootstrap checks, the parser's
`baseline` rule, seed substitution) sees the same references in the same order."""
from __future__ import annotations

from dataclasses import replace

from hypothesis import given, settings
from hypothesis import strategies as st

from spec_helpers import SCOPE
from unlearnspec.spec import parse_claim
from unlearnspec.spec.tree import (BinOp, Call, Comparison, MetricRef, Neg, Num, map_refs,
                                   metric_refs, walk)

refs = st.builds(MetricRef, st.sampled_from(["kf", "kr", "gamma"]),
                 st.sampled_from([None, "target", "retrain"]),
                 st.sampled_from([None, "rtn4"]), st.tuples(st.integers(0, 99), st.integers(0, 99)))
leaves = st.one_of(st.builds(Num, st.floats(-5, 5), st.just((0, 0))), refs)
exprs = st.recursive(leaves, lambda e: st.one_of(
    st.builds(BinOp, st.sampled_from("+-*/"), e, e, st.just((0, 0))),
    st.builds(Neg, e, st.just((0, 0))),
    st.builds(Call, st.sampled_from(["abs", "min", "max"]),
              st.lists(e, min_size=1, max_size=3).map(tuple), st.just((0, 0)))), max_leaves=12)
comparisons = st.builds(Comparison, st.sampled_from(["<=", "<", ">=", ">", "=="]), exprs, exprs,
                        st.just((0, 0)))


def written_refs(node) -> list[MetricRef]:
    """The references left to right, by the fields each node type has (the walker's spec)."""
    if isinstance(node, MetricRef):
        return [node]
    if isinstance(node, Num):
        return []
    if isinstance(node, Neg):
        return written_refs(node.operand)
    if isinstance(node, Call):
        return [r for a in node.args for r in written_refs(a)]
    return written_refs(node.left) + written_refs(node.right)


@settings(max_examples=200, deadline=None)
@given(comparisons)
def test_metric_refs_are_every_reference_left_to_right(tree: Comparison) -> None:
    assert list(metric_refs(tree)) == written_refs(tree)
    assert [n for n in walk(tree) if isinstance(n, MetricRef)] == written_refs(tree)
    assert next(walk(tree)) is tree


@settings(max_examples=200, deadline=None)
@given(comparisons)
def test_map_refs_rewrites_only_the_references(tree: Comparison) -> None:
    assert map_refs(tree, lambda r: r) == tree
    moved = map_refs(tree, lambda r: replace(r, model="ga_klr"))
    assert [r.model for r in metric_refs(moved)] == ["ga_klr"] * len(written_refs(tree))
    assert [replace(r, model=None) for r in metric_refs(moved)] == \
        [replace(r, model=None) for r in metric_refs(tree)]
    # everything that is not a reference keeps its type and position
    assert [type(n) for n in walk(moved)] == [type(n) for n in walk(tree)]
    # a reference may become any expression
    folded = map_refs(tree, lambda r: Num(1.0, r.span))
    assert list(metric_refs(folded)) == []


def test_a_parsed_claim_lists_its_references_as_written() -> None:
    claim = parse_claim("knowmem_forget @ rtn4 <= max(retrain, knowmem_forget(target)) + 5",
                        SCOPE)
    assert [(r.metric, r.model, r.transform) for r in metric_refs(claim)] == [
        ("knowmem_forget", None, "rtn4"), ("knowmem_forget", "retrain", None),
        ("knowmem_forget", "target", None)]
