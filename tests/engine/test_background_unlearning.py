"""A run's other unlearnings done in a second process while it unlearns its first
(engine/background.py): the same models bit for bit as unlearning them one after another,
each counted once, nothing started when the plan's measurements are cached, and a child
that dies leaves its models to the run. Real unlearning runs on the micro benchmark; the
two-core machine is the only thing the tests pretend (`available_cores`)."""
from __future__ import annotations

import hashlib
import shutil
import textwrap
from pathlib import Path

import pytest

from unlearnspec import workers
from unlearnspec.engine import background
from unlearnspec.engine.run import Run
from unlearnspec.outcome import claim_measurements
from unlearnspec.spec import load_spec

pytestmark = pytest.mark.slow

SPEC = """\
version: 1
seed: 0
settings: {batch_size: 64}
data:
  world: {builtin: micro}
models:
  target: {builtin: micro/target-qat}
  ga: {unlearn: ga, from: target, lr: 5.0e-5, max_steps: 6, batch_size: 8}
  ga_klr: {unlearn: ga_klr, from: target, lr: 5.0e-5, max_steps: 6, batch_size: 8}
  npo_klr: {unlearn: npo_klr, from: target, lr: 5.0e-5, max_steps: 6, batch_size: 8}
  again: {unlearn: ga, from: ga_klr, lr: 5.0e-5, max_steps: 4, batch_size: 8}
metrics:
  kf: {kind: knowmem, split: forget}
claims:
  - name: forgets
    subjects: [ga, ga_klr, npo_klr, again]
    assert: kf <= kf(target) + 100
"""
SUBJECTS = ["ga", "ga_klr", "npo_klr", "again"]


@pytest.fixture()
def two_cores(monkeypatch):
    """As on a two-core machine, outside xdist (its workers never start a second process)."""
    monkeypatch.setattr(workers, "available_cores", lambda: 2)
    monkeypatch.delenv("PYTEST_XDIST_WORKER", raising=False)
    monkeypatch.delenv("UNLEARNSPEC_PROCESSES", raising=False)


def project(tmp_path: Path, bench_cache: Path) -> tuple[Path, Path]:
    from unlearnspec.bench import ensure_model

    ensure_model("micro/target-qat", bench_cache, progress=False)
    cache = tmp_path / "cache"
    shutil.copytree(bench_cache / "bench", cache / "bench",
                    ignore=shutil.ignore_patterns(".tmp-*", "*.lock", "tiny-*"))
    spec = tmp_path / "spec.yaml"
    spec.write_text(textwrap.dedent(SPEC))
    return spec, cache


def evaluate(spec: Path, cache: Path, *, background_on: bool = True
             ) -> tuple[dict[str, str], Run]:
    """Every claim decided, as the plugin does (plan all, then one item after another);
    returns each subject's weights digest and the closed run."""
    loaded = load_spec(spec)
    run = Run(loaded, cache_dir=cache, progress=False, background=background_on)
    try:
        claim = loaded.claims[0]
        for s in SUBJECTS:
            run.plan(claim_measurements(run, claim, s))
        for s in SUBJECTS:
            assert run.evaluate(claim, s).passed
        digests = {s: hashlib.sha256((Path(run.model_path(s)) / "model.safetensors")
                                     .read_bytes()).hexdigest() for s in SUBJECTS}
    finally:
        run.close()
    return digests, run


def test_the_second_process_unlearns_the_same_models(tmp_path, bench_cache, two_cores):
    spec, cache = project(tmp_path / "a", bench_cache)
    together, run = evaluate(spec, cache)
    assert run.background.names, "no second process was started"
    # the child took the last-needed models first; the run's own first one is not among them
    assert run.background.names[0] == "again" and "ga" not in run.background.names
    assert run.stats["unlearned"] == 4  # each once, the child's counted here
    assert (cache / "background-unlearning.log").is_file()
    spec2, cache2 = project(tmp_path / "b", bench_cache)
    alone, run2 = evaluate(spec2, cache2, background_on=False)
    assert run2.stats["unlearned"] == 4
    assert together == alone


def test_nothing_starts_when_the_plan_is_cached(tmp_path, bench_cache, two_cores):
    spec, cache = project(tmp_path, bench_cache)
    evaluate(spec, cache, background_on=False)
    _, run = evaluate(spec, cache)
    assert run.background.names == [] and run.stats["unlearned"] == 0


def test_a_child_that_dies_leaves_its_models_to_the_run(tmp_path, bench_cache, two_cores,
                                                        monkeypatch):
    """Killed at its first optimizer step (fault injection in the child only), the child
    leaves a temp directory, never a cache entry; the run unlearns every model itself."""
    class Dying(background.BackgroundUnlearning):
        def child_env(self, threads):
            return {**super().child_env(threads), "UNLEARNSPEC_FAULT": "unlearn-step:1"}

    monkeypatch.setattr(background, "BackgroundUnlearning", Dying)
    spec, cache = project(tmp_path, bench_cache)
    digests, run = evaluate(spec, cache)
    assert run.background.names and run.background.proc is None
    assert run.stats["unlearned"] == 4  # all four here: the child finished none
    spec2, cache2 = project(tmp_path / "b", bench_cache)
    alone, _ = evaluate(spec2, cache2, background_on=False)
    assert digests == alone
