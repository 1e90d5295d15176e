"""A rich progress bar for the training loop that shows the running losses."""
from __future__ import annotations

from typing import Any

from ..progress import progress_console, progress_enabled
from rich.progress import (BarColumn, MofNCompleteColumn, Progress, TextColumn,
                           TimeElapsedColumn, TimeRemainingColumn)


class LossProgress:
    """`with LossProgress(name, steps, enabled=...) as bar: bar.update(entry)`. The shown
    losses are exponential moving averages (0.9) of the per-step values, so a noisy step
    does not hide the trend. Disabled, it does nothing (no terminal output at all)."""

    def __init__(self, name: str, steps: int, *, enabled: bool = True) -> None:
        self.enabled = enabled
        self.running: dict[str, float] = {}
        self._progress = Progress(
            TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
            TextColumn("{task.fields[losses]}"), TimeElapsedColumn(), TimeRemainingColumn(),
            disable=not progress_enabled(enabled), transient=True,
            console=progress_console(),
        )
        self._task = self._progress.add_task(f"unlearn {name}", total=steps, losses="")

    def __enter__(self) -> "LossProgress":
        self._progress.__enter__()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._progress.__exit__(*exc)

    def update(self, entry: dict[str, float]) -> None:
        for key in ("forget", "retain", "total"):
            old = self.running.get(key)
            self.running[key] = entry[key] if old is None else 0.9 * old + 0.1 * entry[key]
        text = "  ".join(f"{k} {v:.4f}" for k, v in self.running.items())
        self._progress.update(self._task, advance=1, losses=text)
