"""Fixtures for the robustness tests."""
from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture()
def micro_data(tmp_path: Path) -> Path:
    """A run cache holding the micro benchmark's corpus (cheap: no model is trained)."""
    from unlearnspec.bench import ensure_data

    cache = tmp_path / "cache"
    ensure_data("micro", cache)
    return cache
