"""`kind: gguf` and `kind: torchao` end to end through a spec on the micro benchmark: claims over
KnowMem and γ under llama.cpp's Q8_0 / Q4_0 and torchao int8 are measured (coverage
recorded, distinct cache keys), the 8-bit formats keep the unlearning update, and Q4_0 rounds a
short unlearning away (docs/benchmark.md)."""
from __future__ import annotations

import textwrap

import pytest

pytest.importorskip("gguf")
pytest.importorskip("torchao")

pytestmark = pytest.mark.slow  # unlearns and measures the micro benchmark

SPEC = """\
version: 1
seed: 0
data:
  world: {builtin: micro}
models:
  target: {builtin: micro/target-qat}
  ga_klr: {unlearn: ga_klr, from: target, lr: 5.0e-5, max_steps: 16, batch_size: 8}
transforms:
  rtn4: {kind: rtn, bits: 4}
  q4_0: {kind: gguf, type: Q4_0}
  q8_0: {kind: gguf, type: Q8_0}
  ao8: {kind: torchao, mode: int8}
metrics:
  knowmem_forget: {kind: knowmem, split: forget}
  gamma: {kind: update_retention}
claims:
  - name: keeps-update-8bit
    subjects: [ga_klr]
    assert: min(gamma @ q8_0, gamma @ ao8) >= gamma @ q4_0 - 0.05
"""


def test_gguf_and_torchao_claims_run_through_the_engine(bench_cache, tmp_path):
    from unlearnspec.bench import ensure_model
    from unlearnspec.engine.measurement import Measurement
    from unlearnspec.engine.run import Run
    from unlearnspec.spec import load_spec

    ensure_model("micro/target-qat", bench_cache, progress=False)
    path = tmp_path / "spec.yaml"
    path.write_text(textwrap.dedent(SPEC))
    spec = load_spec(path)
    run = Run(spec, cache_dir=bench_cache, progress=False)
    try:
        verdicts = {}
        for claim in spec.claims:
            run.plan(run.measurements_of(claim, "ga_klr"))
            verdicts[claim.name] = run.evaluate(claim, "ga_klr")
        gammas = {t: run.measure(Measurement("gamma", "ga_klr", t)) for t in
                  ("rtn4", "q4_0", "q8_0", "ao8")}
        km = {t: run.measure(Measurement("knowmem_forget", "ga_klr", t)).value
              for t in (None, "q4_0")}
        keys = {run.transform_key(t) for t in ("q4_0", "q8_0", "ao8")}
    finally:
        run.close()
    assert all(v.passed for v in verdicts.values()), {k: v.explain() for k, v in
                                                      verdicts.items()}
    for t, g in gammas.items():
        assert g.details["coverage"]["decoder"]["share"] == 1.0, t
    assert gammas["q8_0"].value > 0.9 and gammas["ao8"].value > 0.9
    # docs/benchmark.md: a short unlearning on micro is mostly rounded away by Q4_0 as well
    # (16 steps: at 12, one machine's micro ga_klr forgot one of 13 questions, another's none)
    assert gammas["q4_0"].value < 0.5 and km["q4_0"] > km[None]
    assert len(keys) == 3
