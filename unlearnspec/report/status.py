"""A claim item's status and how every face shows it: one table for the terminal matrix, the
Markdown and HTML reports, the JSON summary and `unlearnspec run`'s lines.

The statuses are pass, fail, inconclusive, error, xfail, xpass (in the JSON summary's order);
docs/report.md's table explains each. Torch-free.
"""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Status:
    word: str  # PASS, INCONCLUSIVE: Markdown, HTML badges, pytest's summary
    short: str  # at most 6 letters: the verdict column of `unlearnspec run`
    mark: str  # the terminal matrix's mark, readable without colour (CI logs)
    emoji: str  # the Markdown matrix's mark (GitHub tables have no colour)
    style: str  # rich style of the terminal matrix
    severity: int  # the worst wins when several claims use one cell


STATUSES: dict[str, Status] = {
    "pass": Status("PASS", "PASS", "✓", "✅", "green", 1),
    "fail": Status("FAIL", "FAIL", "✗", "❌", "bold red", 5),
    "inconclusive": Status("INCONCLUSIVE", "INCONC", "?", "❔", "bold yellow", 4),
    "error": Status("ERROR", "ERROR", "E", "⚠️", "bold magenta", 6),
    "xfail": Status("XFAIL", "XFAIL", "x", "➖", "yellow", 2),
    "xpass": Status("XPASS", "XPASS", "!", "❗", "cyan", 3),
}


def word(status: str) -> str:
    """The status's word; an unknown status (a report from elsewhere) in capitals."""
    known = STATUSES.get(status)
    return known.word if known else status.upper()
