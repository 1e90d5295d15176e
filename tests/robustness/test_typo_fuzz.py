"""Near-miss fuzzing: a working spec with a few characters deleted, doubled or replaced, as
a typing user damages it. Whatever comes out, the loader either accepts it or raises the
project's SpecError pointing into the file (its path and a line that exists), never anything
else. tests/spec/test_spec_fuzz.py throws random documents at the loader; these inputs stay
close to a real spec, so they reach deeper parts of it: the claim parser, option checks,
name resolution."""
from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from unlearnspec.errors import SpecError
from unlearnspec.spec import load_spec

GOOD = """\
version: 1
seed: 3
settings: {batch_size: 16}
data:
  world: {builtin: micro}
models:
  target: {builtin: micro/target-qat}
  retrain: {builtin: micro/retrain}
  ga_klr: {unlearn: ga_klr, from: target, lr: 5.0e-5, max_steps: 12}
  sure: {unlearn: npo_klr, from: target, lr: 3.0e-4, sure: {percentile: 90}}
  local: {path: ./ckpt, allow_pickle: false, trust_remote_code: false}
transforms:
  rtn4: {kind: rtn, bits: 4}
  nf4: {kind: bnb, mode: nf4}
metrics:
  knowmem_forget: {kind: knowmem, split: forget}
  privleak: {kind: privleak, reference: retrain}
  gamma: {kind: update_retention}
claims:
  - name: no-recovery-rtn4
    subjects: [ga_klr, sure]
    assert: knowmem_forget @ rtn4 <= retrain + 5
  - name: privacy
    subjects: [sure]
    assert: abs(privleak(sure @ nf4)) <= max(10, abs(privleak) * 2)
    xfail: known
  - name: undone
    subjects: [ga_klr]
    assert: gamma under rtn4 < 0.5
"""

# characters a typo tends to produce in YAML and in claims, and pieces of hostile input:
# non-finite numbers, a division by zero, anchors and aliases, deep brackets
NOISE = st.sampled_from(list(":{}[],-#'\"\t @()<>=+*/.|&!%0123456789abz_\n ≤")
                        + [".inf", ".nan", "/0", "1e999", "&a ", "*a", "[" * 70])


@st.composite
def typos(draw: st.DrawFn) -> str:
    text = GOOD
    for _ in range(draw(st.integers(1, 3))):
        i = draw(st.integers(0, len(text) - 1))
        kind = draw(st.sampled_from(["delete", "double", "replace", "insert"]))
        if kind == "delete":
            text = text[:i] + text[i + 1:]
        elif kind == "double":
            text = text[:i] + text[i] + text[i:]
        elif kind == "replace":
            text = text[:i] + draw(NOISE) + text[i + 1:]
        else:
            text = text[:i] + draw(NOISE) + text[i:]
    return text


def test_the_unmutated_spec_loads(tmp_path: Path) -> None:
    (tmp_path / "spec.yaml").write_text(GOOD)
    spec = load_spec(tmp_path / "spec.yaml")
    assert sum(len(c.subjects) for c in spec.claims) == 4


@settings(max_examples=300, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(text=typos())
def test_a_damaged_spec_loads_or_raises_a_located_spec_error(
        tmp_path_factory: pytest.TempPathFactory, text: str) -> None:
    path = tmp_path_factory.mktemp("typo") / "spec.yaml"
    path.write_text(text, encoding="utf-8")
    try:
        load_spec(path)
    except SpecError as err:
        rendered = str(err)
        assert err.loc is not None, rendered
        assert err.loc.path == str(path), rendered
        assert 1 <= err.loc.line <= text.count("\n") + 1, rendered
        assert rendered.startswith(f"{path}:{err.loc.line}"), rendered
