"""One self-contained HTML page for a run (`--unlearn-html`, `unlearnspec report -o`).

Inline CSS and inline SVG only: the page opens from a CI artifact store, an air-gapped
machine or an e-mail attachment and fetches nothing (no scripts, fonts or images). Every
piece of user text (claim names, assertions, model names, explanations, configs) is
escaped: a spec is someone else's input.
"""
from __future__ import annotations

import json
from html import escape
from typing import Any, Mapping

from ..numbers import format_number
from .collect import fmt_margin
from .svg import bit_plot_svg, layer_plot_svg
from .status import word
from .view import View, bit_plots, build_view, layer_plots

CSS = """
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",sans-serif;margin:24px;color:#222;
 max-width:1200px}
h1{font-size:22px;margin:0 0 4px} h2{font-size:18px;margin:28px 0 8px;border-bottom:1px solid #ddd}
table{border-collapse:collapse;margin:8px 0} th,td{padding:3px 8px;border:1px solid #ddd}
th{background:#f3f3f3;text-align:left} td.num{text-align:right;font-variant-numeric:tabular-nums}
tr.ref td{background:#f8f8ff} .muted{color:#777}
.pass{background:#d9f2d9} .fail,.error{background:#f8d0d0} .xfail{background:#fff1c2}
.xpass{background:#e0e8ff} .inconclusive{background:#ffe2b8}
.badge{display:inline-block;padding:1px 7px;border-radius:4px;font-weight:600;font-size:12px}
.claim{border:1px solid #ddd;border-radius:6px;padding:6px 12px;margin:6px 0}
summary{cursor:pointer}
pre{background:#f6f6f6;padding:8px;overflow-x:auto;white-space:pre-wrap}
.plots{display:flex;flex-wrap:wrap;gap:16px} svg.plot{border:1px solid #eee;background:#fff}
code{background:#f3f3f3;padding:0 3px}
"""


def _e(text: object) -> str:
    return escape("" if text is None else str(text), quote=True)


def _badge(status: str | None) -> str:
    if not status:
        return ""
    return f'<span class="badge {status}">{word(status)}</span>'


def matrix_html(view: View) -> str:
    head = "".join(f"<th>{_e(m)}</th>" for m in view.metrics)
    rows = []
    for model, transform in view.rows:
        role = "ref" if model in view.references else "subject"
        tds = []
        for metric in view.metrics:
            cell = view.cells.get((model, transform, metric))
            if cell is None:
                tds.append('<td class="num muted">–</td>')
                continue
            cls = f"num {cell.status}" if cell.status else "num"
            title = "; ".join(f"{view.claims[i]['claim']}: {view.claims[i]['status']}"
                              for i in cell.claims)
            tds.append(f'<td class="{cls}" title="{_e(title)}">{format_number(cell.value)}</td>')
        verdicts = " ".join(f'{_badge(view.claims[i]["status"])} {_e(view.claims[i]["claim"])}'
                            for i in view.row_claims.get((model, transform), []))
        bits = view.bits(transform)
        rows.append(f'<tr class="{role}" data-model="{_e(model)}" '
                    f'data-transform="{_e(transform)}"><td>{_e(model)}</td>'
                    f'<td>{_e(transform)}</td><td class="num">{bits if bits else "?"}</td>'
                    f'<td class="num">{_coverage_cell(view, model, transform)}</td>'
                    f'{"".join(tds)}<td>{verdicts}</td></tr>')
    return (f'<table class="matrix"><thead><tr><th>model</th><th>transform</th><th>bits</th>'
            f'<th title="share of the decoder\'s weights the transform quantized">decoder</th>'
            f'{head}<th>claims</th></tr></thead><tbody>{"".join(rows)}</tbody></table>'
            f'<p class="muted">Shaded rows are references (not unlearned). A cell is coloured '
            f'by the claims that compared it on their subject. <i>decoder</i>: the share of '
            f'the model\'s decoder weights the transform quantized (measured).</p>')


def _coverage_cell(view: View, model: str, transform: str) -> str:
    if transform == "fp":
        return '<span class="muted">–</span>'
    share = view.coverage(model, transform)
    return "?" if share is None else f"{100 * share:.0f}%"


def claims_html(view: View) -> str:
    parts = []
    for c in view.claims:
        verdict = c.get("verdict") or {}
        explanation = verdict.get("explanation") or (
            "no verdict: the claim could not be evaluated (see the test log)")
        cells = "".join(f"<tr><td><code>{_e(label)}</code></td><td class='num'>"
                        f"{format_number(((view.measurements.get(label) or {}).get('result') or {}).get('value'))}"
                        f"</td><td class='num'>"
                        f"{_e(((view.measurements.get(label) or {}).get('result') or {}).get('n', ''))}"
                        f"</td></tr>" for label in c.get("cells") or [])
        xfail = f'<div class="muted">expected to fail: {_e(c["xfail"])}</div>' \
            if c.get("xfail") else ""
        margin = fmt_margin(verdict)
        is_open = " open" if c["status"] != "pass" else ""
        parts.append(
            f'<details class="claim" data-status="{_e(c["status"])}"{is_open}><summary>'
            f'{_badge(c["status"])} <b>{_e(c.get("claim"))}</b> for '
            f'<b>{_e(c.get("subject"))}</b>{f" (margin {margin})" if margin else ""}: '
            f'<code>{_e(c.get("assert"))}</code> '
            f'<span class="muted">{_e(c.get("spec"))}:{_e(c.get("line"))}</span></summary>'
            f'{xfail}<pre>{_e(explanation)}</pre>'
            f'<table><tr><th>cell</th><th>value</th><th>n</th></tr>{cells}</table></details>')
    return "".join(parts) or '<p class="muted">No claims ran.</p>'


def plots_html(view: View) -> str:
    plots, notes = bit_plots(view)
    out = ['<div class="plots">', *(bit_plot_svg(p) for p in plots), "</div>"]
    if not plots:
        out.append('<p class="muted">No metric was measured at more than one bit-width.</p>')
    out += [f'<p class="muted">{_e(n)}</p>' for n in notes]
    layers = layer_plots(view)
    if layers:
        out.append("<h2>Per-layer weight-space metrics</h2>")
        out += ['<div class="plots">', *(layer_plot_svg(p) for p in layers), "</div>"]
    return "".join(out)


def _kv_table(rows: Mapping[str, Any]) -> str:
    body = "".join(f"<tr><th>{_e(k)}</th><td>{_e(_plain(v))}</td></tr>" for k, v in rows.items())
    return f"<table>{body}</table>"


def _plain(value: Any) -> str:
    if value is None:
        return "—"
    if isinstance(value, (dict, list)):
        return json.dumps(value, sort_keys=True)
    return str(value)


def metadata_html(report: Mapping[str, Any]) -> str:
    specs = "".join(f"<tr><td>{_e(s.get('path'))}</td><td><code>{_e(s.get('sha256'))}</code>"
                    f"</td></tr>" for s in report.get("specs") or [])
    models = "".join(
        f"<tr><td>{_e(n)}</td><td>{_e(m.get('source'))}</td><td>{_e(m.get('method'))}</td>"
        f"<td>{_e(m.get('from'))}</td><td><code>{_e(str(m.get('key'))[:16])}</code></td>"
        f"<td><code>{_e(_plain(m.get('config')))}</code></td></tr>"
        for n, m in (report.get("models") or {}).items())
    transforms = "".join(
        f"<tr><td>{_e(n)}</td><td>{_e(t.get('kind'))}</td><td>{_e(t.get('bits'))}</td>"
        f"<td><code>{_e(_plain(t.get('config')))}</code></td>"
        f"<td><code>{_e(_plain(t.get('settings')) if t.get('settings') else '')}</code></td></tr>"
        for n, t in (report.get("transforms") or {}).items())
    shards = report.get("shards") or []
    return (f"<h2>Run</h2>{_kv_table({'started': report.get('started'), 'finished': report.get('finished'), 'schema_version': report.get('schema_version'), 'shards': len(shards) or None})}"
            f"<h3>Specs</h3><table><tr><th>path</th><th>sha256</th></tr>{specs}</table>"
            f"<h3>Models</h3><table><tr><th>name</th><th>source</th><th>method</th>"
            f"<th>from</th><th>key</th><th>config</th></tr>{models}</table>"
            f"<h3>Transforms</h3><table><tr><th>name</th><th>kind</th><th>bits</th>"
            f"<th>config</th><th>backend settings</th></tr>{transforms}</table>"
            f"<h3>Packages</h3>{_kv_table(report.get('packages') or {})}"
            f"<h3>Environment</h3>{_kv_table(report.get('environment') or {})}")


def summary_html(report: Mapping[str, Any]) -> str:
    summary = report.get("summary") or {}
    statuses = summary.get("statuses") or {}
    badges = " ".join(f"{_badge(s)} {int(n)}" for s, n in statuses.items() if n)
    work = ", ".join(f"{_e(k)} {int(v)}" for k, v in (summary.get("work") or {}).items())
    return (f'<p id="summary">{summary.get("claims", 0)} claim items: {badges or "none"}'
            f'{f" — computed: {work}" if work else ""}</p>')


def render_html(report: Mapping[str, Any]) -> str:
    """The page for a report dict (`build_report` / `load_report` output)."""
    view = build_view(report)
    specs = ", ".join(str(s.get("path")) for s in report.get("specs") or []) or "run"
    return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">"
            f"<title>unlearnspec report — {_e(specs)}</title><style>{CSS}</style></head><body>"
            f"<h1>unlearnspec report</h1><div class=\"muted\">{_e(specs)}</div>"
            f"{summary_html(report)}"
            f"<h2>Measurements</h2>{matrix_html(view)}"
            f"<h2>Metric vs bit-width</h2>{plots_html(view)}"
            f"<h2>Claims</h2>{claims_html(view)}"
            f"{metadata_html(report)}</body></html>\n")
