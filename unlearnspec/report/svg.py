"""Small inline-SVG charts for the HTML report: no JavaScript, fonts or anything fetched.

Every text that comes from a user (model, metric, tensor names) is escaped here. Each chart
is one `<svg class="plot">` whose `data-*` attributes say what it shows, and each line or
bar is a `<g class="series">` / `<g class="reference">` / `<rect class="bar">`, so tests
and scrapers can read a chart without rendering it.
"""
from __future__ import annotations

import math
from html import escape
from typing import Sequence

from ..numbers import format_number
from .view import FP_BITS, BitPlot, LayerPlot

PALETTE = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#17becf", "#8c564b",
           "#e377c2", "#7f7f7f", "#bcbd22")
REF_STYLES = (("#000000", "6 4"), ("#555555", "2 3"), ("#888888", "10 3 2 3"))


def _e(text: object) -> str:
    return escape(str(text), quote=True)


def _num(v: float) -> str:
    return format_number(v, fixed_below=1e5)  # a narrow axis: 123456 prints as 1.23e+05


def bits_label(bits: int) -> str:
    return "fp" if bits == FP_BITS else f"{bits}-bit"


def nice_ticks(lo: float, hi: float, count: int = 5) -> list[float]:
    """Round tick values covering [lo, hi] (lo < hi)."""
    step = (hi - lo) / max(count - 1, 1)
    mag = 10 ** math.floor(math.log10(step))
    step = min((m * mag for m in (1, 2, 2.5, 5, 10) if m * mag >= step), default=10 * mag)
    start = math.floor(lo / step) * step
    ticks, v = [], start
    while v <= hi + step * 1e-9:
        ticks.append(round(v, 10))
        v += step
    if ticks[-1] < hi:
        ticks.append(round(ticks[-1] + step, 10))
    return ticks


def _range(values: Sequence[float]) -> tuple[float, float]:
    lo, hi = min(values), max(values)
    if lo == hi:
        lo, hi = lo - 1, hi + 1
    ticks = nice_ticks(lo, hi)
    return ticks[0], ticks[-1]


def bit_plot_svg(plot: BitPlot, width: int = 640, height: int = 340) -> str:
    """A line per subject through its values at each bit-width (fp at the left), reference
    models' full-precision values as dashed horizontal lines."""
    left, right, top, bottom = 56, 150, 28, 44
    pw, ph = width - left - right, height - top - bottom
    xs = sorted(plot.xs, reverse=True)  # fp, 16, 8, 4: the paper reads left to right
    values = [v for s in plot.series for _, v in s.points] + [v for _, v in plot.reference_lines]
    lo, hi = _range(values)

    def x(bits: int) -> float:
        i = xs.index(bits)
        return left + (pw * (i + 0.5) / len(xs))

    def y(v: float) -> float:
        return top + ph * (1 - (v - lo) / (hi - lo))

    title = f"{plot.metric} vs bit-width ({plot.family}: {', '.join(plot.transforms)})"
    out = [f'<svg class="plot" data-plot="bitwidth" data-metric="{_e(plot.metric)}" '
           f'data-series="{len(plot.series)}" data-references="{len(plot.reference_lines)}" '
           f'width="{width}" height="{height}" '
           f'viewBox="0 0 {width} {height}" role="img" aria-label="{_e(title)}">',
           f'<title>{_e(title)}</title>',
           f'<rect x="{left}" y="{top}" width="{pw}" height="{ph}" fill="#fafafa" '
           f'stroke="#ccc"/>',
           f'<text x="{left}" y="18" font-size="13" font-weight="bold">{_e(plot.metric)} '
           f'<tspan font-weight="normal" fill="#555">({_e(plot.family)})</tspan></text>']
    for t in nice_ticks(lo, hi):
        if lo - 1e-9 <= t <= hi + 1e-9:
            out.append(f'<line x1="{left}" x2="{left + pw}" y1="{y(t):.1f}" y2="{y(t):.1f}" '
                       f'stroke="#e4e4e4"/><text x="{left - 6}" y="{y(t) + 4:.1f}" '
                       f'font-size="11" text-anchor="end">{_num(t)}</text>')
    for b in xs:
        out.append(f'<text x="{x(b):.1f}" y="{top + ph + 18}" font-size="11" '
                   f'text-anchor="middle">{bits_label(b)}</text>')
    out.append(f'<text x="{left + pw / 2:.1f}" y="{height - 6}" font-size="11" '
               f'text-anchor="middle" fill="#555">bits per weight</text>')
    legend_y = top + 4
    for i, (model, v) in enumerate(plot.reference_lines):
        color, dash = REF_STYLES[i % len(REF_STYLES)]
        out.append(f'<g class="reference" data-model="{_e(model)}">'
                   f'<title>{_e(model)} (fp) = {_num(v)}</title>'
                   f'<line x1="{left}" x2="{left + pw}" y1="{y(v):.1f}" y2="{y(v):.1f}" '
                   f'stroke="{color}" stroke-width="1.5" stroke-dasharray="{dash}"/>'
                   f'<line x1="{left + pw + 10}" x2="{left + pw + 34}" y1="{legend_y}" '
                   f'y2="{legend_y}" stroke="{color}" stroke-dasharray="{dash}"/>'
                   f'<text x="{left + pw + 40}" y="{legend_y + 4}" font-size="11">'
                   f'{_e(model)} (fp)</text></g>')
        legend_y += 18
    for i, s in enumerate(plot.series):
        color = PALETTE[i % len(PALETTE)]
        pts = sorted(s.points, key=lambda p: xs.index(p[0]))
        path = " ".join(f"{x(b):.1f},{y(v):.1f}" for b, v in pts)
        dots = "".join(f'<circle cx="{x(b):.1f}" cy="{y(v):.1f}" r="3.5" fill="{color}">'
                       f'<title>{_e(s.model)} @ {bits_label(b)} = {_num(v)}</title></circle>'
                       for b, v in pts)
        out.append(f'<g class="series" data-model="{_e(s.model)}" data-points="{len(pts)}">'
                   f'<polyline points="{path}" fill="none" stroke="{color}" '
                   f'stroke-width="2"/>{dots}'
                   f'<line x1="{left + pw + 10}" x2="{left + pw + 34}" y1="{legend_y}" '
                   f'y2="{legend_y}" stroke="{color}" stroke-width="2"/>'
                   f'<text x="{left + pw + 40}" y="{legend_y + 4}" font-size="11">'
                   f'{_e(s.model)}</text></g>')
        legend_y += 18
    out.append("</svg>")
    return "".join(out)


def layer_plot_svg(plot: LayerPlot, width: int = 640) -> str:
    """A horizontal bar per tensor (names can be long, so they get their own column)."""
    label_w, right, top, bar_h = 280, 60, 28, 14
    height = top + bar_h * len(plot.bars) + 30
    pw = width - label_w - right
    values = [v for _, v in plot.bars if math.isfinite(v)] or [0.0]
    lo, hi = min(0.0, *values), max(0.0, *values)
    if lo == hi:
        hi = 1.0

    def x(v: float) -> float:
        return label_w + pw * (v - lo) / (hi - lo)

    out = [f'<svg class="plot" data-plot="per-layer" data-metric="{_e(plot.metric)}" '
           f'data-label="{_e(plot.label)}" data-bars="{len(plot.bars)}" '
           f'width="{width}" height="{height}" '
           f'viewBox="0 0 {width} {height}" role="img" aria-label="{_e(plot.label)} per layer">',
           f'<title>{_e(plot.label)} per layer</title>',
           f'<text x="4" y="18" font-size="13" font-weight="bold">{_e(plot.label)}</text>']
    for i, (name, v) in enumerate(plot.bars):
        yy = top + i * bar_h
        shown = v if math.isfinite(v) else 0.0
        x0, x1 = sorted((x(0.0), x(shown)))
        out.append(f'<text x="{label_w - 6}" y="{yy + bar_h - 4}" font-size="10" '
                   f'text-anchor="end">{_e(name)}</text>'
                   f'<rect class="bar" x="{x0:.1f}" y="{yy + 1}" width="{max(x1 - x0, 0.5):.1f}" '
                   f'height="{bar_h - 3}" fill="#1f77b4"><title>{_e(name)} = {_num(v)}</title>'
                   f'</rect><text x="{x1 + 4:.1f}" y="{yy + bar_h - 4}" font-size="10">'
                   f'{_num(v)}</text>')
    axis_y = top + bar_h * len(plot.bars) + 4
    out.append(f'<line x1="{x(lo):.1f}" x2="{x(hi):.1f}" y1="{axis_y}" y2="{axis_y}" '
               f'stroke="#999"/><text x="{x(lo):.1f}" y="{axis_y + 14}" font-size="10">'
               f'{_num(lo)}</text><text x="{x(hi):.1f}" y="{axis_y + 14}" font-size="10" '
               f'text-anchor="end">{_num(hi)}</text>')
    out.append("</svg>")
    return "".join(out)
