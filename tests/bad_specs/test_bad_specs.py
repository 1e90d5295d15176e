"""Every file here is one mistake a user can make in a spec. Its header says what the error
must say and on which line it must point:

    # expect: <a substring of the rendered error>
    # line: <the line number the error names>
"""
from __future__ import annotations

import re
from pathlib import Path

import pytest

from unlearnspec.errors import SpecError
from unlearnspec.spec import load_spec

HERE = Path(__file__).parent
CASES = sorted(HERE.glob("*.yaml"))


def header(path: Path) -> tuple[str, int]:
    text = path.read_text(encoding="utf-8")
    expect = re.search(r"^# expect: (.+)$", text, re.M)
    line = re.search(r"^# line: (\d+)$", text, re.M)
    assert expect and line, f"{path.name} needs '# expect:' and '# line:' header comments"
    return expect.group(1), int(line.group(1))


def test_there_are_enough_cases() -> None:
    assert len(CASES) >= 15


@pytest.mark.parametrize("path", CASES, ids=lambda p: p.stem)
def test_bad_spec(path: Path) -> None:
    expect, line = header(path)
    with pytest.raises(SpecError) as info:
        load_spec(path)
    rendered = str(info.value)
    assert expect in rendered
    assert info.value.loc is not None and info.value.loc.line == line
    assert rendered.startswith(f"{path}:{line}")
