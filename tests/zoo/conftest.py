"""Fixtures of the model zoo's conformance tests: the zoo's cache, its corpus, and each
(architecture, tokenizer style) checkpoint, trained once and shared by every test and xdist
worker (see tests/zoo/checkpoints.py)."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from tests.zoo.cases import Case


@pytest.fixture(scope="session")
def zoo_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Where the zoo's checkpoints are trained once per test run (all xdist workers share it;
    the build's file lock makes one worker train while the others wait).
    UNLEARNSPEC_TEST_ZOO_CACHE reuses a cache built before."""
    env = os.environ.get("UNLEARNSPEC_TEST_ZOO_CACHE")
    if env:
        return Path(env)
    base = tmp_path_factory.getbasetemp()
    if os.environ.get("PYTEST_XDIST_WORKER"):
        base = base.parent  # the run's directory, above each worker's own
    path = base / "zoo-cache"
    path.mkdir(exist_ok=True)
    return path


class Zoo:
    """The zoo of one test session: checkpoints by case, loaded read-only models (shared: do
    not modify them; `fresh` gives a private copy), and the world's corpus."""

    def __init__(self, cache: Path) -> None:
        self.cache = cache
        self._loaded: dict[str, tuple[Any, Any]] = {}

    def checkpoint(self, case: Case) -> Path:
        from tests.zoo.checkpoints import ensure_checkpoint

        return ensure_checkpoint(case.arch.name, case.style, self.cache)

    def fresh(self, case: Case) -> tuple[Any, Any]:
        """(model, tokenizer) loaded through unlearnspec's loader, private to the caller."""
        from unlearnspec.models.loading import load_causal_lm

        return load_causal_lm(self.checkpoint(case))

    def model(self, case: Case) -> tuple[Any, Any]:
        if case.id not in self._loaded:
            self._loaded[case.id] = self.fresh(case)
        return self._loaded[case.id]

    @property
    def corpus(self) -> Any:
        from tests.zoo.checkpoints import ensure_corpus
        from unlearnspec.data import Corpus

        return Corpus(ensure_corpus(self.cache))


@pytest.fixture(scope="session")
def zoo(zoo_cache: Path) -> Zoo:
    return Zoo(zoo_cache)


@pytest.fixture(scope="package", autouse=True)
def _one_thread() -> Any:
    """One torch thread for the zoo's models (restored after): measured on the 2 shared cores
    these tests run on, 2 threads made each tiny forward 8x slower; results are per-sample
    comparisons within one process, so the thread count cannot change an outcome."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
