"""Benchmark models trained in a second process while the run trains its own
(bench/build.py `ensure_models_together`): the same checkpoints bit for bit as training them
one after another, each counted as trained once, and nothing left to a child that failed."""
from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from unlearnspec import workers
from unlearnspec.bench import build
from unlearnspec.bench.build import ensure_model, ensure_models_together, preset_dir

pytestmark = pytest.mark.slow


def weights_digest(path: Path) -> str:
    return hashlib.sha256((path / "model.safetensors").read_bytes()).hexdigest()


@pytest.fixture()
def two_cores(monkeypatch):
    """As on a two-core machine, outside xdist (its workers never start a second process)."""
    monkeypatch.setattr(workers, "available_cores", lambda: 2)
    monkeypatch.delenv("PYTEST_XDIST_WORKER", raising=False)
    monkeypatch.delenv("UNLEARNSPEC_PROCESSES", raising=False)


def test_the_second_process_trains_the_same_models(tmp_path, bench_cache, two_cores):
    trained: list[str] = []
    path = ensure_models_together("micro/target-qat", ["micro/target-qat", "micro/retrain"],
                                  tmp_path, progress=False, trained=trained)
    assert sorted(trained) == ["micro/retrain", "micro/target", "micro/target-qat"]
    log = tmp_path / "bench" / "background-build.log"
    assert log.is_file()
    root = preset_dir("micro", tmp_path)
    assert path == root / "target-qat"
    # the same bytes as the session's models, trained in this process one after another
    for kind in ("target", "target-qat", "retrain"):
        ensure_model(f"micro/{kind}", bench_cache, progress=False)
        assert weights_digest(root / kind) == weights_digest(preset_dir("micro", bench_cache) /
                                                            kind), kind
    assert json.loads((root / "retrain" / "bench_train.json").read_text())["threads"] == 1


def test_a_child_that_fails_leaves_the_model_to_this_process(tmp_path, two_cores,
                                                             monkeypatch):
    """A child that dies trains nothing; the run builds that model itself when it needs it."""
    class Broken(build.BackgroundBuild):
        def __init__(self, names, cache_dir, threads):
            super().__init__(["micro/no-such-kind"], cache_dir, threads)

    monkeypatch.setattr(build, "BackgroundBuild", Broken)
    trained: list[str] = []
    ensure_models_together("micro/target", ["micro/retrain"], tmp_path, progress=False,
                           trained=trained)
    assert trained == ["micro/target"]
    assert not (preset_dir("micro", tmp_path) / "retrain").exists()
    assert "no-such-kind" in (tmp_path / "bench" / "background-build.log").read_text()


def test_one_core_or_nothing_else_to_build_trains_here_only(tmp_path, monkeypatch):
    started = []
    monkeypatch.setattr(build, "BackgroundBuild",
                        lambda *a, **k: started.append(a) or pytest.fail("no child expected"))
    monkeypatch.setattr(workers, "available_cores", lambda: 1)
    monkeypatch.delenv("PYTEST_XDIST_WORKER", raising=False)
    ensure_models_together("micro/target", ["micro/retrain"], tmp_path, progress=False)
    monkeypatch.setattr(workers, "available_cores", lambda: 2)
    ensure_models_together("micro/target", ["micro/target"], tmp_path, progress=False)
    assert started == []
