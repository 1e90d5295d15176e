"""Fixtures for the spec layer's tests."""
from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture
def write_spec(tmp_path: Path):
    """write_spec(text) -> path of a spec file holding `text`."""

    def write(text: str, name: str = "spec.yaml") -> Path:
        path = tmp_path / name
        path.write_text(text, encoding="utf-8")
        return path

    return write
