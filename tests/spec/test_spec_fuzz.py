"""Property tests: whatever a user writes, the spec layer answers with a SpecError (never a
crash), and claims evaluate exactly like the same arithmetic done directly."""
from __future__ import annotations

import math
import operator

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from spec_helpers import SCOPE, TINY, claim
from unlearnspec.errors import SpecError
from unlearnspec.spec import evaluate_claim, load_spec, parse_claim

TOKENS = ["knowmem_forget", "knowmem_retain", "gamma", "retrain", "target", "rtn4",
          "rtn-4bit", "fp", "under", "@", "+", "-", "*", "/", "(", ")", ",", "<=", "<", ">=",
          ">", "==", "≤", "≥", "=", "!", "abs", "min", "max", "1", "0.5", "2e3", ".", "−",
          " ", "retrain-5", "knowmem_forget(retrain @ rtn4)", "mia", "privleak", "x"]

claim_text = st.one_of(
    st.lists(st.sampled_from(TOKENS), max_size=14).map(" ".join),
    st.lists(st.sampled_from(TOKENS), max_size=14).map("".join),
    st.text(max_size=30),
)


@settings(max_examples=400, deadline=None)
@given(claim_text)
def test_any_claim_text_parses_or_raises_spec_error(text: str) -> None:
    try:
        parse_claim(text, SCOPE)
    except SpecError as err:
        str(err)  # renders without crashing


yaml_scalars = st.one_of(st.none(), st.booleans(), st.integers(-3, 300),
                         st.floats(allow_nan=True), st.text(max_size=10),
                         st.sampled_from(["tiny", "tiny/target-qat", "rtn", "knowmem",
                                          "ga_klr", "target", "retrain", "forget",
                                          "knowmem_forget @ rtn4 <= retrain + 5"]))
yaml_keys = st.sampled_from(["version", "seed", "settings", "data", "models", "transforms",
                             "metrics", "claims", "name", "subjects", "assert", "xfail",
                             "builtin", "path", "unlearn", "from", "kind", "bits", "split",
                             "lr", "sure", "percentile", "reference", "tiny", "target",
                             "rtn4", "fp", "gamma"]) | st.text(max_size=6)
yaml_values = st.recursive(
    yaml_scalars,
    lambda children: st.lists(children, max_size=3)
    | st.dictionaries(yaml_keys, children, max_size=4),
    max_leaves=16,
)
TINY_DOC = yaml.safe_load(TINY)


def mutate(doc: dict, path: list[str], value: object) -> dict:
    """TINY with the value at `path` (as far as it exists) replaced."""
    out = dict(doc)
    node = out
    for key in path[:-1]:
        if not isinstance(node.get(key), dict):
            break
        node[key] = dict(node[key])
        node = node[key]
    node[path[-1]] = value
    return out


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                    HealthCheck.function_scoped_fixture])
@given(st.one_of(
    yaml_values,
    st.dictionaries(yaml_keys, yaml_values, max_size=6),
    st.tuples(st.lists(yaml_keys, min_size=1, max_size=3), yaml_values).map(
        lambda pv: mutate(TINY_DOC, *pv)),
))
def test_any_yaml_document_loads_or_raises_spec_error(tmp_path_factory, doc: object) -> None:
    path = tmp_path_factory.mktemp("fuzz") / "spec.yaml"
    path.write_text(yaml.safe_dump(doc, allow_unicode=True), encoding="utf-8")
    try:
        load_spec(path)
    except SpecError as err:
        str(err)


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                   HealthCheck.function_scoped_fixture])
@given(st.text(alphabet="ab: {}[]-#'\"\n\t&*!|>,", max_size=40))
def test_any_yaml_text_loads_or_raises_spec_error(tmp_path_factory, text: str) -> None:
    path = tmp_path_factory.mktemp("fuzz") / "spec.yaml"
    path.write_text(text, encoding="utf-8")
    try:
        load_spec(path)
    except SpecError as err:
        str(err)


# ---------------------------------------------------------------- evaluation vs Python floats

OPS = {"+": operator.add, "-": operator.sub, "*": operator.mul, "/": operator.truediv}
TERMS = {"knowmem_forget": "ga_klr", "knowmem_forget(retrain)": "retrain",
         "knowmem_forget(target @ fp)": "target"}
finite = st.floats(-1e6, 1e6, allow_nan=False).filter(lambda x: abs(x) > 1e-6 or x == 0)


@st.composite
def arithmetic(draw, depth: int = 0) -> tuple[str, object]:
    """(claim text, a function of the term values giving the same number directly)."""
    if depth >= 3 or draw(st.booleans()):
        if draw(st.booleans()):
            name = draw(st.sampled_from(sorted(TERMS)))
            return name, lambda v, n=name: v[TERMS[n]]
        x = draw(st.floats(0, 1e3, allow_nan=False))
        return repr(x), lambda v, x=x: x
    kind = draw(st.sampled_from(["bin", "neg", "abs", "max"]))
    a_text, a = draw(arithmetic(depth + 1))
    if kind == "neg":
        return f"-({a_text})", lambda v: -a(v)
    if kind == "abs":
        return f"abs({a_text})", lambda v: abs(a(v))
    b_text, b = draw(arithmetic(depth + 1))
    if kind == "max":
        return f"max({a_text}, {b_text})", lambda v: max(a(v), b(v))
    op = draw(st.sampled_from(["+", "-"]))
    return f"({a_text}) {op} ({b_text})", lambda v: OPS[op](a(v), b(v))


@settings(max_examples=200, deadline=None)
@given(arithmetic(), arithmetic(), st.sampled_from(["<=", "<", ">=", ">", "=="]),
       st.fixed_dictionaries({m: finite for m in TERMS.values()}),
       st.floats(0.5, 4), st.booleans())
def test_evaluation_matches_direct_float_computation(left, right, op, values, scale,
                                                     divide) -> None:
    (lt, lf), (rt, rf) = left, right
    # scaling by a number is the only * and / the language allows between a metric and more
    rt = f"({rt}) {'/' if divide else '*'} {scale!r}"
    direct_right = (lambda v: rf(v) / scale) if divide else (lambda v: rf(v) * scale)
    text = f"{lt} {op} {rt}"
    verdict = evaluate_claim(claim(text), "ga_klr",
                             lambda ref: values[ref.model])
    lhs, rhs = lf(values), direct_right(values)
    assert verdict.lhs == lhs and verdict.rhs == rhs
    expected = {"<=": lhs <= rhs, "<": lhs < rhs, ">=": lhs >= rhs, ">": lhs > rhs,
                "==": math.isclose(lhs, rhs, rel_tol=0, abs_tol=1e-9)}[op]
    assert verdict.passed is expected
    if op in ("<=", ">="):
        assert verdict.passed is (verdict.margin >= 0)
    elif op in ("<", ">"):
        assert verdict.passed is (verdict.margin > 0)


# ---------------------------------------------------------------- hostile YAML


@st.composite
def alias_graphs(draw) -> str:
    """Anchored lists whose items alias earlier anchors: billion laughs of every shape, with
    nesting and merge keys mixed in."""
    lines = ["version: 1"]
    anchors: list[str] = []
    for i in range(draw(st.integers(1, 8))):
        items = []
        for _ in range(draw(st.integers(0, 12))):
            if anchors and draw(st.booleans()):
                items.append("*" + draw(st.sampled_from(anchors)))
            else:
                depth = draw(st.integers(0, 80))
                items.append("[" * depth + "1" + "]" * depth)
        lines.append(f"k{i}: &n{i} [{', '.join(items)}]")
        anchors.append(f"n{i}")
    if draw(st.booleans()):
        lines.append("m: &m {x: 1}\nn: {<<: *m, y: 2}")
    return "\n".join(lines) + "\n"


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                   HealthCheck.function_scoped_fixture])
@given(alias_graphs())
def test_any_alias_graph_loads_or_raises_spec_error(tmp_path_factory, text: str) -> None:
    """No shape of aliases and nesting hangs the loader or reaches Python's recursion limit:
    within the limits it builds what safe_load builds, past them it is a located SpecError."""
    from unlearnspec.spec.yamlload import load_yaml

    try:
        doc = load_yaml(text, "spec.yaml")
    except SpecError as err:
        assert err.loc is not None and 1 <= err.loc.line <= text.count("\n")
        assert any(word in err.message for word in ("values", "levels deep", "aliases")), err
        return
    assert doc == yaml.safe_load(text)


def _python(op: str, a: float, b: float) -> float:
    """Python's float arithmetic, with nan for what Python refuses (a division by zero)."""
    try:
        return OPS[op](a, b)
    except ZeroDivisionError:
        return math.nan


@st.composite
def constants(draw, depth: int = 0) -> tuple[str, float]:
    """(numbers-only claim text, its value computed directly with Python floats)."""
    if depth >= 3 or draw(st.booleans()):
        text = draw(st.sampled_from(["0", "1", "2", "0.5", "1e300", "1e308", "(1 - 1)"]))
        return text, 0.0 if text == "(1 - 1)" else float(text)
    kind = draw(st.sampled_from(["bin", "neg", "max"]))
    a_text, a = draw(constants(depth + 1))
    if kind == "neg":
        return f"-({a_text})", -a
    b_text, b = draw(constants(depth + 1))
    if kind == "max":
        return f"max({a_text}, {b_text})", max(a, b) if not (math.isnan(a) or math.isnan(b)) \
            else math.nan
    op = draw(st.sampled_from(["+", "-", "*", "/"]))
    return f"({a_text}) {op} ({b_text})", _python(op, a, b)


@settings(max_examples=300, deadline=None)
@given(constants())
def test_constant_arithmetic_is_decided_when_parsed(const: tuple[str, float]) -> None:
    """A claim's numbers-only part either is a collection error or has the value Python
    computes for it; a constant that is not finite never waits for the end of a run."""
    text, direct = const
    try:
        parse_claim(f"knowmem_forget <= {text}", SCOPE)
    except SpecError as err:
        assert "division by zero" in err.message or "not a finite number" in err.message
        return
    assert math.isfinite(direct)
    verdict = evaluate_claim(claim(f"knowmem_forget <= {text}"), "ga_klr", lambda ref: 0.0)
    assert verdict.rhs == direct
