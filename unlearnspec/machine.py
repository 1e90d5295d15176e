"""What a run's numbers depend on besides the spec: the CPU and the vector kernels torch uses.

Trained and unlearned weights are bit-identical on one machine, but torch picks its vectorized
kernels by the CPU's instruction set (`torch.backends.cpu.get_cpu_capability()`: AVX2,
AVX512, ...) and MKL its GEMM code path by the CPU, so another machine can round differently
and, over thousands of training steps, train another model (docs/benchmark.md, "The numbers
are one machine's"). The report and each benchmark checkpoint say which machine they come
from, so two sets of numbers can be told apart. Torch-free at import.
"""
from __future__ import annotations

import platform
import sys
from pathlib import Path


def cpu_name(cpuinfo: Path = Path("/proc/cpuinfo")) -> str | None:
    """The CPU's model name ('AMD EPYC 7B13', 'Intel(R) Xeon(R) Platinum 8481C CPU'): Linux's
    first `model name` line, else what `platform.processor()` says, else None."""
    try:
        for line in cpuinfo.read_text(errors="replace").splitlines():
            key, _, value = line.partition(":")
            if key.strip() == "model name" and value.strip():
                return value.strip()
    except OSError:
        pass
    return platform.processor() or None


def cpu_kernels() -> str | None:
    """The vector kernels torch dispatches to on this CPU ('AVX2', 'AVX512', 'DEFAULT'), or
    None when torch is not imported yet: asking would import it, and would fix the choice
    before an `ATEN_CPU_CAPABILITY` set later could take effect."""
    torch = sys.modules.get("torch")
    if torch is None:
        return None
    try:
        return str(torch.backends.cpu.get_cpu_capability())
    except Exception:  # an old or unusual build: the report must not be lost for it
        return None


def describe() -> dict[str, str | None]:
    """{"cpu": ..., "cpu_kernels": ...} for a report or a checkpoint's metadata."""
    return {"cpu": cpu_name(), "cpu_kernels": cpu_kernels()}
