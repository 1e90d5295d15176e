"""The machine-readable record of a run (`--unlearn-report out.json`), and merging CI shards.

The file is strict JSON (non-finite numbers are the strings "nan", "inf", "-inf") with sorted
keys, so the same records give byte-identical files except `started` and `finished`. Its
shape is `schema.REPORT_SCHEMA`, documented field by field in docs/report.md. Torch-free:
package versions come from installed metadata; CUDA devices are listed only when torch is
already imported (a report never pays for importing it).
"""
from __future__ import annotations

import hashlib
import json
import os
import platform
import sys
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path
from typing import Any, Iterable, Mapping

from ..data.files import atomic_write
from .collect import Collected, ReportError, collect, jsonable
from .status import STATUSES

SCHEMA_VERSION = 1
PACKAGES = ("unlearnspec", "torch", "transformers", "tokenizers", "bitsandbytes")
OUTCOMES = ("passed", "failed", "xfailed", "xpassed")


def _iso(when: Any) -> str:
    """Seconds since the epoch, a datetime or an ISO string -> ISO 8601 in UTC."""
    if isinstance(when, str):
        return when
    if isinstance(when, (int, float)):
        when = datetime.fromtimestamp(float(when), tz=timezone.utc)
    if isinstance(when, datetime):
        if when.tzinfo is None:
            when = when.astimezone()
        return when.astimezone(timezone.utc).isoformat(timespec="milliseconds")
    raise TypeError(f"a timestamp must be seconds, a datetime or a string, not {when!r}")


def _sha256(path: Path) -> str | None:
    try:
        return hashlib.sha256(path.read_bytes()).hexdigest()
    except OSError:
        return None


def package_versions() -> dict[str, str | None]:
    """Installed versions (None: not installed) and the Python version."""
    out: dict[str, str | None] = {}
    for name in PACKAGES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = None
    out["python"] = platform.python_version()
    return out


def environment() -> dict[str, Any]:
    """`cuda_devices`: the GPUs torch sees ([] for none); null when torch is not installed.
    `cpu` and `cpu_kernels` (unlearnspec.machine): which CPU, and which of torch's vector
    kernels, the numbers come from.
    (Asked even when this process never imported torch, e.g. xdist's controller, so a
    serial and a distributed run of one spec report the same environment.)"""
    devices: list[str] | None = None
    try:
        import torch
    except ImportError:
        torch = None
    if torch is not None:
        try:
            devices = ([torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]
                       if torch.cuda.is_available() else [])
        except Exception:  # a broken driver must not lose the report
            devices = None
    from ..machine import describe

    return {"platform": platform.platform(), "machine": platform.machine(),
            "python_implementation": platform.python_implementation(),
            "cpu_count": os.cpu_count(), "cuda_devices": devices, **describe()}


def summarize(claims: Iterable[Mapping[str, Any]]) -> dict[str, Any]:
    outcomes = {k: 0 for k in OUTCOMES}
    statuses = {k: 0 for k in STATUSES}
    work: dict[str, int] = {}
    total = 0
    for c in claims:
        total += 1
        if c.get("outcome") in outcomes:
            outcomes[c["outcome"]] += 1
        statuses[c["status"]] = statuses.get(c["status"], 0) + 1
        for k, v in (c.get("counts") or {}).items():
            work[k] = work.get(k, 0) + int(v)
    return {"claims": total, "outcomes": outcomes, "statuses": statuses,
            "work": dict(sorted(work.items()))}


def _assemble(parts: Collected, specs: list[dict[str, Any]], started: str, finished: str,
              packages: dict[str, Any], env: dict[str, Any], extra: Mapping[str, Any] | None,
              shards: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    transforms = {}
    from .view import bit_width

    for name, t in parts.transforms.items():
        transforms[name] = {**t, "bits": bit_width(name, t)}
    report = {
        "schema_version": SCHEMA_VERSION,
        "tool": "unlearnspec",
        "started": started, "finished": finished,
        "specs": specs, "packages": packages, "environment": env,
        "models": parts.models, "transforms": transforms,
        "measurements": parts.measurements, "claims": parts.claims,
        "summary": summarize(parts.claims),
        "extra": jsonable(dict(extra or {})),
    }
    if shards:
        report["shards"] = shards
    return report


def build_report(records: Iterable[Mapping[str, Any]], *, spec_paths: Iterable[Any],
                 started: Any, finished: Any, extra: Mapping[str, Any] | None = None
                 ) -> dict[str, Any]:
    """The whole run as a JSON-able dict (see docs/report.md). `records` in any order.
    Raises ReportError when two records give one name two different contents."""
    specs = [{"path": str(p), "sha256": _sha256(Path(p))}
             for p in sorted({str(Path(p)) for p in spec_paths})]
    return _assemble(collect(records), specs, _iso(started), _iso(finished),
                     package_versions(), environment(), extra)


def dumps(report: Mapping[str, Any]) -> str:
    return json.dumps(jsonable(report), indent=2, sort_keys=True, allow_nan=False,
                      ensure_ascii=False) + "\n"


def write_report(report: Mapping[str, Any], path: Path | str) -> Path:
    """Write atomically (a temporary file in the same folder, then a rename): a reader or a
    crash never sees half a report."""
    return atomic_write(path, dumps(report))


def load_report(path: Path | str) -> dict[str, Any]:
    """Read a report, refusing files that are not one or that a newer unlearnspec wrote."""
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ReportError(f"{path}: no such report file; write one with "
                          f"`pytest --unlearn-report {path}`.") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ReportError(f"{path}: not a readable JSON report ({exc}); pass the file that "
                          f"`--unlearn-report` wrote.") from None
    version = data.get("schema_version") if isinstance(data, dict) else None
    if version is None:
        raise ReportError(f"{path}: not an unlearnspec run report (no 'schema_version'); "
                          f"pass the file that `--unlearn-report` wrote.")
    if version != SCHEMA_VERSION:
        newer = isinstance(version, int) and version > SCHEMA_VERSION
        fix = ("upgrade unlearnspec to read it" if newer else
               "rewrite it with this unlearnspec (rerun with --unlearn-report)")
        raise ReportError(f"{path}: report schema_version {version!r}, but this unlearnspec "
                          f"reads version {SCHEMA_VERSION}; {fix}.")
    return data


def merge_reports(reports: list[Mapping[str, Any]], sources: list[str] | None = None
                  ) -> dict[str, Any]:
    """One report from CI shards of one run: the union of their claims and measurements.
    The same measurement label with a different key or value, the same claim item twice with
    different results, or one spec path with two contents is a ReportError naming both
    (by `sources`, the shards' file names, when given). `extra` keeps the fields all shards
    agree on; each shard's own times, packages, environment and extra are kept in `shards`."""
    if not reports:
        raise ReportError("no reports to merge: pass at least one RUN.json.")
    if len(reports) == 1:
        return dict(reports[0])
    names = list(sources) if sources else [f"report #{i + 1}" for i in range(len(reports))]
    parts = Collected()
    seen: dict[str, dict[str, str]] = {"m": {}, "t": {}, "x": {}, "c": {}, "s": {}}
    from .collect import _put

    specs: dict[str, Any] = {}
    claims: dict[str, Any] = {}
    for name, r in zip(names, reports):
        for s in r.get("specs") or []:
            _put(specs, s["path"], s, "spec file", name, seen["s"])
        for k, v in (r.get("models") or {}).items():
            _put(parts.models, k, v, "model", name, seen["m"], ("key",))
        for k, v in (r.get("transforms") or {}).items():
            _put(parts.transforms, k, {x: y for x, y in v.items() if x != "bits"},
                 "transform", name, seen["t"])
        for k, v in (r.get("measurements") or {}).items():
            _put(parts.measurements, k, v, "measurement", name, seen["x"], ("key", "result"))
        for c in r.get("claims") or []:
            _put(claims, c["nodeid"], c, "claim item", name, seen["c"],
                 ("outcome", "verdict", "terms"))
    parts.models = dict(sorted(parts.models.items()))
    parts.transforms = dict(sorted(parts.transforms.items()))
    parts.measurements = dict(sorted(parts.measurements.items()))
    parts.claims = sorted(claims.values(), key=lambda c: (str(c["spec"]), c["line"] or 0,
                                                          str(c["subject"]), c["nodeid"]))
    shards = [{"source": n, "started": r.get("started"), "finished": r.get("finished"),
               "packages": r.get("packages"), "environment": r.get("environment"),
               "extra": r.get("extra") or {}} for n, r in zip(names, reports)]
    first = dict(reports[0].get("extra") or {})
    extra = {k: v for k, v in first.items()
             if all((r.get("extra") or {}).get(k, object()) == v for r in reports)}
    return _assemble(parts, [specs[k] for k in sorted(specs)],
                     min(str(r.get("started")) for r in reports),
                     max(str(r.get("finished")) for r in reports),
                     dict(reports[0].get("packages") or {}),
                     dict(reports[0].get("environment") or {}), extra, shards)
