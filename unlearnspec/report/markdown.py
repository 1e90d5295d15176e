"""The run as Markdown, for model cards and PR comments: summary, matrix, claims.

GitHub renders no colour in tables, so verdicts are marks on the cells (as in the terminal)
and a word in the claims list. User text is escaped for table cells (`|`) and inline code.
"""
from __future__ import annotations

from typing import Any, Mapping

from ..numbers import format_number
from .collect import fmt_margin
from .status import STATUSES, word
from .view import View, build_view



def _cell(text: object) -> str:
    return str(text).replace("\\", "\\\\").replace("|", "\\|").replace("\n", " ")


def _code(text: object) -> str:
    text = str(text).replace("\n", " ")
    fence = "``" if "`" in text else "`"
    return f"{fence} {text} {fence}" if fence == "``" else f"`{text}`"


def markdown_matrix(view: View) -> str:
    header = ["model", "transform", *view.metrics, "claims"]
    lines = ["| " + " | ".join(_cell(h) for h in header) + " |",
             "|---|---|" + "---:|" * len(view.metrics) + "---|"]
    for model, transform in view.rows:
        name = f"{_cell(model)} (ref)" if model in view.references else f"**{_cell(model)}**"
        cells = []
        for metric in view.metrics:
            c = view.cells.get((model, transform, metric))
            if c is None:
                cells.append("")
            else:
                mark = f" {STATUSES[c.status].emoji}" if c.status else ""
                cells.append(format_number(c.value) + mark)
        verdicts = ", ".join(f"{STATUSES[view.claims[i]['status']].emoji} "
                             f"{_cell(view.claims[i]['claim'])}"
                             for i in view.row_claims.get((model, transform), []))
        lines.append(f"| {name} | {_cell(transform)} | " + " | ".join(cells) +
                     f" | {verdicts} |")
    return "\n".join(lines) + "\n"


def markdown_claims(view: View) -> str:
    lines = []
    for c in view.claims:
        verdict = c.get("verdict") or {}
        margin = f" (margin {fmt_margin(verdict)})" if verdict.get("margin") is not None else ""
        lines.append(f"- {STATUSES[c['status']].emoji} **{word(c['status'])}** "
                     f"{_cell(c.get('claim'))} for {_cell(c.get('subject'))}: "
                     f"{_code(c.get('assert'))}{margin}")
        explanation = verdict.get("explanation")
        if explanation and c["status"] != "pass":
            lines.append("  ```text")
            lines += [f"  {line}" for line in str(explanation).replace("```", "'''").splitlines()]
            lines.append("  ```")
        elif not verdict:
            lines.append("  could not be evaluated (see the test log)")
    return "\n".join(lines) + ("\n" if lines else "")


def render_markdown_report(report: Mapping[str, Any]) -> str:
    """Summary line, the matrix, then each claim with its verdict (explanations for those
    that did not pass)."""
    view = build_view(report)
    statuses = (report.get("summary") or {}).get("statuses") or {}
    counts = ", ".join(f"{n} {word(s).lower()}" for s, n in statuses.items() if n)
    specs = ", ".join(_code(s.get("path")) for s in report.get("specs") or [])
    out = [f"### unlearnspec: {len(view.claims)} claim items ({counts or 'none'})", ""]
    if specs:
        out += [f"Spec: {specs}", ""]
    out += [markdown_matrix(view), markdown_claims(view)]
    return "\n".join(out)
