"""The end-of-session matrix: rows are model × transform, columns are metrics.

`render_records` is the full picture: references first, each claim's verdict in the row of
the cells it compared on its subject, and a mark on those cells (✓ pass, ✗ fail, E error,
x expected failure, ! unexpected pass) so the verdicts read without colour too (CI logs).
`render_matrix(values)` is the plain matrix of measured values (`unlearnspec run`).
"""
from __future__ import annotations

import io
from typing import TYPE_CHECKING, Any, Iterable, Mapping

from ..numbers import format_number
from .collect import collect, fmt_margin
from .status import STATUSES
from .view import build_view

if TYPE_CHECKING:
    from ..engine.measurement import Measurement


def matrix(values: Mapping["Measurement", float]
           ) -> tuple[list[str], dict[tuple[str, str], dict[str, float]]]:
    """Columns (metrics, first seen first) and rows (model, transform) of `values`; a
    measurement without relearning holdouts is another sample set than its cell's: left out."""
    metrics: list[str] = []
    rows: dict[tuple[str, str], dict[str, float]] = {}
    for m, value in values.items():
        if m.exclude:
            continue
        metric, model, transform = m.metric, m.model, m.transform or "fp"
        if metric not in metrics:
            metrics.append(metric)
        rows.setdefault((model, transform), {})[metric] = value
    return metrics, rows


def _print(table: Any, width: int, color: bool, after: str = "") -> str:
    from rich.console import Console

    buf = io.StringIO()
    console = Console(file=buf, width=width, force_terminal=color,
                      color_system="standard" if color else None, highlight=False)
    console.print(table)
    if after:
        console.print(after)
    return buf.getvalue()


def render_matrix(values: Mapping["Measurement", float], *, width: int = 100, color: bool = False) -> str:
    from rich.table import Table

    metrics, rows = matrix(values)
    table = Table(show_edge=False, header_style="bold")
    table.add_column("model")
    table.add_column("transform")
    for m in metrics:
        table.add_column(m, justify="right")
    last_model = None
    for (model, transform) in sorted(rows, key=lambda r: (r[0], r[1] != "fp", r[1])):
        cells = rows[(model, transform)]
        table.add_row(model if model != last_model else "", transform,
                      *(format_number(cells.get(m)) for m in metrics))
        last_model = model
    return _print(table, width, color)


def render_records(records: Iterable[Mapping[str, Any]], *, width: int = 100,
                   color: bool = False) -> str:
    """The matrix of the plugin's claim records with verdicts beside the cells they used."""
    parts = collect(records)
    return render_view(build_view({"models": parts.models, "transforms": parts.transforms,
                                   "measurements": parts.measurements,
                                   "claims": parts.claims}), width=width, color=color)


def render_view(view: Any, *, width: int = 100, color: bool = False) -> str:
    from rich.table import Table
    from rich.text import Text

    table = Table(show_edge=False, header_style="bold")
    table.add_column("model")
    table.add_column("transform")
    for m in view.metrics:
        table.add_column(m, justify="right")
    table.add_column("claims")
    last_model = None
    for model, transform in view.rows:
        if last_model is not None and model != last_model:
            table.add_section()
        row: list[Any] = [Text(model if model != last_model else "",
                               style="dim" if model in view.references else ""), transform]
        for metric in view.metrics:
            cell = view.cells.get((model, transform, metric))
            if cell is None:
                row.append("")
                continue
            status = STATUSES.get(cell.status or "")
            mark = f" {status.mark}" if status else ""
            row.append(Text(format_number(cell.value) + mark, style=status.style if status else ""))
        verdicts = Text()
        for i in view.row_claims.get((model, transform), []):
            c = view.claims[i]
            margin = fmt_margin(c.get("verdict"))
            if verdicts:
                verdicts.append("\n")  # one verdict per line: a narrow column never splits one
            status = STATUSES[c["status"]]
            text = f"{status.mark} {c['claim']}"
            text += f" ({margin})" if margin else ""
            verdicts.append(text, style=status.style)
        row.append(verdicts)
        table.add_row(*row)
        last_model = model
    legend = "✓ pass  ✗ fail  ? inconclusive  E error  x xfail  ! xpass — (margin); dim rows are references"
    notes = "\n".join(n for n in (legend if view.claims else "", coverage_note(view)) if n)
    return _print(table, width, color, notes)


def coverage_note(view: Any) -> str:
    """A footnote: the share of each transformed row's decoder weights the transform
    quantized ("" when the matrix has no transformed row)."""
    shares = {(m, t): view.coverage(m, t) for m, t in view.rows if t != "fp"}
    if not shares:
        return ""
    known = {k: v for k, v in shares.items() if v is not None}
    if known and len(known) == len(shares) and len(set(known.values())) == 1:
        share = next(iter(known.values()))
        return f"decoder coverage: every transformed row quantized {100 * share:.0f}% of its decoder weights"
    parts = [f"{m} @ {t} {'?' if v is None else f'{100 * v:.0f}%'}" for (m, t), v in shares.items()]
    return "decoder coverage (share of decoder weights quantized): " + ", ".join(parts)


def render_markdown(values: Mapping["Measurement", float]) -> str:
    metrics, rows = matrix(values)
    lines = ["| model | transform | " + " | ".join(metrics) + " |",
             "|---|---|" + "---:|" * len(metrics)]
    for (model, transform) in sorted(rows, key=lambda r: (r[0], r[1] != "fp", r[1])):
        cells = rows[(model, transform)]
        lines.append(f"| {model} | {transform} | " +
                     " | ".join(format_number(cells.get(m)) for m in metrics) + " |")
    return "\n".join(lines) + "\n"
