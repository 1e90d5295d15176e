"""`kind: relearn`: the held-out part of the forget set (seeded, exact, kept out of every metric
of a claim that relearns on it), the relearned checkpoint as a cached artifact of the shared
training loop, and what relearning does on the embedded benchmark."""
from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from unlearnspec.errors import RunError, SpecError
from unlearnspec.transforms.holdout import HeldOutCorpus, holdout_indices, pair_key

SPEC = """\
version: 1
seed: SEED
data:
  world: {builtin: micro}
models:
  subject: {path: ./ckpt}
  other: {path: ./ckpt}
transforms:
  rtn4: {kind: rtn, bits: 4}
  rel: {kind: relearn, steps: STEPS, lr: 1.0e-3, batch_size: 2, holdout: 0.5}
  rel_retain: {kind: relearn, steps: 2, lr: 1.0e-3, data: retain}
  rel_rtn4: {chain: [rel, rtn4]}
metrics:
  km: {kind: knowmem, split: forget, max_new_tokens: 4}
  km_retain: {kind: knowmem, split: retain, max_new_tokens: 4}
  vm: {kind: verbmem, max_new_tokens: 4}
  probe: {kind: rwku}
claims:
  - name: relearned
    subjects: [subject]
    assert: km @ rel <= km(other) + 100
  - name: retain-only
    subjects: [subject]
    assert: km_retain @ rel >= 0
  - name: verbmem-under-relearn
    subjects: [subject]
    assert: vm @ rel <= vm + 100
  - name: plain
    subjects: [subject]
    assert: km <= 100
  - name: relearned-interval
    subjects: [subject]
    confidence: 0.9
    assert: km @ rel <= km(other) + 100
"""


@settings(max_examples=80, deadline=None)
@given(n=st.integers(2, 300), frac=st.floats(0.01, 0.99), seed=st.integers(0, 1000))
def test_holdout_is_a_seeded_proper_subset(n, frac, seed):
    try:
        idx = holdout_indices(n, frac, seed)
    except RunError:  # rounds up to all of them: refused, never an empty measurement
        assert round(n * frac) >= n
        return
    assert idx == sorted(set(idx)) and 0 < len(idx) < n and all(0 <= i < n for i in idx)
    assert idx == holdout_indices(n, frac, seed)
    assert len(idx) == max(1, round(n * frac))


def test_holdout_depends_on_the_seed_and_takes_counts():
    assert holdout_indices(50, 0.5, 0) != holdout_indices(50, 0.5, 1)
    assert len(holdout_indices(50, 7, 0)) == 7
    with pytest.raises(RunError, match="leaving none to measure"):
        holdout_indices(5, 5, 0)


def _corpus(tmp_path):
    from unlearnspec.bench import ensure_data
    from unlearnspec.data import Corpus

    return Corpus(ensure_data("micro", tmp_path / "cache"))


def test_held_out_corpus_excludes_exactly_those_pairs_and_refuses_other_forget_data(tmp_path):
    corpus = _corpus(tmp_path)
    records = corpus.knowmem("forget")
    out = {pair_key(r) for r in records[:3]}
    view = HeldOutCorpus(corpus.root, excluded=frozenset(out), owners=("rel50",))
    kept = view.knowmem("forget")
    assert len(kept) == len(records) - 3 and not {pair_key(r) for r in kept} & out
    assert view.knowmem("retain") == corpus.knowmem("retain")
    assert view.knowmem_icl("forget") == corpus.knowmem_icl("forget")
    assert view.privleak("holdout") == corpus.privleak("holdout")
    for read in (lambda: view.verbmem("forget"), lambda: view.privleak("forget"),
                 lambda: view.raw("forget")):
        with pytest.raises(RunError, match="'rel50'.*cannot exclude"):
            read()


@pytest.mark.parametrize("bad,message", [
    ("max_length: 1", "max_length must be at least 2"),
    ("data: forget", "data must be forget_holdout, retain or {path: FILE}"),
    ("holdout: 2.5", "holdout must be a fraction"),
    ("data: {file: x}", "data as a mapping must be {path: FILE}"),
    ("corpus: nowhere", "corpus: 'nowhere' is not a data entry"),
])
@pytest.mark.parametrize("steps", ["2", "0"])
def test_bad_relearn_options_point_at_the_spec(tmp_path, bad, message, steps):
    from unlearnspec.spec import load_spec

    if steps == "0":
        bad, message = "holdout: 0.5", "steps must be a positive integer"
    text = SPEC.replace("SEED", "0").replace("STEPS", steps).replace("holdout: 0.5", bad)
    p = tmp_path / "spec.yaml"
    p.write_text(text)
    with pytest.raises(SpecError) as info:
        load_spec(p)
    assert "spec.yaml:10" in str(info.value) and message in str(info.value)


@pytest.fixture(scope="module")
def micro_ckpt(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A random tiny Llama whose word-level vocabulary covers the micro world's words (so its
    answers are words, not <unk>)."""
    from unlearnspec.bench.world import make_world
    from tests.conftest import make_tiny_checkpoint

    words = sorted({w for t in make_world("micro").all_texts() for w in t.split()} - {"\n"})
    return make_tiny_checkpoint(tmp_path_factory.mktemp("micro-ckpt"), words=words)


def _run(tmp_path: Path, ckpt: Path, *, steps: int = 2, seed: int = 0, cache: Path | None = None):
    from unlearnspec.bench import ensure_data
    from unlearnspec.engine.run import Run
    from unlearnspec.spec import load_spec

    cache = cache or tmp_path / "cache"
    ensure_data("micro", cache)
    if not (tmp_path / "ckpt").exists():
        shutil.copytree(ckpt, tmp_path / "ckpt")
    p = tmp_path / "spec.yaml"
    p.write_text(SPEC.replace("SEED", str(seed)).replace("STEPS", str(steps)))
    return Run(load_spec(p), cache_dir=cache, progress=False)


def _claim(run, name):
    return next(c for c in run.spec.claims if c.name == name)


@pytest.mark.slow
def test_relearned_model_is_a_cached_deterministic_artifact(micro_ckpt, tmp_path):
    from unlearnspec.engine.cache import file_digest

    run = _run(tmp_path, micro_ckpt)
    path = run.relearned_path("subject", ["rel"])
    assert run.stats["relearned"] == 1 and (path / "relearn_log.json").is_file()
    digest = file_digest(path / "model.safetensors")
    assert digest != file_digest(micro_ckpt / "model.safetensors")
    import json

    log = json.loads((path / "relearn_log.json").read_text())
    assert log["method"] == "relearn" and log["steps"] == 2
    assert log["forget"]["documents"] == len(run.held_out("rel"))
    again = _run(tmp_path, micro_ckpt)
    assert again.relearned_path("subject", ["rel"]) == path
    assert again.stats["relearned"] == 0  # from the cache
    # the same spec in a fresh cache trains the same bytes
    fresh = _run(tmp_path, micro_ckpt, cache=tmp_path / "cache2")
    assert file_digest(fresh.relearned_path("subject", ["rel"]) / "model.safetensors") == digest
    # a chain starting with it reuses the artifact instead of training again
    chained = _run(tmp_path, micro_ckpt)
    chained.loaded.load("subject", "rel_rtn4")
    assert chained.stats["relearned"] == 0 and chained.stats["transformed"] == 1
    # keys follow what changes the numbers
    keys = {_run(tmp_path, micro_ckpt, steps=s, seed=sd).transform_key("rel")
            for s, sd in ((2, 0), (3, 0), (2, 1))}
    assert len(keys) == 3
    assert run.transform_key("rel_rtn4") != run.transform_key("rel")


@pytest.mark.slow
def test_every_metric_of_a_relearning_claim_leaves_the_holdout_out(micro_ckpt, tmp_path):
    run = _run(tmp_path, micro_ckpt)
    n_all = len(run.corpus("world").knowmem("forget"))
    held = {(p["question"], p["answer"]) for p in run.held_out("rel")}
    claim = _claim(run, "relearned")
    ms = run.measurements_of(claim, "subject")
    assert {m.model for m in ms} == {"subject", "other"}
    assert all(m.exclude == ("rel",) for m in ms)
    verdict = run.evaluate(claim, "subject")
    for m in ms:
        r = run.measure(m)
        assert r.n == n_all - len(held)  # the relearned pairs are not measured
        assert "without rel's holdout" in m.label()
    assert all("without rel's holdout" in label for label, _ in verdict.terms)
    # the same metric in a claim without relearning sees every pair, under another key
    plain = run.measurements_of(_claim(run, "plain"), "subject")[0]
    assert plain.exclude == () and run.measure(plain).n == n_all
    assert run.measurement_key(plain) != run.measurement_key(ms[1])
    # a retain metric needs no exclusion and measures its whole set
    retain = run.measurements_of(_claim(run, "retain-only"), "subject")[0]
    assert run.measure(retain).n == len(run.corpus("world").knowmem("retain"))
    # the bootstrap resamples the same reduced sample set the verdict measured
    interval = run.evaluate(_claim(run, "relearned-interval"), "subject").interval
    assert interval is not None and f"{n_all - len(held)} samples of km" in interval.samples
    # a metric that cannot leave the holdout out is an error, not a full-set number
    with pytest.raises(RunError, match="cannot exclude"):
        run.evaluate(_claim(run, "verbmem-under-relearn"), "subject")
    # and so is one that reads its files itself, past the held-out view
    from unlearnspec.engine.measurement import Measurement

    with pytest.raises(RunError, match="'probe' \\(rwku\\) reads its data files itself"):
        run.measurer.metric_corpus(Measurement("probe", "subject", "rel", ("rel",)), "world")


@pytest.mark.slow
def test_relearning_on_retain_trains_on_the_retain_texts(micro_ckpt, tmp_path):
    import json

    run = _run(tmp_path, micro_ckpt)
    assert run.exclusions(["rel_retain"]) == ()
    path = run.relearned_path("subject", ["rel_retain"])
    log = json.loads((path / "relearn_log.json").read_text())
    assert log["forget"]["documents"] == len(run.corpus("world").raw("retain"))


@pytest.mark.slow
def test_relearning_on_forget_holdout_raises_knowmem_forget(bench_cache, tmp_path):
    """The attack works on the benchmark: 30 steps on half of the forget QA bring part of the
    other half's answers back (measured on this machine: 46.8 -> 53.3 on the other half)."""
    from unlearnspec.engine.run import Run
    from unlearnspec.spec import load_spec

    p = tmp_path / "spec.yaml"
    p.write_text("""\
version: 1
settings: {batch_size: 64}
data:
  world: {builtin: tiny}
models:
  target: {builtin: tiny/target-qat}
  ga_klr: {unlearn: ga_klr, from: target, lr: 5.0e-5, epochs: 15}
transforms:
  rel30: {kind: relearn, steps: 30, lr: 1.0e-4}
metrics:
  km: {kind: knowmem, split: forget}
claims:
  - name: relearns
    subjects: [ga_klr]
    assert: km @ rel30 >= km + 3
""")
    run = Run(load_spec(p), cache_dir=bench_cache, progress=False)
    verdict = run.evaluate(run.spec.claims[0], "ga_klr")
    assert verdict.passed, verdict.explain()
