"""Reading local data files: .txt, .json, .jsonl, .parquet (and .csv for MMLU's release),
and the project's one way of writing a file or a directory atomically.

Every failure is a RunError naming the file and what was expected. Parquet needs pyarrow
(pulled in by the `hub` extra); without it, a MissingExtraError names that extra.
"""
from __future__ import annotations

import csv
import hashlib
import json
import os
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


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def atomic_write(path: str | Path, data: str | bytes) -> Path:
    """Write `data` (text as UTF-8) to `path` through a hidden temp file in the same folder,
    fsynced, then renamed over `path`: a reader, a crash or a concurrent writer never sees
    half a file, and nothing of the temp file stays behind on failure."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".tmp-{path.name}-")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data.encode("utf-8") if isinstance(data, str) else data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    _fsync_dir(path.parent)
    return path


def _partial_prefix(final: Path) -> str:
    # a hidden name that starts with the final one's, so remove_partial_dirs(final) finds it;
    # a final that is itself a partial build (.tmp-KEY-x) nests under that build's pattern
    hidden = final.name if final.name.startswith(".") else f".tmp-{final.name}"
    return f"{hidden}-"


def remove_partial_dirs(final: Path) -> list[Path]:
    """Remove the temp directories that interrupted `write_dir_atomic(final, ...)` calls left
    beside `final`. Call it only while no one else can be building `final` (under its lock)."""
    stale = sorted(final.parent.glob(f"{_partial_prefix(final)}*"))
    for p in stale:
        shutil.rmtree(p, ignore_errors=True)
    return stale


def write_dir_atomic(final: Path, write: Callable[[Path], None]) -> Path:
    """`final`, built by `write(tmp)` into an empty hidden sibling directory and renamed into
    place: readers never see a half-written directory, and on failure the sibling is removed.
    `final` must not exist unless another process may be publishing the same content: when
    the rename finds `final` already there, that copy wins and this one is dropped."""
    final = Path(final)
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=final.parent, prefix=_partial_prefix(final)))
    try:
        write(tmp)
        os.chmod(tmp, 0o755)  # mkdtemp makes it private; a cache may be shared
        try:
            os.replace(tmp, final)
        except OSError:
            if not final.is_dir():
                raise
        _fsync_dir(final.parent)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return final


def build_dir_once(out: Path, write: Callable[[Path], None]) -> Path:
    """`out`, built by `write(tmp)` (see write_dir_atomic) unless it exists; of two processes
    building it at once the first rename wins (both write the same content)."""
    return out if out.is_dir() else write_dir_atomic(out, write)


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


def split_files(root: Path, subset: str, split: str) -> list[Path]:
    """The files holding one split of a hub dataset's subset (`SUBSET/SPLIT-*.parquet`, or
    `.parquet`/`.jsonl`/`.json`); a sharded split (`SPLIT-00000-of-00002.parquet`, ...) gives
    all its shards in order, and a `root` that is a file is that file. [] when none is there."""
    if root.is_file():
        return [root]
    for pattern in (f"{split}-*.parquet", f"{split}.parquet", f"{split}-*.jsonl",
                    f"{split}.jsonl", f"{split}.json"):
        found = sorted((root / subset).glob(pattern))
        if found:
            return found
    return []
