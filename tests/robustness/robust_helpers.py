"""Helpers the robustness tests import: hostile or broken checkpoints built from the shared
tiny model, specs written next to them, and claim items evaluated through the `Run` API."""
from __future__ import annotations

import shutil
import textwrap
from pathlib import Path
from typing import Any


def write_spec(folder: Path, body: str, name: str = "spec.yaml") -> Path:
    """A spec file in `folder` (dedented), so relative `path:`s resolve next to it."""
    path = folder / name
    path.write_text(textwrap.dedent(body).lstrip(), encoding="utf-8")
    return path


def evaluate(spec_path: Path, cache: Path, claim: str | None = None,
             subject: str | None = None) -> Any:
    """Evaluate one claim item of a spec as the plugin does (plan, then evaluate) and return
    the Verdict; errors propagate to the caller."""
    from unlearnspec.engine.run import Run
    from unlearnspec.spec import load_spec

    spec = load_spec(spec_path)
    c = next(c for c in spec.claims if claim is None or c.name == claim)
    s = subject or c.subjects[0]
    run = Run(spec, cache_dir=cache, progress=False)
    try:
        run.plan(run.measurements_of(c, s))
        return run.evaluate(c, s)
    finally:
        run.close()


def copy_checkpoint(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst)
    return dst


def pickle_checkpoint(src: Path, dst: Path) -> Path:
    """The tiny model with its weights only in `pytorch_model.bin` (torch.save of the state
    dict), as older or hand-made checkpoints ship."""
    import torch
    from safetensors.torch import load_file

    copy_checkpoint(src, dst)
    state = load_file(str(dst / "model.safetensors"))
    (dst / "model.safetensors").unlink()
    torch.save(state, dst / "pytorch_model.bin")
    return dst


def always_emit(model, token_id: int) -> None:
    """Collapse `model` (a Llama) in place so it predicts `token_id` at every position: the
    blocks write nothing into the residual stream (o_proj, down_proj = 0), every embedding has
    +1 in dimension 0, and the LM head reads only that dimension into `token_id`'s logit."""
    import torch

    with torch.no_grad():
        for layer in model.model.layers:
            layer.self_attn.o_proj.weight.zero_()
            layer.mlp.down_proj.weight.zero_()
        model.model.embed_tokens.weight[:, 0] = 1.0
        model.lm_head.weight.zero_()
        model.lm_head.weight[token_id, 0] = 10.0


def eos_always_checkpoint(src: Path, dst: Path) -> Path:
    """A collapsed model that ends every generation at once (EOS wins at every position)."""
    import torch
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(src, dtype=torch.float32)
    always_emit(model, model.config.eos_token_id)
    copy_checkpoint(src, dst)
    model.save_pretrained(dst, safe_serialization=True)
    return dst


def retokenized_checkpoint(src: Path, dst: Path) -> Path:
    """The tiny model saved with a tokenizer that has one extra token (and embeddings resized
    to match): a checkpoint that loads and runs but counts in other units."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(src)
    tok.add_tokens(["omicron"])
    model = AutoModelForCausalLM.from_pretrained(src, dtype=torch.float32)
    model.resize_token_embeddings(len(tok))
    dst.mkdir(parents=True)
    model.save_pretrained(dst, safe_serialization=True)
    tok.save_pretrained(dst)
    return dst


def perturbed_checkpoint(src: Path, dst: Path, scale: float = 0.05, seed: int = 1) -> Path:
    """The tiny model with seeded noise added to every weight: same architecture and
    tokenizer, other numbers (a new commit of the same repository)."""
    import torch
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(src, dtype=torch.float32)
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(scale * torch.randn(p.shape, generator=gen))
    copy_checkpoint(src, dst)
    model.save_pretrained(dst, safe_serialization=True)
    return dst
