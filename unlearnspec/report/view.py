"""What the terminal, Markdown and HTML reports show, computed once from a report's parts.

The matrix's rows are (model, transform), references first (target, retrain: models that are
not the output of an unlearning run), then subjects; each model's transforms from full
precision down to the fewest bits. A cell carries the status of the claims whose comparison
used it *on their subject*, so a reference cell that every claim reads is not painted by one
failure. Torch-free.
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any, Mapping

from ..numbers import as_float
from .status import STATUSES

FP_BITS = 32
WEIGHT_KINDS = ("code_flip_rate", "update_retention")
# the worst status wins when several claims use one cell
_BNB_BITS = {"int8": 8, "nf4": 4, "fp4": 4}


def bit_width(name: str, transform: Mapping[str, Any] | None) -> int | None:
    """Bits per weight after `name`: fp -> 32, `bits` from the config (rtn, gptq, awq), bnb
    int8 -> 8 and nf4/fp4 -> 4, a dtype cast -> 16. None when the transform does not say
    (a third-party kind without `bits`): such a transform is shown but not plotted."""
    if name == "fp":
        return FP_BITS
    if not transform:
        return None
    config = transform.get("config") or {}
    kind = transform.get("kind")
    if isinstance(config.get("bits"), int):
        return int(config["bits"])
    if kind == "bnb":
        return _BNB_BITS.get(config.get("mode"))
    if kind == "dtype":
        return 16
    return None


def worst(statuses: list[str]) -> str | None:
    return max(statuses, key=lambda s: STATUSES[s].severity if s in STATUSES else 0) \
        if statuses else None


@dataclass(frozen=True)
class Cell:
    value: float | None
    n: int | None
    status: str | None  # the worst status among claims that used this cell on their subject
    claims: tuple[int, ...] = ()  # indexes into View.claims


@dataclass
class View:
    metrics: list[str]
    rows: list[tuple[str, str]]
    cells: dict[tuple[str, str, str], Cell]  # (model, transform, metric)
    references: list[str]
    subjects: list[str]
    claims: list[dict[str, Any]]
    transforms: dict[str, Any]
    models: dict[str, Any]
    measurements: dict[str, Any]
    row_claims: dict[tuple[str, str], list[int]] = field(default_factory=dict)

    def bits(self, transform: str) -> int | None:
        return bit_width(transform, self.transforms.get(transform))

    def coverage(self, model: str, transform: str) -> float | None:
        """The share of the model's decoder weights the transform quantized (the lowest its
        measurements recorded); None at full precision or where none was recorded."""
        shares = [as_float(((m.get("coverage") or {}).get("decoder") or {}).get("share"))
                  for m in self.measurements.values()
                  if m.get("model") == model and m.get("transform") == transform]
        shares = [x for x in shares if x is not None]
        return min(shares) if shares else None


def _roles(models: Mapping[str, Any], seen: list[str], claims: list[dict[str, Any]]
           ) -> tuple[list[str], list[str]]:
    """References: models not made by an unlearning run; when the report has no model
    descriptions, the models no claim is about. `target` (a model others start `from`) first."""
    subjects_of_claims = {c.get("subject") for c in claims}
    starts = {m.get("from") for m in models.values() if isinstance(m, Mapping)}

    def is_reference(name: str) -> bool:
        desc = models.get(name)
        if isinstance(desc, Mapping) and desc.get("source"):
            return desc.get("source") != "unlearn"
        return name not in subjects_of_claims

    refs = sorted((m for m in seen if is_reference(m)), key=lambda m: (m not in starts, m))
    subs = sorted(m for m in seen if not is_reference(m))
    return refs, subs


def _of_subject(model: str, subject: Any) -> bool:
    """The claim's subject itself, or one seed of a seeded subject (`ga_klr.seed1`)."""
    return model == subject or (isinstance(subject, str) and
                                re.fullmatch(re.escape(subject) + r"\.seed\d+", model) is not None)


def build_view(report: Mapping[str, Any]) -> View:
    """The matrix and claim marks of a report dict (`build_report`'s output, or anything with
    its `models`, `transforms`, `measurements` and `claims` keys)."""
    measurements = report.get("measurements") or {}
    claims = list(report.get("claims") or [])
    metrics: list[str] = []
    values: dict[tuple[str, str, str], tuple[float | None, int | None]] = {}
    models_seen: list[str] = []
    for label, m in measurements.items():
        if m.get("without_holdout_of"):
            # measured without a relearning holdout: another sample set than the cell's, kept
            # in the claim's explanation and the JSON, never in the full-set matrix
            continue
        metric, model, transform = m.get("metric"), m.get("model"), m.get("transform") or "fp"
        if metric is None or model is None:
            continue
        if metric not in metrics:
            metrics.append(metric)
        if model not in models_seen:
            models_seen.append(model)
        result = m.get("result") or {}
        values[(model, transform, metric)] = (as_float(result.get("value")), result.get("n"))
    metrics.sort()
    transforms = report.get("transforms") or {}
    models = report.get("models") or {}
    refs, subs = _roles(models, models_seen, claims)
    used: dict[tuple[str, str, str], list[int]] = {}
    row_claims: dict[tuple[str, str], list[int]] = {}
    for i, claim in enumerate(claims):
        for label in claim.get("terms") or []:
            # a term is read through its measurement's fields; one that is not a measurement
            # of the report (a `baseline` term, a seeds' aggregate) marks no cell
            term = measurements.get(label)
            if not isinstance(term, Mapping) or term.get("without_holdout_of"):
                continue
            metric, model = term.get("metric"), term.get("model")
            transform = term.get("transform") or "fp"
            if metric is not None and model is not None and \
                    _of_subject(model, claim.get("subject")):
                used.setdefault((model, transform, metric), []).append(i)
                rows = row_claims.setdefault((model, transform), [])
                if i not in rows:
                    rows.append(i)

    def order(model: str, transform: str) -> tuple[Any, ...]:
        bits = bit_width(transform, transforms.get(transform))
        return (-(bits if bits is not None else 0), transform)

    rows: list[tuple[str, str]] = []
    for model in refs + subs:
        ts = sorted({t for (m, t, _) in values if m == model}, key=lambda t: order(model, t))
        rows.extend((model, t) for t in ts)
    cells = {}
    for key, (value, n) in values.items():
        idx = tuple(used.get(key, ()))
        cells[key] = Cell(value, n, worst([claims[i]["status"] for i in idx]), idx)
    return View(metrics, rows, cells, refs, subs, claims, transforms, models, measurements,
                row_claims)


@dataclass(frozen=True)
class Series:
    model: str
    points: tuple[tuple[int, float], ...]  # (bits, value), fp = FP_BITS


@dataclass(frozen=True)
class BitPlot:
    """One metric vs bit-width for one family of transforms (same kind and settings but the
    bit count), a line per subject, a horizontal line per reference at full precision."""

    metric: str
    family: str
    transforms: tuple[str, ...]
    xs: tuple[int, ...]
    series: tuple[Series, ...]
    reference_lines: tuple[tuple[str, float], ...]


def _family(name: str, transform: Mapping[str, Any] | None) -> str:
    config = dict((transform or {}).get("config") or {})
    config.pop("bits", None)
    config.pop("mode", None)
    return json.dumps([(transform or {}).get("kind"), config], sort_keys=True)


def bit_plots(view: View) -> tuple[list[BitPlot], list[str]]:
    """The metric-vs-bit-width plots, and a sentence for each transform left out (no
    bit-width known) so the page can say so instead of dropping it silently."""
    notes: list[str] = []
    families: dict[str, list[str]] = {}
    for transform in sorted({t for (_, t) in view.rows if t != "fp"}):
        desc = view.transforms.get(transform)
        if view.bits(transform) is None:
            notes.append(f"transform '{transform}' is not plotted: its bit-width is unknown "
                         f"(kind {(desc or {}).get('kind', 'unknown')!r}).")
            continue
        families.setdefault(_family(transform, desc), []).append(transform)
    plots: list[BitPlot] = []
    for metric in view.metrics:
        if _kind(view, metric) in WEIGHT_KINDS:
            continue  # compared with target by construction: shown per layer instead
        for members in families.values():
            plot = _bit_plot(view, metric, members)
            if plot is not None:
                plots.append(plot)
    return plots, notes


def _kind(view: View, metric: str) -> str | None:
    for m in view.measurements.values():
        if m.get("metric") == metric:
            return m.get("kind")
    return None


def _bit_plot(view: View, metric: str, members: list[str]) -> BitPlot | None:
    series = []
    for model in view.subjects:
        pts = []
        for t in ["fp", *members]:
            cell = view.cells.get((model, t, metric))
            if cell is not None and cell.value is not None and cell.value == cell.value:
                pts.append((view.bits(t) or FP_BITS, cell.value))
        if any(b != FP_BITS for b, _ in pts):
            series.append(Series(model, tuple(sorted(pts))))
    if not series:
        return None
    refs = []
    for model in view.references:
        cell = view.cells.get((model, "fp", metric))
        if cell is not None and cell.value is not None and cell.value == cell.value:
            refs.append((model, cell.value))
    xs = sorted({b for s in series for b, _ in s.points})
    kind = (view.transforms.get(members[0]) or {}).get("kind", "?")
    return BitPlot(metric, str(kind), tuple(sorted(members)), tuple(xs), tuple(series),
                   tuple(refs))


def natural_key(name: str) -> list[Any]:
    """'layers.2' before 'layers.10'."""
    return [(0, int(p), "") if p.isdigit() else (1, 0, p) for p in re.split(r"(\d+)", name)]


@dataclass(frozen=True)
class LayerPlot:
    label: str
    metric: str
    kind: str
    bars: tuple[tuple[str, float], ...]


_LAYER_KEYS = {
    "code_flip_rate": ("flip_rate", "code_flip_rate", "rate", "flipped_fraction", "value"),
    "update_retention": ("gamma", "retention", "update_retention", "value"),
}


def layer_value(kind: str, entry: Any) -> float | None:
    """The number to plot for one tensor: the entry itself, or its field named after the
    metric (flip_rate / gamma ...), else its first numeric field."""
    direct = as_float(entry)
    if direct is not None:
        return direct
    if not isinstance(entry, Mapping):
        return None
    for key in _LAYER_KEYS.get(kind, ("value",)):
        if as_float(entry.get(key)) is not None:
            return as_float(entry.get(key))
    for value in entry.values():
        if as_float(value) is not None:
            return as_float(value)
    return None


def layer_plots(view: View) -> list[LayerPlot]:
    """A bar per tensor for each weight-space measurement with `details["per_layer"]`."""
    plots = []
    for label, m in view.measurements.items():
        per_layer = ((m.get("result") or {}).get("details") or {}).get("per_layer")
        if not isinstance(per_layer, Mapping) or not per_layer:
            continue
        kind = str(m.get("kind") or "")
        bars = []
        for name in sorted(per_layer, key=natural_key):
            v = layer_value(kind, per_layer[name])
            if v is not None:
                bars.append((str(name), v))
        if bars:
            plots.append(LayerPlot(label, str(m.get("metric")), kind, tuple(bars)))
    return plots
