"""Where live progress bars go: the real terminal, or nowhere.

Bars write to the process's original stderr (not pytest's captured streams), only when that
is a terminal, and vanish when done (`transient`), so pytest's and xdist's output stay clean:
a captured test, a CI log or an xdist worker sees no bar at all.
"""
from __future__ import annotations

import sys
from typing import Any


def progress_enabled(requested: bool = True) -> bool:
    stream = sys.__stderr__
    return bool(requested and stream is not None and stream.isatty())


def progress_console() -> Any:
    from rich.console import Console

    return Console(file=sys.__stderr__)
