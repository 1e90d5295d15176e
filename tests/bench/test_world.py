from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from unlearnspec.bench.presets import get_preset
from unlearnspec.bench.world import ATTRIBUTES, make_world, pieces
from unlearnspec.errors import RunError


@pytest.mark.parametrize("preset", ["tiny", "micro"])
def test_split_sizes_follow_the_preset(preset: str) -> None:
    cfg = get_preset(preset).world
    w = make_world(preset)
    assert (len(w.forget), len(w.holdout)) == (cfg.n_forget, cfg.n_holdout)
    assert len(w.retain) == cfg.n_entities - cfg.n_forget - cfg.n_holdout


def test_tiny_is_the_documented_size() -> None:
    w = make_world("tiny")
    assert (len(w.forget), len(w.holdout), len(w.retain)) == (12, 12, 96)


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 10_000), preset=st.sampled_from(["tiny", "micro"]))
def test_splits_are_disjoint_and_names_unique(seed: int, preset: str) -> None:
    w = make_world(preset, seed)
    names = [e.name for s in (w.forget, w.retain, w.holdout) for e in s]
    assert len(names) == len(set(names))
    value_words = {x for s in (w.forget, w.retain, w.holdout) for e in s for v in e.values
                   for x in v.split()}
    assert not value_words & set(names)


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 10_000))
def test_training_documents_mention_only_their_own_split(seed: int) -> None:
    w = make_world("micro", seed)
    for split in ("forget", "retain"):
        words = {x for d in w.documents(split) for x in d.split()}
        others = [e.name for s in ("forget", "retain", "holdout") if s != split
                  for e in getattr(w, s)]
        assert not words & set(others), split


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 10_000))
def test_every_qa_pair_is_trained_on_and_icl_is_not_evaluated(seed: int) -> None:
    w = make_world("micro", seed)
    for split in ("forget", "retain"):
        evaluated, icl = w.qa_pairs(split)
        docs = "\n\n".join(w.documents(split))
        assert len(icl) == w.n_icl
        assert not {p["question"] for p in icl} & {p["question"] for p in evaluated}
        for p in evaluated + icl:
            assert f"Question: {p['question']}\nAnswer: {p['answer']}" in docs


def test_answers_have_one_to_three_words() -> None:
    w = make_world("tiny")
    widths = {len(v.split()) for e in w.retain for v in e.values}
    assert widths == {width for _, width, _ in ATTRIBUTES} == {1, 2, 3}


def test_same_seed_same_world_other_seed_other_world() -> None:
    assert make_world("micro", 3) == make_world("micro", 3)
    assert make_world("micro", 3) != make_world("micro", 4)


@given(st.text(alphabet="ab \n:?", max_size=40))
def test_pieces_cover_the_text(text: str) -> None:
    assert "".join(pieces(text)) == text


def test_unknown_preset_names_the_choices() -> None:
    with pytest.raises(RunError, match=r"unknown benchmark preset 'tinny'.*did you mean 'tiny'"):
        make_world("tinny")


def test_names_world_and_package_import_without_torch() -> None:
    # The spec loader checks `builtin:` names at collection time; that must stay cheap.
    import subprocess
    import sys

    code = ("import sys, unlearnspec.bench, unlearnspec.bench.names, unlearnspec.bench.world, "
            "unlearnspec.bench.corpus; assert 'torch' not in sys.modules, 'torch imported'")
    subprocess.run([sys.executable, "-c", code], check=True)
