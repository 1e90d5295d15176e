"""The exit status both faces give a run's claim statuses (pytest's is checked end to end in
tests/plugin/test_confidence_e2e.py)."""
from __future__ import annotations

import pytest

from unlearnspec.outcome import EXIT_INCONCLUSIVE, exit_code


@pytest.mark.parametrize("statuses, policy, code", [
    (["pass", "xfail", "xpass"], "fail", 0),
    (["pass", "fail"], "distinct", 1),
    (["pass", "error"], "pass", 1),
    (["pass", "inconclusive"], "fail", 1),
    (["pass", "inconclusive"], "pass", 0),
    (["pass", "inconclusive"], "distinct", EXIT_INCONCLUSIVE),
    (["fail", "inconclusive"], "distinct", 1),
    ([], "distinct", 0),
])
def test_exit_code(statuses: list[str], policy: str, code: int) -> None:
    assert exit_code(statuses, policy) == code
