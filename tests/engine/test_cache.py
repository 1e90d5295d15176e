"""The run cache: atomic JSON records with checksums, artifacts built once under a lock."""
from __future__ import annotations

import json
import multiprocessing as mp
import time
from pathlib import Path

import pytest
from hypothesis import given, settings, strategies as st

from unlearnspec.engine.cache import MARKER, Cache, content_key
from unlearnspec.errors import RunError


def test_content_key_ignores_dict_order_and_sees_values() -> None:
    assert content_key({"a": 1, "b": 2}) == content_key({"b": 2, "a": 1})
    assert content_key({"a": 1}) != content_key({"a": 2})
    assert content_key("x", 1) != content_key("x", "1")


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda c: st.lists(c, max_size=4) | st.dictionaries(st.text(), c, max_size=4),
    max_leaves=20,
)


@settings(max_examples=50, deadline=None)
@given(payload=json_values)
def test_json_round_trip(tmp_path_factory: pytest.TempPathFactory, payload: object) -> None:
    cache = Cache(tmp_path_factory.mktemp("c"))
    cache.put_json("metrics", "k" * 32, payload)
    assert cache.get_json("metrics", "k" * 32) == payload


def test_miss_then_hit_counts(tmp_path: Path) -> None:
    cache = Cache(tmp_path)
    assert cache.get_json("metrics", "ab" * 16) is None
    cache.put_json("metrics", "ab" * 16, {"value": 1.5})
    assert cache.get_json("metrics", "ab" * 16) == {"value": 1.5}
    assert cache.stats["metrics.miss"] == 1 and cache.stats["metrics.hit"] == 1


@pytest.mark.parametrize("damage", ["truncate", "flip", "garbage"])
def test_corrupt_record_is_detected_removed_and_reported(tmp_path: Path, damage: str,
                                                         caplog: pytest.LogCaptureFixture) -> None:
    cache = Cache(tmp_path)
    key = "cd" * 16
    cache.put_json("metrics", key, {"value": 42.0, "n": 10})
    path = cache._json_path("metrics", key)
    text = path.read_text()
    if damage == "truncate":
        path.write_text(text[: len(text) // 2])
    elif damage == "flip":
        path.write_text(text.replace("42.0", "41.0"))
    else:
        path.write_bytes(b"\x00\xff")
    assert cache.get_json("metrics", key) is None
    assert not path.exists()
    assert cache.stats["corrupt"] == 1
    assert "corrupt" in caplog.text


def test_no_temp_files_left_after_writes(tmp_path: Path) -> None:
    cache = Cache(tmp_path)
    for i in range(5):
        cache.put_json("metrics", content_key(i), {"i": i})
    assert not [p for p in tmp_path.rglob(".tmp-*")]


def test_artifact_built_once_and_marked_complete(tmp_path: Path) -> None:
    cache = Cache(tmp_path)
    calls = []

    def build(out: Path) -> None:
        calls.append(out)
        (out / "model.safetensors").write_bytes(b"w" * 10)

    a = cache.artifact("models", "k1", build)
    b = cache.artifact("models", "k1", build)
    assert a == b and len(calls) == 1
    assert json.loads((a / MARKER).read_text()) == {"model.safetensors": 10}


def test_incomplete_artifact_is_rebuilt(tmp_path: Path) -> None:
    cache = Cache(tmp_path)
    a = cache.artifact("models", "k2", lambda out: (out / "w.bin").write_bytes(b"1234"))
    (a / "w.bin").write_bytes(b"12")  # truncated after the fact
    assert not cache.is_complete(a)
    rebuilt = []
    cache.artifact("models", "k2", lambda out: rebuilt.append((out / "w.bin").write_bytes(b"1234")))
    assert rebuilt and cache.is_complete(a)


def test_failed_build_leaves_nothing_behind(tmp_path: Path) -> None:
    cache = Cache(tmp_path)

    def boom(out: Path) -> None:
        (out / "half.bin").write_bytes(b"x")
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        cache.artifact("models", "k3", boom)
    assert not cache.artifact_dir("models", "k3").exists()
    assert not list((tmp_path / "models").glob(".tmp-*"))


def test_write_failure_is_a_clear_error(tmp_path: Path) -> None:
    blocker = tmp_path / "metrics"
    blocker.write_text("a file where a directory should be")
    with pytest.raises(RunError, match="could not write the cache entry"):
        Cache(tmp_path).put_json("metrics", "ef" * 16, {"v": 1})


def _build_in_process(root: str, log: str) -> None:
    def build(out: Path) -> None:
        with open(log, "a") as f:
            f.write("built\n")
        time.sleep(0.5)
        (out / "w.bin").write_bytes(b"abc")

    Cache(Path(root)).artifact("models", "shared", build)


def test_concurrent_processes_build_an_artifact_once(tmp_path: Path) -> None:
    log = tmp_path / "log.txt"
    ctx = mp.get_context("spawn")
    procs = [ctx.Process(target=_build_in_process, args=(str(tmp_path / "c"), str(log)))
             for _ in range(3)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
        assert p.exitcode == 0
    assert log.read_text().count("built") == 1
