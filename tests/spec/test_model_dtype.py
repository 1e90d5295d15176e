"""`dtype:` on a checkpoint model: `auto` loads the checkpoint in the dtype it was saved in
(as transformers' `dtype="auto"` does), a named dtype casts to it, and none means float32."""
from __future__ import annotations

import pytest
import torch

from unlearnspec.spec import load_spec


def spec_text(ckpt, dtype: str | None) -> str:
    extra = f", dtype: {dtype}" if dtype else ""
    return ("version: 1\ndata:\n  tiny: {builtin: tiny}\nmodels:\n"
            f"  target: {{path: {ckpt}{extra}}}\n"
            "metrics:\n  knowmem_forget: {kind: knowmem, split: forget}\n"
            "claims:\n  - name: c\n    subjects: [target]\n"
            "    assert: knowmem_forget <= 100\n")


@pytest.fixture(scope="module")
def bf16_checkpoint(tiny_checkpoint, tmp_path_factory):
    from unlearnspec.models.loading import load_causal_lm

    model, tok = load_causal_lm(tiny_checkpoint)
    out = tmp_path_factory.mktemp("bf16-ckpt")
    model.to(torch.bfloat16).save_pretrained(out)
    tok.save_pretrained(out)
    return out


@pytest.mark.parametrize(("dtype", "expected"), [("auto", torch.bfloat16),
                                                 ("float16", torch.float16),
                                                 (None, torch.float32)])
def test_model_dtype(write_spec, bf16_checkpoint, tmp_path, dtype, expected) -> None:
    from unlearnspec.engine.run import Run

    spec = load_spec(write_spec(spec_text(bf16_checkpoint, dtype)))
    run = Run(spec, cache_dir=tmp_path / "cache", device="cpu", progress=False)
    model, _ = run.loaded.load("target", None)
    assert {p.dtype for p in model.parameters()} == {expected}
