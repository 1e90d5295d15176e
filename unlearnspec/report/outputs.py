"""Writing a session's files: the JSON report, the HTML and Markdown pages, the stored run
for later `baseline` claims. One function for every face that has claim records."""
from __future__ import annotations

import time
from typing import Any, Mapping, Sequence


def write_outputs(records: Sequence[Mapping[str, Any]], *, started: float,
                  json: str | None = None, html: str | None = None,
                  markdown: str | None = None, stored_run: str | None = None) -> list[str]:
    """Write each file asked for (None: not asked) and return their paths, in the order
    stored run, JSON, HTML, Markdown."""
    if not (json or html or markdown or stored_run):
        return []
    from ..data.files import atomic_write
    from .html import render_html
    from .json_report import build_report, write_report
    from .markdown import render_markdown_report

    report = build_report(records, spec_paths=sorted({r["spec"] for r in records}),
                          started=started, finished=time.time())
    written = []
    if stored_run:
        from ..engine.stored_run import save_stored_run

        written.append(str(save_stored_run(records, stored_run)))
    if json:
        written.append(str(write_report(report, json)))
    for target, render in ((html, render_html), (markdown, render_markdown_report)):
        if target:
            written.append(str(atomic_write(target, render(report))))
    return written
