"""The one atomic write (files and directories) every cache, report and checkpoint uses."""
from __future__ import annotations

from pathlib import Path

import pytest

from unlearnspec.data.files import (atomic_write, build_dir_once, remove_partial_dirs,
                                    write_dir_atomic)


def test_atomic_write_replaces_the_file_and_leaves_no_temp(tmp_path: Path) -> None:
    target = tmp_path / "sub" / "report.json"
    atomic_write(target, "first")
    atomic_write(target, b"second \xff")
    assert target.read_bytes() == b"second \xff"
    assert sorted(p.name for p in target.parent.iterdir()) == ["report.json"]


def test_atomic_write_that_fails_keeps_the_old_file(tmp_path: Path) -> None:
    target = tmp_path / "report.json"
    atomic_write(target, "old")
    with pytest.raises(TypeError):
        atomic_write(target, 42)  # type: ignore[arg-type]
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["report.json"]


def test_write_dir_atomic_publishes_whole_or_nothing(tmp_path: Path) -> None:
    final = tmp_path / "ckpt"

    def half(tmp: Path) -> None:
        (tmp / "a.bin").write_bytes(b"x")
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        write_dir_atomic(final, half)
    assert list(tmp_path.iterdir()) == []
    write_dir_atomic(final, lambda tmp: (tmp / "a.bin").write_bytes(b"y"))
    assert (final / "a.bin").read_bytes() == b"y"
    assert final.stat().st_mode & 0o777 == 0o755


def test_the_first_publisher_wins_a_race(tmp_path: Path) -> None:
    final = tmp_path / "corpus"

    def late(tmp: Path) -> None:
        (tmp / "f").write_text("late")
        if not final.exists():  # another process publishes while this one writes
            write_dir_atomic(final, lambda t: (t / "f").write_text("first"))

    write_dir_atomic(final, late)
    assert (final / "f").read_text() == "first"
    assert [p.name for p in tmp_path.iterdir()] == ["corpus"]
    assert build_dir_once(final, lambda t: pytest.fail("rebuilt an existing directory"))


def test_partial_dirs_of_killed_builds_are_found_by_name(tmp_path: Path) -> None:
    final = tmp_path / "KEY"
    debris = [tmp_path / ".tmp-KEY-abc", tmp_path / ".tmp-KEY-abc-def"]  # incl. nested build
    for d in debris:
        d.mkdir()
    (tmp_path / ".tmp-OTHER-abc").mkdir()
    assert remove_partial_dirs(final) == debris
    assert [p.name for p in tmp_path.iterdir()] == [".tmp-OTHER-abc"]
