"""Splitting a session: shards own whole subjects, xdist workers share the cores."""
from __future__ import annotations

import pytest
from hypothesis import given, strategies as st

from unlearnspec.workers import parse_shard, shard_of, worker_threads


@given(st.sets(st.text(max_size=5), max_size=20), st.integers(1, 6))
def test_the_shards_together_own_every_subject_once(subjects: set[str], total: int) -> None:
    owned = [shard_of(subjects, i, total) for i in range(1, total + 1)]
    assert set().union(*owned) == subjects
    assert sum(len(o) for o in owned) == len(subjects)


def test_a_shard_does_not_depend_on_the_order_subjects_arrive() -> None:
    assert shard_of(["c", "a", "b", "a"], 1, 2) == shard_of(["a", "b", "c"], 1, 2) == {"a", "c"}


@pytest.mark.parametrize("text", ["0/2", "3/2", "1", "a/b", "1/2/3"])
def test_a_bad_shard_says_how_to_write_one(text: str) -> None:
    with pytest.raises(ValueError, match="write I/N with 1 <= I <= N"):
        parse_shard(text)


def test_each_worker_gets_its_share_of_the_cores_and_at_least_one() -> None:
    assert parse_shard("2/4") == (2, 4)
    assert worker_threads(8, 2) == 4
    assert worker_threads(2, 4) == 1
    assert worker_threads(4, 0) == 4


def test_a_second_process_needs_two_cores_no_xdist_and_no_opt_out(monkeypatch):
    from unlearnspec import workers

    monkeypatch.delenv("PYTEST_XDIST_WORKER", raising=False)
    monkeypatch.delenv("UNLEARNSPEC_PROCESSES", raising=False)
    monkeypatch.setattr(workers, "available_cores", lambda: 2)
    assert workers.second_process_allowed()
    monkeypatch.setattr(workers, "available_cores", lambda: 1)
    assert not workers.second_process_allowed()
    monkeypatch.setattr(workers, "available_cores", lambda: 8)
    monkeypatch.setenv("UNLEARNSPEC_PROCESSES", "1")
    assert not workers.second_process_allowed()
    monkeypatch.delenv("UNLEARNSPEC_PROCESSES")
    monkeypatch.setenv("PYTEST_XDIST_WORKER", "gw0")
    assert not workers.second_process_allowed()
