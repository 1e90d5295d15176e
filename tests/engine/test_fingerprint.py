"""Local checkpoints are keyed by content (engine/fingerprint.py): a digest is memoized by the
file's stat stamp, so a rerun reads nothing, and any rewrite is hashed again, even one that
keeps the size and puts the old mtime back (`cp -p`, `rsync -t`, tar)."""
from __future__ import annotations

import os
from pathlib import Path

import pytest
import xxhash

from unlearnspec.engine import fingerprint
from unlearnspec.engine.cache import Cache
from unlearnspec.engine.fingerprint import directory_fingerprint, memoized_fingerprint


def rewrite_keeping_size_and_mtime(path: Path, data: bytes) -> None:
    st = path.stat()
    assert len(data) == st.st_size
    with open(path, "r+b") as f:  # in place: same inode
        f.write(data)
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))
    after = path.stat()
    assert (after.st_ino, after.st_size, after.st_mtime_ns) == (st.st_ino, st.st_size,
                                                                st.st_mtime_ns)


@pytest.fixture()
def counted(monkeypatch: pytest.MonkeyPatch) -> list[Path]:
    """Records every file actually hashed (the real hash still runs)."""
    calls: list[Path] = []
    real = fingerprint.file_fingerprint

    def spy(path: Path) -> str:
        calls.append(path)
        return real(path)

    monkeypatch.setattr(fingerprint, "file_fingerprint", spy)
    return calls


def test_digest_is_xxh3_128_of_the_bytes(tmp_path: Path) -> None:
    path = tmp_path / "w.bin"
    path.write_bytes(b"weights" * 1000)
    assert fingerprint.file_fingerprint(path) == xxhash.xxh3_128(b"weights" * 1000).hexdigest()


def test_memo_makes_a_rerun_read_nothing(tmp_path: Path, counted: list[Path]) -> None:
    path = tmp_path / "w.bin"
    path.write_bytes(os.urandom(4096))
    first = memoized_fingerprint(path, Cache(tmp_path / "cache"))
    again = memoized_fingerprint(path, Cache(tmp_path / "cache"))  # a new session
    assert first == again and len(counted) == 1


def test_rewrite_with_same_size_and_mtime_is_hashed_again(tmp_path: Path,
                                                           counted: list[Path]) -> None:
    path, cache = tmp_path / "model.safetensors", Cache(tmp_path / "cache")
    path.write_bytes(b"a" * 4096)
    old = memoized_fingerprint(path, cache)
    rewrite_keeping_size_and_mtime(path, b"b" * 4096)
    new = memoized_fingerprint(path, cache)
    assert new != old and new == xxhash.xxh3_128(b"b" * 4096).hexdigest()
    assert len(counted) == 2


def test_directory_fingerprint_covers_every_file_and_sees_content(tmp_path: Path) -> None:
    ckpt, cache = tmp_path / "ckpt", Cache(tmp_path / "cache")
    ckpt.mkdir()
    (ckpt / "config.json").write_text("{}")
    (ckpt / "model.safetensors").write_bytes(b"x" * 100)
    (ckpt / "sub").mkdir()  # transformers reads the top level only
    before = directory_fingerprint(ckpt, cache)
    assert [name for name, _, _ in before] == ["config.json", "model.safetensors"]
    rewrite_keeping_size_and_mtime(ckpt / "model.safetensors", b"y" * 100)
    assert directory_fingerprint(ckpt, cache) != before


def test_a_file_changing_while_hashed_is_not_memoized(tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    path, cache = tmp_path / "w.bin", Cache(tmp_path / "cache")
    path.write_bytes(b"a" * 64)
    real = fingerprint.file_fingerprint

    def racing(p: Path) -> str:  # another process appends while we read
        digest = real(p)
        with open(p, "ab") as f:
            f.write(b"more")
        return digest

    monkeypatch.setattr(fingerprint, "file_fingerprint", racing)
    memoized_fingerprint(path, cache)
    monkeypatch.setattr(fingerprint, "file_fingerprint", real)
    assert memoized_fingerprint(path, cache) == xxhash.xxh3_128(b"a" * 64 + b"more").hexdigest()
