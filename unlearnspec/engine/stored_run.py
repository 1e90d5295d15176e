"""Regression testing against a stored run (`--unlearn-save-baseline` / `--unlearn-baseline`).

A stored-run file holds, per measurement label (`knowmem_forget[ga_klr @ rtn4]`), the value
and the *identity* of the metric (kind, options, data content). A claim's `baseline` term
reads the same label; a value whose identity differs — other data, other metric options — is
refused rather than compared, and so is a file saved from another spec. (The spec word and
the options say "baseline"; the code says stored run, so that it is not confused with a
term's full-precision value, its `fp_reference`.)
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Iterable, Mapping

from ..data.files import atomic_write
from ..errors import RunError
from .measurement import Measurement

FORMAT = 1


def stored_run_from_records(records: Iterable[Mapping[str, Any]]) -> dict[str, Any]:
    specs: set[str] = set()
    values: dict[str, Any] = {}
    for rec in records:
        specs.add(Path(rec["spec"]).name)
        for label, m in rec.get("measurements", {}).items():
            values[label] = {"value": m["result"]["value"], "n": m["result"]["n"],
                             "identity": m.get("identity")}
    return {"unlearnspec_baseline": FORMAT, "specs": sorted(specs), "values": values}


def save_stored_run(records: Iterable[Mapping[str, Any]], path: str | Path) -> Path:
    return atomic_write(path, json.dumps(stored_run_from_records(records), indent=1,
                                         sort_keys=True))


def load_stored_run(path: str | Path, spec_path: Path) -> dict[str, Any]:
    path = Path(path)
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        raise RunError(f"baseline file {path} does not exist; write one on the main branch "
                       f"with --unlearn-save-baseline {path}") from None
    except ValueError as exc:
        raise RunError(f"baseline file {path} is not valid JSON: {exc}") from exc
    if not isinstance(data, dict) or data.get("unlearnspec_baseline") != FORMAT:
        raise RunError(f"{path} is not an unlearnspec baseline (format {FORMAT}); write one "
                       f"with --unlearn-save-baseline")
    if spec_path.name not in data.get("specs", []):
        raise RunError(f"baseline {path} was saved from {', '.join(data.get('specs', []))}, "
                       f"not {spec_path.name}: a baseline from another spec is not comparable")
    return data


def stored_value(stored: Mapping[str, Any] | None, m: Measurement, identity: str) -> float:
    """`m`'s value in the stored run; `identity`: this run's `metric_identity` of `m.metric`,
    which the stored value must share to be compared."""
    if stored is None:
        raise RunError(f"claim uses `baseline` but no baseline was given: run with "
                       f"--unlearn-baseline FILE (made by --unlearn-save-baseline FILE)")
    entry = stored["values"].get(m.label())
    if entry is None:
        raise RunError(f"the baseline has no {m.label()}: regenerate it on the main branch "
                       f"with --unlearn-save-baseline")
    if entry.get("identity") != identity:
        raise RunError(f"the baseline's {m.label()} was measured with other data or metric "
                       f"options than this run's; it is not comparable. Regenerate the "
                       f"baseline from the same spec and data.")
    if entry.get("n", 0) <= 0:
        raise RunError(f"the baseline's {m.label()} was computed over zero samples")
    return float(entry["value"])
