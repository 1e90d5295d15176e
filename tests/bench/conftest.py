"""Trained micro models, shared by every test in this folder (training takes seconds each)."""
from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def micro_corpus(bench_cache: Path):
    from unlearnspec.bench import ensure_data
    from unlearnspec.data import Corpus

    return Corpus(ensure_data("micro", bench_cache))


@pytest.fixture(scope="session")
def micro_model(bench_cache: Path):
    """`micro_model("target-qat")` -> checkpoint dir, trained once per session."""
    from unlearnspec.bench import ensure_model

    def get(kind: str) -> Path:
        return ensure_model(f"micro/{kind}", bench_cache, progress=False)

    return get
