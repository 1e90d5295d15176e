"""A fully cached run must not import torch (about 3 s of a 5 s warm main job went to it):
every cache key, `device: auto` and the PrivLeak bootstrap are computed torch-free, and the
methods and transforms import torch only when they train or quantize."""
from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

pytestmark = pytest.mark.slow

SPEC = """
version: 1
seed: 0
data:
  world: {builtin: micro}
models:
  target: {builtin: micro/target-qat}
  ga: {unlearn: ga, from: target, max_steps: 1}
  ga_gdr: {unlearn: ga_gdr, from: target, max_steps: 1}
  npo_klr: {unlearn: npo_klr, from: target, max_steps: 1, sure: {percentile: 90}}
transforms:
  rtn4: {kind: rtn, bits: 4}
  nf4: {kind: bnb, mode: nf4}
  gptq4: {kind: gptq, bits: 4, group_size: 128, calibration: world, n_samples: 2, seq_len: 16}
  noise_rtn4: {kind: noise, matched_to: rtn4, draws: 2}
  rel: {kind: relearn, steps: 1, lr: 1.0e-4}
  rel_rtn4: {chain: [rel, rtn4]}
metrics:
  knowmem_forget: {kind: knowmem, split: forget}
claims:
  - name: probe
    subjects: [ga, ga_gdr, npo_klr]
    assert: knowmem_forget <= knowmem_forget(target)
"""


def test_cache_keys_and_device_auto_do_not_import_torch(bench_cache, tmp_path):
    from unlearnspec.bench import ensure_data, ensure_model

    ensure_data("micro", bench_cache)
    ensure_model("micro/target-qat", bench_cache, progress=False)  # built outside the probe
    spec = tmp_path / "spec.yaml"
    spec.write_text(SPEC)
    code = textwrap.dedent(f"""
        import sys
        from pathlib import Path
        from unlearnspec.engine.run import Run
        from unlearnspec.spec.loader import load_spec

        spec = load_spec({str(spec)!r})
        run = Run(spec, cache_dir=Path({str(bench_cache)!r}), device="auto", progress=False)
        keys = [run.model_key(m) for m in spec.models]
        keys += [run.transform_key(t) for t in spec.transforms]
        assert run.device == "cpu"
        from unlearnspec.metrics.privleak import privleak_score  # the bootstrap's import
        run.close()
        assert "torch" not in sys.modules, "torch was imported"
        print(len(set(keys)))
    """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr[-3000:]
    assert out.stdout.split()[-1] == "10"  # 4 models and 6 transforms, all distinct
