"""Shared by the metric tests and benchmarks/rwku_parity.py: a tiny model whose word-level
vocabulary has the MMLU answer letters and RWKU's prompt words."""
from __future__ import annotations

import importlib.util
from pathlib import Path

_ROOT = Path(__file__).resolve().parents[2]


def make_tiny_checkpoint(*args, **kwargs):
    """tests/conftest.py's builder, loaded by path (conftest modules are not importable by
    name when several directories have one)."""
    spec = importlib.util.spec_from_file_location("_tests_root_conftest_m",
                                                  _ROOT / "tests" / "conftest.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)  # type: ignore[union-attr]
    return module.make_tiny_checkpoint(*args, **kwargs), module.WORDS


def lettered_words() -> tuple[str, ...]:
    spec = importlib.util.spec_from_file_location("_tests_root_conftest_w",
                                                  _ROOT / "tests" / "conftest.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)  # type: ignore[union-attr]
    return (*module.WORDS, "A", "B", "C", "D", "A.", "B.", "C.", "D.", "Answer:", "Q:", "A:",
            "Instruction:", "following", "multiple", "choice", "questions")


def make_lettered(out: Path, extra: tuple[str, ...] = (), seed: int = 3, **kwargs) -> Path:
    return make_tiny_checkpoint(out, seed=seed, words=(*lettered_words(), *extra), **kwargs)[0]
