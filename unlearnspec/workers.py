"""Splitting a session over processes: xdist workers' CPU threads and GPUs, and CI shards.

Plain functions of plain values (no pytest): the plugin's hooks call them.
"""
from __future__ import annotations

import os
import sys
from typing import Iterable, TypeVar

T = TypeVar("T")


def worker_threads(cores: int, workers: int) -> int:
    """CPU threads for one of `workers` xdist workers on `cores` cores: an equal share, at
    least one."""
    return max(1, cores // max(1, workers))


def available_cores() -> int:
    """The cores this process may run on (its affinity mask where the OS has one)."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else \
        (os.cpu_count() or 1)


def second_process_allowed() -> bool:
    """Whether a run may train or unlearn in a second process beside itself, the cores split
    between the two (bench/build.py, engine/background.py): not under xdist (its workers
    already share the cores), not on one core, and not with UNLEARNSPEC_PROCESSES=1."""
    return (available_cores() >= 2 and not os.environ.get("PYTEST_XDIST_WORKER")
            and os.environ.get("UNLEARNSPEC_PROCESSES") != "1")


def share_cpu_threads() -> None:
    """An xdist worker takes its share of the cores for torch's intra-op threads, unless the
    user set OMP_NUM_THREADS. Each worker would otherwise start one thread per core: measured
    on 2 cores, two workers with 2 threads each ran a training step 10-25x slower than one
    worker with 1 thread (OpenMP threads spin while the other process holds the core).
    Results do not change: the benchmark's models train bit-identically with 1 or 2 threads
    (measured), and the thread count of larger models is a documented caveat."""
    if "OMP_NUM_THREADS" in os.environ:
        return
    workers = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
    n = worker_threads(available_cores(), workers)
    os.environ["OMP_NUM_THREADS"] = str(n)
    torch = sys.modules.get("torch")  # already imported (a conftest did): set it directly
    if torch is not None:
        torch.set_num_threads(n)


def worker_device(device: str | None, worker: str | None) -> str | None:
    """Under xdist, worker gwK takes GPU K mod the GPU count when the device is cuda
    (set CUDA_VISIBLE_DEVICES per worker, or --unlearn-device cuda:N, to override)."""
    if worker is None or device not in ("cuda", "auto"):
        return device
    import torch  # only under xdist with a CUDA device asked for

    count = torch.cuda.device_count()
    if count == 0:
        return device
    return f"cuda:{int(worker.removeprefix('gw')) % count}"


def parse_shard(value: str) -> tuple[int, int]:
    """'2/4' -> (2, 4); ValueError unless it is I/N with 1 <= I <= N."""
    try:
        i, n = (int(x) for x in value.split("/"))
    except ValueError:
        i, n = 0, 0
    if not 1 <= i <= n:
        raise ValueError(f"{value}: write I/N with 1 <= I <= N, e.g. 1/4")
    return i, n


def shard_of(subjects: Iterable[T], index: int, total: int) -> set[T]:
    """The subjects shard `index` of `total` owns: dealt round-robin in sorted order, so each
    shard owns whole subjects and their artifacts, and the shards together own each once."""
    return {s for k, s in enumerate(sorted(set(subjects))) if k % total == index - 1}
