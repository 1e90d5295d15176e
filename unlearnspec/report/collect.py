"""From the plugin's per-claim records to the deduplicated parts every report shows.

A record repeats the models, transforms and measurements it touched; a session of many claims
repeats them many times. `collect` keeps each once (by model name, transform name, measurement
label) and refuses two different things under one name: a report that silently showed one of
them would show the wrong number for the other. Torch-free.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Iterable, Mapping

from ..errors import UnlearnSpecError
from ..numbers import format_number


class ReportError(UnlearnSpecError):
    """A report could not be built, read or merged (conflicting shards, a wrong schema)."""


@dataclass
class Collected:
    """The parts of a run, each once: `claims` are the slim claim entries of the report."""

    models: dict[str, Any] = field(default_factory=dict)
    transforms: dict[str, Any] = field(default_factory=dict)
    measurements: dict[str, Any] = field(default_factory=dict)
    claims: list[dict[str, Any]] = field(default_factory=list)


def jsonable(value: Any) -> Any:
    """`value` as strict JSON: NaN and ±inf become the strings "nan", "inf", "-inf" (JSON has
    no such numbers and browsers reject them); tuples become lists; keys become strings."""
    kind = type(value)  # exact types first: a report holds ~10^6 values, typing's isinstance
    if kind is str or kind is int or kind is bool or value is None:  # checks cost ~5 µs each
        return value
    if kind is dict:
        return {str(k): jsonable(v) for k, v in value.items()}
    if kind is list:
        return [jsonable(v) for v in value]
    if isinstance(value, float):
        if math.isnan(value):
            return "nan"
        if math.isinf(value):
            return "inf" if value > 0 else "-inf"
        return value
    if isinstance(value, Mapping):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    if value is None or isinstance(value, (str, int, bool)):
        return value
    return str(value)


def fmt_margin(verdict: Mapping[str, Any] | None) -> str:
    """'-1.1' or, for a claim decided on a confidence interval, '-1.1, 95% [-4.2, 2.5]';
    over seeds, the range of their margins too ('...; 3 seeds -1.1 to 2.0'); '' without a
    verdict."""
    if not verdict or verdict.get("margin") is None:
        return ""
    text = format_number(verdict["margin"])
    iv = verdict.get("interval")
    if isinstance(iv, Mapping):
        text += f", {100 * float(iv['confidence']):.0f}% [{format_number(iv['low'])}, {format_number(iv['high'])}]"
    seeds = verdict.get("seeds")
    if isinstance(seeds, list) and seeds:  # the spread over a seeded subject's seeds
        margins = [float(s["margin"]) for s in seeds]
        text += f"; {len(seeds)} seeds {format_number(min(margins))} to {format_number(max(margins))}"
    return text




def status_of(record: Mapping[str, Any]) -> str:
    """pass / fail / inconclusive / error / xfail / xpass. A failed item without a verdict
    could not be decided (a metric that could not be computed): that is an `error`, never a
    pass. A claim whose confidence interval straddles its comparison is `inconclusive`
    whatever the exit-code policy made of the pytest item (failed, or passed under
    --unlearn-inconclusive=pass)."""
    outcome = record.get("outcome")
    verdict = record.get("verdict")
    if verdict is not None and verdict.get("outcome") == "inconclusive" and \
            outcome in ("passed", "failed", "inconclusive"):
        return "inconclusive"
    if outcome == "xfailed":
        return "xfail"
    if outcome == "xpassed":
        return "xpass"
    if outcome == "passed" and verdict is not None:
        return "pass"
    if outcome == "failed" and verdict is not None and not verdict.get("passed", False):
        return "fail"
    return "error"


def terms_of(record: Mapping[str, Any]) -> list[str]:
    """The measurement labels the claim's comparison names (not the full-precision references the plugin
    adds for the explanation). Read from `verdict["terms"]` when present, else from the
    explanation's first line (the comparison as measured); all measurements when neither
    says (an error before the verdict)."""
    cells = sorted(record.get("measurements") or {})
    verdict = record.get("verdict") or {}
    terms = verdict.get("terms")
    if isinstance(terms, list) and terms:
        return sorted({t[0] if isinstance(t, (list, tuple)) else str(t) for t in terms})
    explanation = verdict.get("explanation") or ""
    first = explanation.splitlines()[0] if explanation else ""
    found = [c for c in cells if _names(first, c)]
    return found or cells


_NAME_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.-")


def _names(text: str, label: str) -> bool:
    """Whether `text` names the measurement `label` as a whole term (not as the tail of a
    longer metric name: `x_knowmem[m]` does not name `knowmem[m]`)."""
    start = text.find(label)
    while start >= 0:
        if start == 0 or text[start - 1] not in _NAME_CHARS:
            return True
        start = text.find(label, start + 1)
    return False


def claim_entry(record: Mapping[str, Any]) -> dict[str, Any]:
    """A record without the parts `collect` keeps once: measurements become their labels."""
    keep = ("nodeid", "outcome", "claim", "subject", "assert", "spec", "line", "xfail",
            "verdict", "counts")
    entry = {k: jsonable(record.get(k)) for k in keep}
    entry["counts"] = entry["counts"] or {}
    entry["status"] = status_of(record)
    entry["cells"] = sorted(record.get("measurements") or {})
    entry["terms"] = terms_of(record)
    if entry["nodeid"] is None:
        entry["nodeid"] = f"{record.get('spec')}::{record.get('claim')}[{record.get('subject')}]"
    return entry


def _put(into: dict[str, Any], name: str, value: Any, what: str, where: str,
         seen: dict[str, str], same: tuple[str, ...] | None = None) -> None:
    value = jsonable(value)
    if name not in into:
        into[name] = value
        seen[name] = where
        return
    old = into[name]
    a = {k: old.get(k) for k in same} if same else old
    b = {k: value.get(k) for k in same} if same else value
    if a != b:
        raise ReportError(
            f"{what} '{name}' differs between {seen[name]} and {where} "
            f"({_short(a)} vs {_short(b)}). Two runs reuse one name for different things: "
            f"give the models distinct names across spec files, or write one report per spec.")


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 160 else text[:157] + "..."


def collect(records: Iterable[Mapping[str, Any]]) -> Collected:
    """Merge `records` (any order: xdist delivers them shuffled) into one `Collected`, sorted
    so the same records always give the same output."""
    out = Collected()
    seen: dict[str, dict[str, str]] = {"m": {}, "t": {}, "x": {}}
    for record in records:
        where = str(record.get("nodeid") or f"{record.get('claim')}[{record.get('subject')}]")
        for name, model in (record.get("models") or {}).items():
            _put(out.models, name, model, "model", where, seen["m"], ("key",))
        for name, transform in (record.get("transforms") or {}).items():
            _put(out.transforms, name, transform, "transform", where, seen["t"])
        for label, m in (record.get("measurements") or {}).items():
            _put(out.measurements, label, m, "measurement", where, seen["x"], ("key", "result"))
        out.claims.append(claim_entry(record))
    out.models = dict(sorted(out.models.items()))
    out.transforms = dict(sorted(out.transforms.items()))
    out.measurements = dict(sorted(out.measurements.items()))
    out.claims.sort(key=lambda c: (str(c["spec"]), c["line"] or 0, str(c["subject"]),
                                   c["nodeid"]))
    return out
