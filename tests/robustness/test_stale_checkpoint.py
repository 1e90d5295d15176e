"""A checkpoint replaced in place by another model of the same size, with the old mtime put
back (what `cp -p`, `rsync -t` and tar extraction do), is measured again: a release gate must
never pass on numbers from the weights it replaced."""
from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from tests.conftest import make_tiny_checkpoint
from robust_helpers import copy_checkpoint, evaluate, write_spec

pytestmark = pytest.mark.slow  # loads and measures a real (tiny) model

# the fraction of 4-bit codes that differ from the original: 0 for a copy of it, most of
# them for other weights; it reads every weight and no data
SPEC = """\
version: 1
models:
  target: {path: ./original}
  subject: {path: ./ckpt}
transforms:
  rtn4: {kind: rtn, bits: 4}
metrics:
  flips: {kind: code_flip_rate, reference: target}
claims:
  - name: measured
    subjects: [subject]
    assert: flips @ rtn4 >= 0
"""


def test_checkpoint_rewritten_with_same_size_and_mtime_is_measured_again(
        tiny_checkpoint: Path, tmp_path: Path, micro_data: Path) -> None:
    copy_checkpoint(tiny_checkpoint, tmp_path / "original")
    ckpt = copy_checkpoint(tiny_checkpoint, tmp_path / "ckpt")
    other = make_tiny_checkpoint(tmp_path / "other", seed=1)  # same shapes, other weights
    spec = write_spec(tmp_path, SPEC)
    old = evaluate(spec, micro_data).lhs
    assert old == 0

    weights = ckpt / "model.safetensors"
    st = weights.stat()
    new_bytes = (other / "model.safetensors").read_bytes()
    assert len(new_bytes) == st.st_size and new_bytes != weights.read_bytes()
    with open(weights, "r+b") as f:
        f.write(new_bytes)
    os.utime(weights, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert (weights.stat().st_size, weights.stat().st_mtime_ns) == (st.st_size, st.st_mtime_ns)

    rerun = evaluate(spec, micro_data).lhs
    fresh = tmp_path / "fresh"
    shutil.copytree(micro_data, fresh)
    shutil.rmtree(ckpt)
    shutil.copytree(other, ckpt)
    direct = evaluate(spec, fresh).lhs  # the new weights, measured in an empty cache
    assert rerun == direct > 0.5
