"""YAML with line numbers: same values as yaml.safe_load, plus where each one was written."""
from __future__ import annotations

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from unlearnspec.errors import Location, SpecError
from unlearnspec.spec.yamlload import LocDict, LocList, load_yaml

DOC = """\
top:
  a: 1
  b: 'quoted'
  c: "double"
  d: plain text
  e: |
    block
    text
list:
  - x
  - {k: v}
"""


def test_values_match_safe_load() -> None:
    assert load_yaml(DOC, "f.yaml") == yaml.safe_load(DOC)


def test_key_value_and_item_locations() -> None:
    doc = load_yaml(DOC, "f.yaml")
    assert isinstance(doc, LocDict) and isinstance(doc["list"], LocList)
    top = doc["top"]
    assert top.key_locs["b"] == Location("f.yaml", 3, 3)
    assert top.value_locs["b"] == Location("f.yaml", 3, 6)
    assert doc["list"].item_locs == [Location("f.yaml", 10, 5), Location("f.yaml", 11, 5)]
    assert doc["list"][1].key_locs["k"] == Location("f.yaml", 11, 6)


def test_text_locations_skip_quotes_and_block_headers() -> None:
    top = load_yaml(DOC, "f.yaml")["top"]
    assert top.text_locs["b"] == Location("f.yaml", 3, 7)  # after the quote
    assert top.text_locs["c"] == Location("f.yaml", 4, 7)
    assert top.text_locs["d"] == Location("f.yaml", 5, 6)
    assert top.text_locs["e"] == Location("f.yaml", 7, 5)  # first line of the block
    assert "a" not in top.text_locs  # not a string


def test_duplicate_key_is_an_error_at_the_second_one() -> None:
    with pytest.raises(SpecError) as info:
        load_yaml("a: 1\nb: 2\na: 3\n", "f.yaml")
    assert str(info.value).splitlines()[0] == \
        "f.yaml:3:1: duplicate key 'a' (first written on line 1)"


def test_malformed_yaml_points_at_the_problem() -> None:
    with pytest.raises(SpecError) as info:
        load_yaml("a: 1\nb: [1, 2\nc: 3\n", "f.yaml")
    err = info.value
    assert err.loc.path == "f.yaml" and err.loc.line == 3
    assert "not valid YAML" in err.message and "started on line 2" in err.message
    assert str(err).splitlines()[1:3] == ["    c: 3", "     ^"]


def test_tabs_get_a_hint() -> None:
    with pytest.raises(SpecError) as info:
        load_yaml("a:\n\tb: 1\n", "f.yaml")
    assert "tabs" in info.value.hint


def test_recursive_alias_is_an_error() -> None:
    with pytest.raises(SpecError, match="refers to itself"):
        load_yaml("a: &x [1, *x]\n", "f.yaml")


def test_unsupported_tags_are_errors() -> None:
    with pytest.raises(SpecError, match="unsupported YAML tag"):
        load_yaml("a: !!set {x, y}\n", "f.yaml")
    with pytest.raises(SpecError, match="cannot read this YAML value"):
        load_yaml("a: !!python/name:os.system x\n", "f.yaml")


def test_merge_keys_and_local_keys_win() -> None:
    doc = load_yaml("base: &b {lr: 1, epochs: 2}\nm: {<<: *b, lr: 3}\n", "f.yaml")
    assert doc["m"] == {"lr": 3, "epochs": 2}
    assert doc["m"].key_locs["lr"].line == 2


def test_empty_document_is_none() -> None:
    assert load_yaml("# nothing\n", "f.yaml") is None


json_like = st.recursive(  # finite floats: infinity and NaN are errors (below)
    st.none() | st.booleans() | st.integers() | st.text(max_size=8)
    | st.floats(allow_nan=False, allow_infinity=False),
    lambda children: st.lists(children, max_size=4)
    | st.dictionaries(st.text(max_size=6), children, max_size=4),
    max_leaves=12,
)


@settings(max_examples=60, deadline=None)
@given(json_like, st.booleans())
def test_round_trip_equals_safe_load(data: object, flow: bool) -> None:
    text = yaml.safe_dump(data, default_flow_style=flow, allow_unicode=True)
    assert load_yaml(text, "f.yaml") == yaml.safe_load(text)


# ---------------------------------------------------------------- hostile documents


def laughs(levels: int, width: int = 9) -> str:
    """A 'billion laughs': each anchor is a list of `width` aliases of the one before."""
    lines = ["a0: &a0 [" + ", ".join(['"lol"'] * width) + "]"]
    for i in range(1, levels):
        lines.append(f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * width) + "]")
    return "\n".join(lines) + "\n"


def test_billion_laughs_is_an_error_at_the_alias_that_crosses_the_limit() -> None:
    with pytest.raises(SpecError, match="expands to more than 10,000 values") as info:
        load_yaml(laughs(9), "f.yaml")
    # 1 + 9 + 9*10 + 9*100 + 9*1,000 ... crosses 10,000 in the fifth line (a4)
    assert info.value.loc.line == 5 and info.value.hint and "billion laughs" in info.value.hint


def test_aliases_within_the_limit_load_like_safe_load() -> None:
    text = laughs(3)  # 9 * 9 * 9 = 729 strings
    assert load_yaml(text, "f.yaml") == yaml.safe_load(text)


@pytest.mark.parametrize("depth, ok", [(64, True), (65, False), (3000, False)])
def test_nesting_is_capped_before_python_recursion(depth: int, ok: bool) -> None:
    text = "[" * depth + "]" * depth + "\n"
    if ok:
        doc = load_yaml(text, "f.yaml")
        for _ in range(depth - 1):
            doc = doc[0]
        assert doc == []
        return
    with pytest.raises(SpecError, match="more than 64 levels deep") as info:
        load_yaml(text, "f.yaml")
    assert info.value.loc == Location("f.yaml", 1, 65)  # the 65th '['
    # the 6,000-character line is shown cut around the caret, which stays under a '['
    _, source, carets = str(info.value).splitlines()[:3]
    assert len(source) < 140 and source[carets.index("^")] == "["


def test_alias_uses_are_capped() -> None:
    text = "x: &x 1\ny: [" + ", ".join(["*x"] * 2001) + "]\n"
    with pytest.raises(SpecError, match="more than 2,000 times") as info:
        load_yaml(text, "f.yaml")
    assert info.value.loc.line == 2
    assert len(load_yaml("x: &x 1\ny: [" + ", ".join(["*x"] * 2000) + "]\n", "f.yaml")["y"]) \
        == 2000


def test_a_spec_file_over_the_size_limit_is_refused_unread(tmp_path) -> None:
    from unlearnspec.spec import load_spec
    from unlearnspec.spec.yamlload import MAX_BYTES

    path = tmp_path / "big.yaml"
    path.write_text("version: 1\n" + "# padding\n" * (MAX_BYTES // 10))
    with pytest.raises(SpecError, match="a spec may be at most 256 kB") as info:
        load_spec(path)
    assert str(info.value).startswith(f"{path}:1")
    with pytest.raises(SpecError, match="at most 256 kB"):
        load_yaml(path.read_text(), "big.yaml")


@pytest.mark.parametrize("text", ["lr: .inf", "lr: -.Inf", "lr: .nan", "lr: 1.0e+999"])
def test_numbers_must_be_finite(text: str) -> None:
    with pytest.raises(SpecError, match="is not a finite number") as info:
        load_yaml("a: 1\n" + text, "f.yaml")
    assert info.value.loc == Location("f.yaml", 2, 5)
