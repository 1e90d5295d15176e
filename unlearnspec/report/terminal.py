"""The end-of-session matrix: rows are model × transform, columns are metrics."""
from __future__ import annotations

import io
import re
from typing import Mapping

LABEL = re.compile(r"^(?P<metric>[^\[]+)\[(?P<model>[^\]@]+?)(?: @ (?P<transform>[^\]]+))?\]$")


def parse_label(label: str) -> tuple[str, str, str] | None:
    """'knowmem_forget[ga_klr @ rtn4]' -> ('knowmem_forget', 'ga_klr', 'rtn4'); fp for none."""
    m = LABEL.match(label)
    if not m:
        return None
    return m["metric"], m["model"].strip(), (m["transform"] or "fp").strip()


def matrix(values: Mapping[str, float]) -> tuple[list[str], dict[tuple[str, str], dict[str, float]]]:
    metrics: list[str] = []
    rows: dict[tuple[str, str], dict[str, float]] = {}
    for label, value in values.items():
        parsed = parse_label(label)
        if parsed is None:
            continue
        metric, model, transform = parsed
        if metric not in metrics:
            metrics.append(metric)
        rows.setdefault((model, transform), {})[metric] = value
    return metrics, rows


def _fmt(v: float | None) -> str:
    if v is None:
        return ""
    if v != v:
        return "nan"
    return f"{v:.1f}" if abs(v) >= 10 else f"{v:.3g}"


def render_matrix(values: Mapping[str, float], *, width: int = 100, color: bool = False) -> str:
    from rich.console import Console
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
                      *(_fmt(cells.get(m)) for m in metrics))
        last_model = model
    buf = io.StringIO()
    Console(file=buf, width=width, force_terminal=color, color_system="standard" if color
            else None).print(table)
    return buf.getvalue()


def render_markdown(values: Mapping[str, float]) -> str:
    metrics, rows = matrix(values)
    lines = ["| model | transform | " + " | ".join(metrics) + " |",
             "|---|---|" + "---:|" * len(metrics)]
    for (model, transform) in sorted(rows, key=lambda r: (r[0], r[1] != "fp", r[1])):
        cells = rows[(model, transform)]
        lines.append(f"| {model} | {transform} | " +
                     " | ".join(_fmt(cells.get(m)) for m in metrics) + " |")
    return "\n".join(lines) + "\n"
