"""Fixtures for the scale tests: a miniature MUSE corpus and two tiny Llama checkpoints that
stand in for MUSE's 7B target and retrain models (same files, same layout, ~10k weights)."""
from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any

import pytest

from muse_miniature import ROOT, write_muse_corpus


def _make_tiny_checkpoint() -> Any:
    """tests/conftest.py's builder, loaded by path: conftest modules are not importable by
    name when several directories have one."""
    spec = importlib.util.spec_from_file_location("_tests_root_conftest",
                                                  ROOT / "tests" / "conftest.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)  # type: ignore[union-attr]
    return module.make_tiny_checkpoint


@pytest.fixture(scope="session")
def muse_corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_muse_corpus(tmp_path_factory.mktemp("muse") / "corpus")


@pytest.fixture(scope="session")
def muse_checkpoints(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """{'target': ..., 'retrain': ...}: two different random tiny Llamas (read-only), 64 wide
    because GPTQModel's AWQ kernels need layers with a multiple of 64 outputs."""
    make = _make_tiny_checkpoint()
    root = tmp_path_factory.mktemp("muse-models")
    return {name: make(root / name, seed=seed, hidden=64)
            for name, seed in (("target", 0), ("retrain", 1))}


@pytest.fixture(scope="session")
def local_paths(muse_corpus: Path, muse_checkpoints: dict[str, Path]) -> dict[str, Path]:
    """Every hub id of specs/books.yaml and specs/news.yaml -> its miniature stand-in."""
    paths: dict[str, Path] = {}
    for corpus in ("Books", "News"):
        paths[f"muse-bench/MUSE-{corpus}"] = muse_corpus
        for model in ("target", "retrain"):
            paths[f"muse-bench/MUSE-{corpus}_{model}"] = muse_checkpoints[model]
    return paths
