"""The content-addressed run cache (`.unlearnspec/` by default).

Two kinds of entries, both keyed by a hash of everything that determines them:
- JSON records (metric results): one file, written atomically (data.files.atomic_write), carrying a checksum of its payload. A truncated or corrupt file is reported,
  removed and recomputed, never trusted.
- Artifacts (checkpoint directories): built in a temp directory under a file lock, then
  renamed into place with a `.complete` marker listing each file's size and checksum; a
  directory without a valid marker is rebuilt. xdist workers and concurrent sessions share
  entries through the locks, so nothing is computed twice.
"""
from __future__ import annotations

import hashlib
import json
import logging
import shutil
from collections import Counter
from pathlib import Path
from typing import Any, Callable

from filelock import FileLock

from ..data.files import atomic_write, remove_partial_dirs, write_dir_atomic
from ..errors import RunError, disk_full
from ..faults import fault_point

log = logging.getLogger("unlearnspec")

MARKER = ".complete"
FIX = ("Free space there, or point the cache elsewhere (pytest --unlearn-cache-dir DIR, "
       "unlearnspec run --cache-dir DIR).")


def content_key(*parts: Any) -> str:
    """A stable hash of JSON-able parts (dict order does not matter)."""
    blob = json.dumps(parts, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:32]


def file_digest(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


class Cache:
    """`stats` counts hits and misses per entry kind, so a caller can show that a warm rerun
    computed nothing."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root).absolute()  # error messages name the directory in full
        self.stats: Counter[str] = Counter()

    # -- JSON records --------------------------------------------------------------------
    def _json_path(self, kind: str, key: str) -> Path:
        return self.root / kind / key[:2] / f"{key}.json"

    def get_json(self, kind: str, key: str) -> Any | None:
        path = self._json_path(kind, key)
        if not path.is_file():
            self.stats[f"{kind}.miss"] += 1
            return None
        try:
            record = json.loads(path.read_text(encoding="utf-8"))
            payload = record["payload"]
            ok = record["sha256"] == hashlib.sha256(
                json.dumps(payload, sort_keys=True).encode()).hexdigest()
        except (OSError, ValueError, KeyError, TypeError):
            ok = False
        if not ok:
            log.warning("unlearnspec: cache entry %s is corrupt; recomputing it", path)
            self.stats["corrupt"] += 1
            path.unlink(missing_ok=True)
            self.stats[f"{kind}.miss"] += 1
            return None
        self.stats[f"{kind}.hit"] += 1
        return payload

    def put_json(self, kind: str, key: str, payload: Any) -> None:
        path = self._json_path(kind, key)
        record = {
            "sha256": hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest(),
            "payload": payload,
        }
        self._atomic_write(path, json.dumps(record, sort_keys=True).encode())
        fault_point(f"record:{kind}")

    def _atomic_write(self, path: Path, data: bytes) -> None:
        try:
            atomic_write(path, data)
        except OSError as exc:
            raise RunError(f"could not write the cache entry {path} in the cache directory "
                           f"{self.root}: {exc.strerror or exc}. {FIX}") from exc

    # -- artifacts -----------------------------------------------------------------------
    def artifact_dir(self, kind: str, key: str) -> Path:
        return self.root / kind / key

    def lock(self, kind: str, key: str) -> FileLock:
        lock_path = self.root / "locks" / f"{kind}-{key}.lock"
        lock_path.parent.mkdir(parents=True, exist_ok=True)
        # a lock held by a killed process is released by the OS (flock), so never stale
        return FileLock(str(lock_path))

    def is_complete(self, path: Path) -> bool:
        marker = path / MARKER
        if not marker.is_file():
            return False
        try:
            files = json.loads(marker.read_text())
            return all((path / name).is_file() and (path / name).stat().st_size == size
                       for name, size in files.items())
        except (OSError, ValueError, AttributeError):
            return False

    def artifact(self, kind: str, key: str, build: Callable[[Path], Any]) -> Path:
        """The directory for (kind, key), built by `build(tmp_dir)` if it is not complete."""
        final = self.artifact_dir(kind, key)
        if self.is_complete(final):
            self.stats[f"{kind}.hit"] += 1
            return final
        with self.lock(kind, key):
            if self.is_complete(final):  # another worker built it while we waited
                self.stats[f"{kind}.hit"] += 1
                return final
            self.stats[f"{kind}.miss"] += 1
            for stale in remove_partial_dirs(final):
                log.info("unlearnspec: removed %s, left by an interrupted build", stale)
            if final.exists():  # incomplete (checked above, under the lock)
                shutil.rmtree(final)
            try:
                write_dir_atomic(final, lambda tmp: _build_marked(build, tmp))
            except BaseException as exc:
                why = disk_full(exc) or (exc.strerror or str(exc)
                                         if isinstance(exc, OSError) else None)
                if why is None:
                    raise
                raise RunError(f"could not write the cache artifact {final} in the cache "
                               f"directory {self.root}: {why}. Nothing incomplete was kept. "
                               f"{FIX}") from exc
        return final


def _build_marked(build: Callable[[Path], Any], tmp: Path) -> None:
    build(tmp)
    sizes = {p.name: p.stat().st_size for p in tmp.iterdir() if p.is_file()}
    (tmp / MARKER).write_text(json.dumps(sizes, sort_keys=True))
