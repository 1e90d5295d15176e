"""The project's exceptions, and how they point at what the user wrote.

Every error a user can cause carries a `Location` (file, line, column) and, where it has
one, the user's own text with a caret under the bad part, pytest-style.
"""
from __future__ import annotations

import difflib
import errno
import re
from dataclasses import dataclass
from typing import Iterable


@dataclass(frozen=True)
class Location:
    """A place in a spec file. `line` and `column` are 1-based; column 0 means 'whole line'."""

    path: str
    line: int
    column: int = 0

    def __str__(self) -> str:
        return f"{self.path}:{self.line}" + (f":{self.column}" if self.column else "")


class UnlearnSpecError(Exception):
    """Base class for every error unlearnspec raises on purpose."""


class SpecError(UnlearnSpecError):
    """Something in a spec file is wrong. Rendered as::

        specs/tiny.yaml:12:13: unknown transform 'rtn5'
            knowmem_forget @ rtn5 <= retrain + 5
                             ^^^^
        did you mean 'rtn4'?
    """

    def __init__(
        self,
        message: str,
        loc: Location | None = None,
        *,
        source: str | None = None,
        span: tuple[int, int] | None = None,
        hint: str | None = None,
    ) -> None:
        self.message = message
        self.loc = loc
        self.source = source
        self.span = span
        self.hint = hint
        super().__init__(self.render())

    def render(self) -> str:
        head = f"{self.loc}: {self.message}" if self.loc else self.message
        lines = [head]
        if self.source is not None:
            source, span = _window(self.source, self.span)
            lines.append("    " + source)
            if span is not None:
                start, end = span
                lines.append("    " + " " * start + "^" * max(1, end - start))
        if self.hint:
            lines.append(self.hint)
        return "\n".join(lines)


_WIDTH = 120  # of a shown source line; a longer one is cut around the caret


def _window(source: str, span: tuple[int, int] | None
            ) -> tuple[str, tuple[int, int] | None]:
    """A long line (a hostile spec's 6,000 brackets) cut to about _WIDTH characters around
    the span, with '...' where it was cut."""
    if len(source) <= _WIDTH:
        return source, span
    start, end = span or (0, 0)
    left = max(0, min(start - _WIDTH // 2, len(source) - _WIDTH))
    right = left + _WIDTH
    cut = ("..." if left else "") + source[left:right] + ("..." if right < len(source) else "")
    if span is None:
        return cut, None
    shift = left - (3 if left else 0)
    return cut, (start - shift, min(end, right) - shift)


class RunError(UnlearnSpecError):
    """A run could not compute something it needed (missing data, failed transform, NaN)."""


class MissingExtraError(UnlearnSpecError):
    """An optional backend is not installed; the message names the pip extra."""

    def __init__(self, feature: str, extra: str, package: str) -> None:
        super().__init__(
            f"{feature} needs the optional package '{package}'. "
            f"Install it with: pip install 'unlearnspec[{extra}]'"
        )
        self.extra = extra


def did_you_mean(name: str, choices: Iterable[str]) -> str | None:
    """A 'did you mean ...?' hint, or None when nothing is close."""
    close = difflib.get_close_matches(name, list(choices), n=1, cutoff=0.6)
    return f"did you mean '{close[0]}'?" if close else None


_DISK_FULL = {errno.ENOSPC: "no space left on device", errno.EFBIG: "file too large",
              errno.EDQUOT: "disk quota exceeded"}


def disk_full(exc: BaseException) -> str | None:
    """Why `exc` is a full disk ("no space left on device", ...), or None if it is not.

    Looks through the exception's causes, and at "os error N" / "[Errno N]" in the messages
    of libraries that do not raise OSError (safetensors' Rust writer raises SafetensorError)
    or that wrap one without chaining it."""
    seen: set[int] = set()
    cur: BaseException | None = exc
    while cur is not None and id(cur) not in seen:
        seen.add(id(cur))
        if isinstance(cur, OSError) and cur.errno in _DISK_FULL:
            return _DISK_FULL[cur.errno]
        for code in re.findall(r"(?:os error |\[Errno )(\d+)", str(cur)):
            if int(code) in _DISK_FULL:
                return _DISK_FULL[int(code)]
        cur = cur.__cause__ or cur.__context__
    return None
