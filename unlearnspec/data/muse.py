"""A corpus in MUSE's data layout, read from a local directory.

    ROOT/raw/forget.json | raw/forget*.txt        texts to unlearn (list of strings / files)
    ROOT/raw/retain.json | raw/retain*.txt        texts to keep
    ROOT/raw/retain1.* , raw/retain2.*            MUSE's own layout (load_data.py): retain1 is
                                                  the retain set trained on, retain2 is not
    ROOT/verbmem/forget.json                      [{"prompt": ..., "gt": ...}]
    ROOT/knowmem/{forget,retain}_qa.json          [{"question": ..., "answer": ...}]
    ROOT/knowmem/{forget,retain}_qa_icl.json      few-shot pairs, same shape
    ROOT/privleak/{forget,retain,holdout}.json    [str, ...]

A missing or malformed file is a `RunError` naming the file and what shape was expected.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

from ..errors import RunError


def _read_json(path: Path) -> Any:
    if not path.is_file():
        raise RunError(f"missing data file {path}: the corpus must follow MUSE's layout "
                       f"(see unlearnspec.data.muse)")
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise RunError(f"{path}:{exc.lineno}:{exc.colno}: invalid JSON: {exc.msg}") from exc


def _records(path: Path, keys: tuple[str, ...]) -> list[dict[str, str]]:
    data = _read_json(path)
    if not isinstance(data, list):
        raise RunError(f"{path}: expected a JSON list of objects with keys {keys}")
    for i, rec in enumerate(data):
        if not isinstance(rec, dict) or any(not isinstance(rec.get(k), str) for k in keys):
            raise RunError(f"{path}: record {i} must be an object with string keys {keys}, "
                           f"got {str(rec)[:80]}")
    return [{k: rec[k] for k in keys} for rec in data]


def _strings(path: Path) -> list[str]:
    data = _read_json(path)
    if not isinstance(data, list) or any(not isinstance(x, str) for x in data):
        raise RunError(f"{path}: expected a JSON list of strings")
    return data


def is_muse_layout(root: Path) -> bool:
    """A directory as MUSE's load_data.py writes it (or the hub converter, which keeps
    retain2): it has raw/retain1.* or raw/retain2.*."""
    raw = Path(root) / "raw"
    return any((raw / f"{name}.{ext}").is_file()
               for name in ("retain1", "retain2") for ext in ("json", "txt"))


@dataclass(frozen=True)
class Corpus:
    root: Path

    def raw(self, split: str) -> list[str]:
        """Training texts for `split` ('forget' or 'retain'): raw/<split>.json (a list of
        documents) or every raw/<split>*.txt file (one document each, sorted by name). On a
        MUSE directory the retain split is retain1 only (raw/retain1.json, raw/retain.json
        or raw/retain1.txt): retain2 holds the utility QA's source and is never trained on."""
        return self.raw_with_files(split)[0]

    def raw_with_files(self, split: str) -> tuple[list[str], tuple[str, ...]]:
        """`raw(split)` and the files it read, relative to the root."""
        raw = self.root / "raw"
        muse_retain = split == "retain" and is_muse_layout(self.root)
        for name in (["retain1", "retain"] if muse_retain else [split]):
            js = raw / f"{name}.json"
            if js.is_file():
                return _strings(js), (f"raw/{name}.json",)
        if muse_retain:
            files = [raw / "retain1.txt"] if (raw / "retain1.txt").is_file() else []
        else:
            files = sorted(raw.glob(f"{split}*.txt"))
        if not files:
            expected = "retain1.json, retain.json or retain1.txt (a MUSE directory)" \
                if muse_retain else f"{split}.json or {split}*.txt"
            raise RunError(f"no training texts for '{split}' in {raw}: expected {expected}")
        return ([f.read_text(encoding="utf-8") for f in files],
                tuple(f"raw/{f.name}" for f in files))

    def verbmem(self, split: str = "forget") -> list[dict[str, str]]:
        return _records(self.root / "verbmem" / f"{split}.json", ("prompt", "gt"))

    def knowmem(self, split: str = "forget") -> list[dict[str, str]]:
        return _records(self.root / "knowmem" / f"{split}_qa.json", ("question", "answer"))

    def knowmem_icl(self, split: str = "forget") -> list[dict[str, str]]:
        return _records(self.root / "knowmem" / f"{split}_qa_icl.json", ("question", "answer"))

    def privleak(self, split: str) -> list[str]:
        return _strings(self.root / "privleak" / f"{split}.json")

    @cached_property
    def fingerprint(self) -> str:
        """A content hash of every file in the corpus (cache keys depend on the data)."""
        import hashlib

        h = hashlib.sha256()
        for f in sorted(p for p in self.root.rglob("*") if p.is_file()):
            h.update(str(f.relative_to(self.root)).encode())
            h.update(b"\0")
            h.update(f.read_bytes())
        return h.hexdigest()
