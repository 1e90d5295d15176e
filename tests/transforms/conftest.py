"""Checkpoint helpers for transform tests: a reference and a subject that differ by a chosen
update, written as ordinary safetensors checkpoints."""
from __future__ import annotations

import shutil
from pathlib import Path
from typing import Callable

import pytest
import torch
from safetensors.torch import load_file, save_file


def write_variant(src: Path, dst: Path, change: Callable[[str, torch.Tensor], torch.Tensor]) -> Path:
    """Copy checkpoint `src` to `dst` with each tensor replaced by change(name, tensor)."""
    shutil.copytree(src, dst)
    tensors = load_file(str(src / "model.safetensors"))
    save_file({k: change(k, v).contiguous() for k, v in tensors.items()},
              str(dst / "model.safetensors"), metadata={"format": "pt"})
    return dst


@pytest.fixture
def variant(tmp_path: Path) -> Callable[..., Path]:
    counter = iter(range(1000))

    def make(src: Path, change: Callable[[str, torch.Tensor], torch.Tensor]) -> Path:
        return write_variant(src, tmp_path / f"v{next(counter)}", change)

    return make


@pytest.fixture(scope="session")
def tiny64(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tests' tiny Llama at hidden size 64: GPTQModel's AWQ needs 64-multiple outputs."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("_root_conftest",
                                                  Path(__file__).parents[1] / "conftest.py")
    root = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(root)
    return root.make_tiny_checkpoint(tmp_path_factory.mktemp("tiny64"), hidden=64)


from arch_helpers import ARCHS, load_arch, make_arch_checkpoint  # noqa: E402,F401


@pytest.fixture(scope="session")
def arch_checkpoints(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """One random tiny checkpoint per architecture in archs.ARCHS (read-only)."""
    base = tmp_path_factory.mktemp("archs")
    return {a: make_arch_checkpoint(a, base / a) for a in ARCHS}
