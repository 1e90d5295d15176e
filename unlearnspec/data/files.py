"""Reading local data files: .txt, .json, .jsonl, .parquet (and .csv for MMLU's release).

Every failure is a RunError naming the file and what was expected. Parquet needs pyarrow
(pulled in by the `hub` extra); without it, a MissingExtraError names that extra.
"""
from __future__ import annotations

import csv
import hashlib
import json
import shutil
import tempfile
from pathlib import Path
from typing import Any, Callable

from ..errors import MissingExtraError, RunError

SUFFIXES = (".txt", ".json", ".jsonl", ".parquet", ".csv")


def _check_file(path: Path) -> None:
    if not path.is_file():
        raise RunError(f"data file {path} does not exist (expected one of "
                       f"{', '.join(SUFFIXES)})")
    if path.stat().st_size == 0:
        raise RunError(f"data file {path} is empty")


def _json_lines(path: Path, text: str | None = None) -> list[Any]:
    text = path.read_text(encoding="utf-8") if text is None else text
    rows = []
    for lineno, line in enumerate(text.splitlines(), 1):
        if line.strip():
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError as exc:
                raise RunError(f"{path}:{lineno}: invalid JSON line: {exc.msg}") from exc
    return rows


def json_or_lines(path: Path) -> list[Any]:
    """A `.json` file that may hold JSON lines despite its suffix, as the hub stores some
    datasets' (TOFU's): a JSON list (or one object) first, else one record per line."""
    text = path.read_text(encoding="utf-8")
    try:
        data = json.loads(text)
    except json.JSONDecodeError:
        return _json_lines(path, text)
    return data if isinstance(data, list) else [data]


def tree_digest(root: Path) -> str:
    """A short content hash of every file below `root` (relative names and bytes)."""
    h = hashlib.sha256()
    for f in sorted(p for p in root.rglob("*") if p.is_file()):
        h.update(str(f.relative_to(root)).encode() + b"\0" + f.read_bytes())
    return h.hexdigest()[:16]


def build_dir_once(out: Path, write: Callable[[Path], None]) -> Path:
    """`out`, built by `write(tmp)` in a hidden sibling and renamed into place unless it
    exists: readers never see a half-written directory, and of two processes building it at
    once the first rename wins (both write the same content)."""
    if out.is_dir():
        return out
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=out.parent, prefix=f".tmp-{out.name}-"))
    try:
        write(tmp / "c")
        try:
            (tmp / "c").rename(out)
        except OSError:  # another process won the race; its copy is identical
            pass
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return out


def _parquet(path: Path) -> list[Any]:
    try:
        import pyarrow.parquet as pq
    except ImportError:
        raise MissingExtraError(f"reading {path.name} (parquet)", "hub", "pyarrow") from None
    return pq.read_table(path).to_pylist()


def read_records(path: str | Path) -> list[Any]:
    """The records of a file: a JSON list (or an object whose single list-valued key holds
    them, e.g. TriviaQA's {"Data": [...]}), JSON lines, parquet rows, CSV rows (lists, no
    header: MMLU's release), or for .txt the whole file as one string."""
    path = Path(path)
    _check_file(path)
    suffix = path.suffix.lower()
    if suffix == ".txt":
        return [path.read_text(encoding="utf-8")]
    if suffix == ".jsonl":
        return _json_lines(path)
    if suffix == ".parquet":
        return _parquet(path)
    if suffix == ".csv":
        with path.open(newline="", encoding="utf-8") as fh:
            return [row for row in csv.reader(fh) if row]
    if suffix == ".json":
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except json.JSONDecodeError as exc:
            raise RunError(f"{path}:{exc.lineno}:{exc.colno}: invalid JSON: {exc.msg}") from exc
        if isinstance(data, dict):
            lists = [v for v in data.values() if isinstance(v, list)]
            if len(lists) == 1:
                return lists[0]
        if not isinstance(data, list):
            raise RunError(f"{path}: expected a JSON list of records")
        return data
    raise RunError(f"{path}: unsupported file type '{suffix}' (use one of {', '.join(SUFFIXES)})")


def read_texts(path: str | Path, field: str = "text") -> list[str]:
    """Documents from a file or a directory of files: strings, or records' `field`. A
    directory reads every supported file in it, sorted by name."""
    path = Path(path)
    if path.is_dir():
        files = sorted(p for p in path.iterdir() if p.suffix.lower() in SUFFIXES)
        if not files:
            raise RunError(f"directory {path} holds no {', '.join(SUFFIXES)} files")
        return [t for f in files for t in read_texts(f, field)]
    texts = []
    for i, rec in enumerate(read_records(path)):
        value = rec.get(field) if isinstance(rec, dict) else rec
        if not isinstance(value, str):
            raise RunError(f"{path}: record {i} is not a string and has no string "
                           f"'{field}' field")
        texts.append(value)
    if not texts:
        raise RunError(f"{path} holds no documents")
    return texts
