"""The run cache under faults: a process killed while holding a lock or half-way through a
build, a disk that fills up, writers racing on one record. Each ends in either a correct
entry or a clear error, never a corrupt entry that a later run trusts."""
from __future__ import annotations

import errno
import json
import multiprocessing as mp
import os
import signal
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from unlearnspec.data import files as files_module
from unlearnspec.engine.cache import Cache, content_key
from unlearnspec.errors import RunError, disk_full

KEY = content_key("robustness", "artifact")

HOLD_LOCK = """
import sys, time
from pathlib import Path
from unlearnspec.engine.cache import Cache

def build(out):
    (out / "half.bin").write_bytes(b"x" * 100)
    print("building", flush=True)
    time.sleep(600)

Cache(Path(sys.argv[1])).artifact("models", sys.argv[2], build)
"""


def build_ok(out: Path) -> None:
    (out / "w.safetensors").write_bytes(b"weights")


def test_killed_builder_leaves_no_stale_lock_and_its_debris_is_removed(tmp_path: Path) -> None:
    root = tmp_path / "cache"
    proc = subprocess.Popen([sys.executable, "-c", HOLD_LOCK, str(root), KEY],
                            stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "building"  # holds the lock, mid-build
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    debris = list((root / "models").glob(".tmp-*"))
    assert debris and (root / "locks" / f"models-{KEY}.lock").exists()

    # the next build must not wait for the dead process; a thread so that a hang fails the
    # test instead of hanging the suite
    done: list[Path] = []
    worker = threading.Thread(
        target=lambda: done.append(Cache(root).artifact("models", KEY, build_ok)), daemon=True)
    worker.start()
    worker.join(60)
    assert done, "the artifact lock of a killed process blocked the next build"
    assert Cache(root).is_complete(done[0])
    assert (done[0] / "w.safetensors").read_bytes() == b"weights"
    assert not (done[0] / "half.bin").exists()
    assert not list((root / "models").glob(".tmp-*"))  # the dead build's temp dir is gone


def enospc(*args: object, **kwargs: object) -> None:
    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


def test_full_disk_on_a_record_write_is_a_clear_error_and_leaves_nothing(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cache = Cache(tmp_path / "cache")
    # test double: the disk fills up when the record is flushed to it
    monkeypatch.setattr(files_module.os, "fsync", enospc)
    with pytest.raises(RunError) as info:
        cache.put_json("metrics", KEY, {"value": 1.0, "n": 3})
    monkeypatch.undo()
    message = str(info.value)
    assert str(tmp_path / "cache") in message
    assert "No space left on device" in message
    assert "--unlearn-cache-dir" in message and "--cache-dir" in message
    assert not [p for p in (tmp_path / "cache").rglob("*") if p.is_file()]
    assert cache.get_json("metrics", KEY) is None and cache.stats["corrupt"] == 0


@pytest.mark.parametrize("failure", ["oserror", "safetensors"])
def test_full_disk_during_an_artifact_build_is_a_clear_error_and_leaves_nothing(
        tmp_path: Path, failure: str) -> None:
    """Test doubles for the writer hitting a full disk: an OSError(ENOSPC) as Python's own
    file writes raise it, and safetensors' SafetensorError, which is not an OSError and
    carries the errno only in its message."""
    from safetensors import SafetensorError

    def build(out: Path) -> None:
        (out / "config.json").write_text("{}")
        if failure == "oserror":
            enospc()
        raise SafetensorError("Error while serializing: I/O error: No space left on device "
                              "(os error 28)")

    root = tmp_path / "cache"
    with pytest.raises(RunError) as info:
        Cache(root).artifact("models", KEY, build)
    message = str(info.value)
    assert "no space left on device" in message
    assert str(root) in message and "--unlearn-cache-dir" in message
    assert not Cache(root).artifact_dir("models", KEY).exists()
    assert not list((root / "models").glob(".tmp-*"))
    # and the next attempt, with space, builds it
    path = Cache(root).artifact("models", KEY, build_ok)
    assert Cache(root).is_complete(path)


def test_a_failing_build_that_is_not_a_full_disk_keeps_its_own_error(tmp_path: Path) -> None:
    def build(out: Path) -> None:
        raise ValueError("the method diverged")

    with pytest.raises(ValueError, match="the method diverged"):
        Cache(tmp_path).artifact("models", KEY, build)


def test_full_disk_while_writing_the_benchmark_is_a_clear_error(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from unlearnspec.bench import corpus as corpus_module, ensure_data

    def write_corpus(world: object, out: Path) -> None:  # test double: the disk fills up
        (out / "verbmem").mkdir()
        enospc()

    monkeypatch.setattr(corpus_module, "write_corpus", write_corpus)
    root = tmp_path / "cache"
    with pytest.raises(RunError) as info:
        ensure_data("micro", root)
    message = str(info.value)
    assert f"cache directory {root}:" in message and "no space left on device" in message
    assert "--unlearn-cache-dir" in message
    leftovers = [p.name for p in next((root / "bench").iterdir()).iterdir()]
    assert leftovers == ["data.lock"]  # no half-written corpus, no temp dir


@pytest.mark.parametrize("exc, expected", [
    (OSError(errno.ENOSPC, "No space left on device"), "no space left on device"),
    (OSError(errno.EFBIG, "File too large"), "file too large"),
    (RuntimeError("I/O error: Disk quota exceeded (os error 122)"), "disk quota exceeded"),
    (OSError(errno.EACCES, "Permission denied"), None),
    (ValueError("shape mismatch [Errno-like text]"), None),
])
def test_disk_full_recognises_full_disks_only(exc: BaseException, expected: str | None) -> None:
    assert disk_full(exc) == expected
    wrapped = RunError("saving failed")
    wrapped.__cause__ = exc
    assert disk_full(wrapped) == expected


def _hammer(root: str, key: str, worker: int, rounds: int, out: "mp.Queue[tuple]") -> None:
    cache = Cache(Path(root))
    seen = set()
    for i in range(rounds):
        cache.put_json("metrics", key, {"value": float(worker), "pad": "x" * 20000})
        got = cache.get_json("metrics", key)
        seen.add(None if got is None else got["value"])
    out.put((worker, cache.stats["corrupt"], sorted(seen, key=str)))


def test_concurrent_writers_of_one_record_never_corrupt_it(tmp_path: Path) -> None:
    """Processes rewriting and reading one record (as two sessions finishing the same
    measurement do): every read is a whole record from one of the writers."""
    ctx = mp.get_context("spawn")
    out = ctx.Queue()
    procs = [ctx.Process(target=_hammer, args=(str(tmp_path), KEY, w, 40, out))
             for w in range(3)]
    for p in procs:
        p.start()
    results = [out.get(timeout=120) for _ in procs]
    for p in procs:
        p.join(60)
        assert p.exitcode == 0
    for worker, corrupt, seen in results:
        assert corrupt == 0
        assert None not in seen and set(seen) <= {0.0, 1.0, 2.0}
    assert not list(tmp_path.rglob(".tmp-*"))
    record = json.loads(next((tmp_path / "metrics").rglob("*.json")).read_text())
    assert record["payload"]["value"] in (0.0, 1.0, 2.0)
