"""When the engine runs the cycle collector after dropping a model (engine/loaded.py): a full
collection costs 0.3-0.5 s once the quantization libraries are imported, so it runs for models
whose memory matters (COLLECT_AT_BYTES, or on a GPU) and not after every small one."""
from __future__ import annotations

import gc
import weakref

import pytest

torch = pytest.importorskip("torch")

from unlearnspec.engine import loaded  # noqa: E402


class Cyclic(torch.nn.Module):
    """A module in a reference cycle, as a transformers model is: only the collector frees it."""

    def __init__(self, n: int) -> None:
        super().__init__()
        self.w = torch.nn.Parameter(torch.zeros(n))
        self.__dict__["me"] = self


def test_model_bytes_counts_parameters_and_buffers():
    m = torch.nn.BatchNorm1d(10)  # 2 parameters and 3 buffers
    assert loaded.model_bytes(m) == (10 + 10 + 10 + 10) * 4 + 8
    assert loaded.model_bytes(object()) == 0


def test_a_large_model_is_collected_at_once(monkeypatch):
    monkeypatch.setattr(loaded, "COLLECT_AT_BYTES", 1024)
    gc.disable()
    try:
        m = Cyclic(4096)
        ref, nbytes = weakref.ref(m), loaded.model_bytes(m)
        del m
        assert ref() is not None  # the cycle keeps it alive
        loaded.free_memory(nbytes, gpu=False)
        assert ref() is None
    finally:
        gc.enable()


def test_a_small_cpu_model_is_left_to_pythons_collector(monkeypatch):
    gc.disable()
    try:
        m = Cyclic(16)
        ref, nbytes = weakref.ref(m), loaded.model_bytes(m)
        del m
        loaded.free_memory(nbytes, gpu=False)
        assert ref() is not None  # no full collection for 64 bytes
        loaded.free_memory(nbytes, gpu=True)  # on a GPU it is collected all the same
        assert ref() is None
    finally:
        gc.enable()
