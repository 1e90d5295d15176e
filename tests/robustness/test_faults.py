"""Faults injected into real runs on the micro benchmark, each in a subprocess as a user or a
CI machine would meet them: SIGKILL while unlearning and while measuring, Ctrl-C, a disk too
small for a checkpoint, two sessions on one cache. Afterwards a normal run on the same
cache must give exactly the numbers of a run that never saw a fault, computed in its own
cache; and the same spec run twice from nothing gives the same report.

Runs that are killed use the `unlearnspec run` command line; runs whose numbers are compared
use pytest with `--unlearn-report`, which writes the JSON report.

A run is killed at a pinned moment (`UNLEARNSPEC_FAULT`, unlearnspec/faults.py: the process
signals itself at the N-th optimizer step, or right after its first record is written), not
after polling the cache: a poll races the run, and under load a run could write all its
records, or finish a build, between the poll and the kill.
"""
from __future__ import annotations

import json
import os
import re
import resource
import shutil
import signal
import subprocess
import sys
from collections import Counter
from pathlib import Path
from typing import Any, Callable

import pytest

pytestmark = pytest.mark.slow

SPEC = """\
version: 1
settings: {batch_size: 64}
data:
  world: {builtin: micro}
models:
  target: {builtin: micro/target-qat}
  retrain: {builtin: micro/retrain}
  ga_klr: {unlearn: ga_klr, from: target, lr: 5.0e-5, max_steps: 60, batch_size: 8}
transforms:
  rtn4: {kind: rtn, bits: 4}
metrics:
  knowmem_forget: {kind: knowmem, split: forget}
  verbmem_forget: {kind: verbmem, split: forget, max_new_tokens: 32}
  gamma: {kind: update_retention}
claims:
  - name: no-recovery-rtn4
    subjects: [ga_klr]
    assert: knowmem_forget @ rtn4 <= retrain + 5
  - name: verbatim
    subjects: [ga_klr]
    assert: verbmem_forget @ rtn4 <= retrain + 5
  - name: update-undone
    subjects: [ga_klr]
    assert: gamma @ rtn4 < 0.5
"""
RAW_ENTRIES = 4  # knowmem and verbmem on ga_klr @ rtn4 and on retrain


# ----------------------------------------------------------------------------- helpers

def project(folder: Path, bench: Path | None) -> Path:
    """A folder with the spec and a cache dir, seeded with the trained benchmark models
    (training them is the benchmark tests' business) unless `bench` is None."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "spec.yaml").write_text(SPEC)
    if bench is not None:
        # micro's finished models only: the shared cache also holds what other xdist workers
        # are building right now (a tiny model's .tmp-* directory, copied half-written, is
        # debris this folder never made)
        shutil.copytree(bench / "bench", folder / "cache" / "bench",
                        ignore=shutil.ignore_patterns(".tmp-*", "*.lock", "tiny-*"))
    return folder


def env(fault: str | None = None) -> dict[str, str]:
    # the parent's thread count, so every subprocess computes with the same reductions
    out = {**os.environ, "PYTHONUNBUFFERED": "1"}
    out.pop("UNLEARNSPEC_FAULT", None)
    if fault is not None:
        out["UNLEARNSPEC_FAULT"] = fault
    return out


# `unlearnspec run` as a terminal starts it. A child inherits an ignored SIGINT (a shell's
# background job, some CI runners), and Python then never raises KeyboardInterrupt: Ctrl-C
# would do nothing, so the command resets it first.
CLI = ("import runpy, signal; signal.signal(signal.SIGINT, signal.default_int_handler); "
       "runpy.run_module('unlearnspec.cli', run_name='__main__')")


def cli(folder: Path, cache: str = "cache", fault: str | None = None,
        **kwargs: Any) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-c", CLI, "run", "spec.yaml", "--cache-dir", cache, "-q"],
        cwd=folder, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env=env(fault), **kwargs)


def finish(proc: subprocess.Popen) -> tuple[int, str, str]:
    out, err = proc.communicate(timeout=600)
    return proc.returncode, out, err


def pytest_run(folder: Path, report: str = "run.json") -> dict[str, Any]:
    """A complete pytest session on the folder's spec and cache; its JSON report."""
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "--unlearn-spec", "spec.yaml", "--unlearn-cache-dir",
         "cache", "--unlearn-report", report, "-p", "no:cacheprovider", "-q",
         "--rootdir", str(folder)], cwd=folder, capture_output=True, text=True, env=env(),
        timeout=600)
    assert done.returncode == 1, done.stdout + done.stderr  # the two recovery claims fail
    return json.loads((folder / report).read_text())


def numbers(report: dict[str, Any]) -> dict[str, Any]:
    """What a report says about the models and claims, without when or how much work."""
    return {
        "models": report["models"],
        "measurements": report["measurements"],
        "claims": [{k: c[k] for k in ("nodeid", "status", "verdict")} for c in report["claims"]],
    }


def unlearning_started(cache: Path) -> Callable[[], bool]:
    return lambda: any((cache / "models").glob(".tmp-*"))


def raw_entries(cache: Path) -> int:
    return len(list((cache / "raw").rglob("*.json"))) if (cache / "raw").is_dir() else 0


def no_debris(cache: Path) -> None:
    """No half-built checkpoint directory is left, nor a half-saved unlearned model. (A
    record's temp file could survive a kill landing within its microseconds-long write; it is
    never read, see docs/robustness.md.)"""
    left = [p for p in cache.rglob("*") if p.is_dir()
            and (p.name.startswith((".tmp-", "..")) or ".partial-" in p.name)]
    assert not left, f"temp directories were left in the cache: {left}"


# ----------------------------------------------------------------------------- fixtures

@pytest.fixture(scope="module")
def seeded_bench(bench_cache: Path) -> Path:
    from unlearnspec.bench import ensure_model

    for kind in ("target-qat", "retrain"):
        ensure_model(f"micro/{kind}", bench_cache, progress=False)
    return bench_cache


@pytest.fixture(scope="module")
def clean(seeded_bench: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """The numbers of a run that saw no fault, in a cache of its own."""
    folder = project(tmp_path_factory.mktemp("clean"), seeded_bench)
    return numbers(pytest_run(folder))


# ----------------------------------------------------------------------------- faults

def test_sigkill_while_unlearning_then_rerun_gives_the_clean_numbers(
        seeded_bench: Path, clean: dict[str, Any], tmp_path: Path) -> None:
    folder = project(tmp_path, seeded_bench)
    rc, out, err = finish(cli(folder, fault="unlearn-step:5"))  # of 60
    assert rc == -signal.SIGKILL, out + err
    assert unlearning_started(folder / "cache")()  # the half-built directory is there
    assert not list((folder / "cache" / "models").glob("[0-9a-f]*"))  # and was not kept
    assert numbers(pytest_run(folder)) == clean
    no_debris(folder / "cache")


def test_sigkill_while_measuring_then_rerun_gives_the_clean_numbers(
        seeded_bench: Path, clean: dict[str, Any], tmp_path: Path) -> None:
    folder = project(tmp_path, seeded_bench)
    cache = folder / "cache"
    rc, out, err = finish(cli(folder, fault="record:raw:1"))
    assert rc == -signal.SIGKILL, out + err
    assert raw_entries(cache) == 1 < RAW_ENTRIES  # killed between measurements
    report = pytest_run(folder)
    assert numbers(report) == clean
    assert report["summary"]["work"].get("unlearned", 0) == 0  # the model was kept
    no_debris(cache)


def test_ctrl_c_exits_cleanly_and_the_rerun_gives_the_clean_numbers(
        seeded_bench: Path, clean: dict[str, Any], tmp_path: Path) -> None:
    folder = project(tmp_path, seeded_bench)
    rc, out, err = finish(cli(folder, fault="unlearn-step:5:INT"))  # Ctrl-C while unlearning
    assert rc == 130, out + err
    assert "interrupted" in err and "run the same command again" in err
    assert "Traceback" not in err
    no_debris(folder / "cache")  # the interrupted build cleaned up after itself
    assert numbers(pytest_run(folder)) == clean


def limit_file_size(max_bytes: int) -> Callable[[], None]:
    def preexec() -> None:  # Python ignores SIGXFSZ, so a write past the limit gets EFBIG
        resource.setrlimit(resource.RLIMIT_FSIZE, (max_bytes, max_bytes))
    return preexec


def test_disk_too_small_for_a_checkpoint_is_a_clear_error_and_nothing_corrupt_is_kept(
        seeded_bench: Path, clean: dict[str, Any], tmp_path: Path) -> None:
    folder = project(tmp_path, seeded_bench)
    cache = (folder / "cache").resolve()
    # 200 kB: the metric records fit, the unlearned checkpoint (~600 kB) does not
    proc = cli(folder, preexec_fn=limit_file_size(200_000))
    out, err = proc.communicate(timeout=600)
    assert proc.returncode == 1, out + err
    assert "Traceback" not in err and "Traceback" not in out
    assert f"could not write the cache artifact {cache}/models/" in out
    assert f"in the cache directory {cache}: file too large" in out
    assert "--unlearn-cache-dir" in out
    assert not list((cache / "models").glob("[0-9a-f]*"))
    no_debris(cache)
    # with room again, the same cache gives the clean numbers
    assert numbers(pytest_run(folder)) == clean


def test_two_sessions_on_one_cache_compute_each_artifact_once(
        seeded_bench: Path, clean: dict[str, Any], tmp_path: Path) -> None:
    folder = project(tmp_path, seeded_bench)
    first, second = cli(folder), cli(folder)
    outs = [p.communicate(timeout=600) for p in (first, second)]
    assert first.returncode == second.returncode == 1, outs
    together: Counter[str] = Counter()
    for out, _ in outs:
        line = next(l for l in out.splitlines() if l.startswith("computed:"))
        together.update({k: int(v) for k, v in re.findall(r"(\w+) (\d+)", line)})
    # between them, exactly what one session alone computes: nothing twice (the fp value
    # beside each transformed term included: the CLI explains a claim as pytest does)
    assert together == {"trained": 0, "unlearned": 1, "relearned": 0, "transformed": 1,
                        "measured": 7}
    assert len(list((folder / "cache" / "models").iterdir())) == 1
    report = pytest_run(folder)
    assert report["summary"]["work"] == {}  # pytest finds every number in the cache
    assert numbers(report) == clean
    no_debris(folder / "cache")


def test_the_same_spec_twice_from_nothing_gives_identical_reports(
        tmp_path: Path) -> None:
    """Determinism end to end: two fresh caches, so the benchmark models are trained twice
    (at the same time, in two processes), then unlearned, quantized and measured. The first
    cache has also seen a run killed while it trained the benchmark's target model."""
    from unlearnspec.report.json_report import dumps

    folder = project(tmp_path, None)
    bench = folder / "cache1" / "bench"
    rc, out, err = finish(cli(folder, "cache1", fault="bench-step:3"))  # training `target`
    assert rc == -signal.SIGKILL, out + err
    assert any(bench.glob("*/.tmp-target-*"))  # killed while it trained the target
    assert not list(bench.glob("*/target"))  # the half-trained model was not kept

    procs = [subprocess.Popen(
        [sys.executable, "-m", "pytest", "--unlearn-spec", "spec.yaml", "--unlearn-cache-dir",
         f"cache{i}", "--unlearn-report", f"run{i}.json", "-p", "no:cacheprovider", "-q",
         "--rootdir", str(folder)], cwd=folder, stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT, text=True, env=env()) for i in (1, 2)]
    for p in procs:
        out, _ = p.communicate(timeout=600)
        assert p.returncode == 1, out
    assert not [d for d in bench.glob("*/.*") if d.is_dir()]  # the killed run's temp dir
    reports = []
    for i in (1, 2):
        r = json.loads((folder / f"run{i}.json").read_text())
        assert r["summary"]["work"]["trained"] == 3  # target, its aligned copy, retrain
        for key in ("started", "finished"):
            r.pop(key)
        reports.append(dumps(r))
    assert reports[0] == reports[1]
