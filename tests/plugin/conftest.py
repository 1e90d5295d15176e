"""Fixtures of the plugin's end-to-end tests."""
from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def micro_models(bench_cache: Path) -> Path:
    """The trained micro models, built before any `pytester` fixture snapshots sys.modules:
    training imports torch submodules (torch.distributed's operator libraries among them) that
    pytester would drop at teardown, and re-importing them registers their operators twice."""
    from unlearnspec.bench import ensure_model

    for kind in ("target-qat", "retrain"):
        ensure_model(f"micro/{kind}", bench_cache, progress=False)
    return bench_cache
