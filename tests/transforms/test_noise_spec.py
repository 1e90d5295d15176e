"""`kind: noise` in a spec: `matched_to` must name a quantizer of the spec, the engine binds it
and keys the cache on it, and `draws: K` reports the mean of K measured draws."""
from __future__ import annotations

import shutil
import textwrap
from pathlib import Path

import pytest

from unlearnspec.errors import SpecError

SPEC = """\
version: 1
data:
  world: {builtin: micro}
models:
  subject: {path: ./ckpt}
transforms:
  rtn4: {kind: rtn, bits: 4}
  rtn3: {kind: rtn, bits: 3}
  n4: {kind: noise, matched_to: MATCH, draws: DRAWS}
metrics:
  loss: {kind: mia_loss}
claims:
  - name: c
    subjects: [subject]
    assert: loss @ n4 <= loss + 1000
"""


def _spec(tmp_path: Path, match: str = "rtn4", draws: int = 1) -> Path:
    p = tmp_path / "spec.yaml"
    p.write_text(SPEC.replace("MATCH", match).replace("DRAWS", str(draws)))
    return p


@pytest.mark.parametrize("match", ["rtn5", "n4"])
def test_matched_to_must_name_another_quantizer_of_the_spec(tmp_path, match):
    from unlearnspec.spec import load_spec

    with pytest.raises(SpecError) as info:
        load_spec(_spec(tmp_path, match))
    msg = str(info.value)
    assert "spec.yaml:9" in msg and f"matched_to: '{match}' is not a quantizer" in msg


@pytest.mark.slow
def test_draws_are_measured_and_averaged_and_keyed_on_the_quantizer(tiny_checkpoint,
                                                                      tmp_path):
    from unlearnspec.bench import ensure_data
    from unlearnspec.engine.measurement import Measurement
    from unlearnspec.engine.run import Run
    from unlearnspec.spec import load_spec

    cache = tmp_path / "cache"
    ensure_data("micro", cache)
    shutil.copytree(tiny_checkpoint, tmp_path / "ckpt")
    runs = {}
    for match, draws in (("rtn4", 1), ("rtn4", 3), ("rtn3", 1)):
        run = Run(load_spec(_spec(tmp_path, match, draws)), cache_dir=cache, progress=False)
        try:
            runs[(match, draws)] = (run.measure(Measurement("loss", "subject", "n4")),
                                    run.transform_key("n4"))
        finally:
            run.close()
    one, key1 = runs[("rtn4", 1)]
    three, key3 = runs[("rtn4", 3)]
    other, key_other = runs[("rtn3", 1)]
    values = three.details["draws"]["values"]
    assert len(values) == 3
    assert values[0] == one.value  # draw 0 is the single-draw transform
    # the per-document losses are the mean over draws, so they differ from draw 0's alone
    assert len(three.per_sample) == len(one.per_sample) > 0
    assert three.per_sample != one.per_sample
    assert three.value == pytest.approx(sum(values) / 3)
    assert three.details["coverage"]["decoder"]["share"] == 1.0
    assert len({key1, key3, key_other}) == 3  # the cache never mixes them up
    assert other.per_sample != one.per_sample  # rtn3's error is larger than rtn4's
