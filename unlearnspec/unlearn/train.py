"""`run_unlearning`: one unlearning run, from a base checkpoint to the unlearned one.

Everything a user can get wrong is checked before the first step (prepare.py, optim.py); the
loop (loop.py) minimises L_forget + α·L_retain with AdamW (constant lr by default); the result
is a Hugging Face checkpoint (safetensors, fp32 weights, config, tokenizer) written
atomically to `out` (save.py), and the JSON-able log this module assembles.
"""
from __future__ import annotations

import time
from pathlib import Path
from typing import Any, Sequence

import torch

from ..errors import RunError
from ..models.loading import load_causal_lm, transformers_bars
from ..registry import Component
from . import sure as sure_mod
from .data import Chunks, micro_batches_per_epoch, pad_id_of, paired_batches, total_steps
from .loop import train
from .optim import check_optimizer, enable_checkpointing, memory_check
from .prepare import (allowed_parameters, bf16_autocast, check_inputs, document_chunks,
                      frozen_reference, load_method, max_length_of, pair_chunks, sure_saliency)
from .registry import UnlearnConfig
from .save import save_checkpoint
from .sources import TrainingTexts


def run_unlearning(method: Component, config: UnlearnConfig, *, base: Path,
                   forget: Sequence[str] | TrainingTexts, retain: Sequence[str] | TrainingTexts,
                   out: Path, seed: int, device: str = "cpu", progress: bool = True) -> dict:
    """Unlearn `forget` from the checkpoint `base` with `method`; save the result to `out`.

    `config.seed`, when set, overrides `seed`. `retain` may be empty only for methods without
    a retain loss (then it is ignored). Same inputs and seed give a bit-identical checkpoint
    on the same machine and device. Raises RunError/ConfigError before training for: a method
    object without the interface, a config that is not an UnlearnConfig, an empty forget set,
    a missing retain set, an unavailable device, a non-empty `out`, SURE selecting nothing.

    `forget` / `retain` are `TrainingTexts` (what `sources.select` reads from a corpus: the
    texts, their packing and files) or plain lists of documents, packed as `config.packing`
    says (`auto` = one example per document)."""
    started = time.perf_counter()
    impl = load_method(method)
    forget, retain = _as_texts(forget, config), _as_texts(retain, config)
    check_inputs(method, config, forget, retain, impl, Path(base), Path(out), device)
    seed = int(config.seed if config.seed is not None else seed)
    from . import ddp, parallel

    accelerator = None
    if config.processes > 1 and hasattr(impl, "trainable_parameters"):
        raise RunError(f"unlearning with '{method.name}' cannot run on {config.processes} "
                       f"processes: the method reads the hidden states of named layers (RMU), "
                       f"which a DDP- or FSDP-wrapped model does not expose; set processes: 1")
    if config.processes > 1 and not ddp.in_distributed_worker():
        log = ddp.launch(method, config, base=Path(base), forget=forget, retain=retain,
                         out=Path(out), seed=seed, device=device, processes=config.processes)
        return {**log, "seconds": time.perf_counter() - started}
    if config.processes > 1:
        accelerator = parallel.accelerator_for(config, device, method.name)
        device = str(accelerator.device)
    dev = torch.device(device)
    # the caller's global RNG state is left as it was; ours is fixed by the seed
    with torch.random.fork_rng(devices=[dev] if dev.type == "cuda" else []), \
            transformers_bars(progress):
        torch.manual_seed(seed)
        log = _unlearn(method.name, impl, config, Path(base), forget, retain, Path(out), seed,
                       dev, progress, accelerator)
    return {"method": method.name, "seed": seed, "device": str(dev), **log,
            "processes": config.processes, "seconds": time.perf_counter() - started}


def _unlearn(name: str, impl: Any, config: UnlearnConfig, base: Path, forget: list[str],
             retain: list[str], out: Path, seed: int, dev: torch.device,
             progress: bool, accelerator: Any = None) -> dict:
    autocast = bf16_autocast(config, dev)
    check_optimizer(config, dev, name)
    model, tokenizer = load_causal_lm(base, device=str(dev))
    forget_chunks = pair_chunks(impl.examples(forget.texts, config), tokenizer, config, name) \
        if hasattr(impl, "examples") \
        else document_chunks(forget, tokenizer, config, "forget", name)
    retain_chunks = document_chunks(retain, tokenizer, config, "retain", name) \
        if impl.uses_retain else None
    ref = frozen_reference(model, impl, autocast is not None)
    if config.gradient_checkpointing:
        enable_checkpointing(model, name)
    pad = pad_id_of(tokenizer)
    if hasattr(impl, "start"):  # per-run state (RMU's random direction), drawn from the seed
        impl = impl.start(model, ref, config, seed)
    allowed = allowed_parameters(model, impl, config)
    memory = memory_check(model, impl, config, forget_chunks, retain_chunks, dev,
                          autocast is not None, name, progress, allowed)

    saliency = None
    if config.sure is not None:
        saliency = sure_saliency(model, impl, ref, forget_chunks, config, pad, dev,
                                 autocast, allowed)
    else:
        model.requires_grad_(True)
    if allowed is not None:
        for pname, p in model.named_parameters():
            p.requires_grad_(p.requires_grad and pname in allowed)
    frozen = sure_mod.fingerprint(model) if saliency or allowed is not None else {}

    n = len(forget_chunks.ids)
    steps = total_steps(n, batch_size=config.batch_size, grad_accum=config.grad_accum,
                        epochs=config.epochs, max_steps=config.max_steps)
    pairs = paired_batches(forget_chunks, retain_chunks, batch_size=config.batch_size,
                           seed=seed, pad_id=pad)
    wrapped = model
    if accelerator is not None:
        from . import parallel

        trainable = {pname: p.requires_grad for pname, p in model.named_parameters()}
        wrapped = parallel.wrap(model, config, accelerator)
    losses = train(wrapped, impl, ref, pairs, config, steps, dev, autocast, progress, name,
                   accelerator)
    if accelerator is not None:  # process 0 finishes and saves; the others are done
        model = parallel.whole(wrapped, model, config, accelerator, base, trainable)
        if model is None:
            return {}
    if frozen:
        sure_mod.verify_untouched(model, frozen)
    finished = impl.finish(model, ref, config) if hasattr(impl, "finish") else None
    if frozen:
        sure_mod.verify_untouched(model, frozen)
    save_checkpoint(model, tokenizer, out)
    return {
        "precision": "bf16" if autocast is not None else "fp32",
        "steps": steps,
        "epochs": steps * config.grad_accum / micro_batches_per_epoch(n, config.batch_size),
        "forget": _describe(forget_chunks, forget, max_length_of(config, forget)),
        "retain": None if retain_chunks is None
        else _describe(retain_chunks, retain, max_length_of(config, retain)),
        "losses": losses,
        "sure": saliency.to_log(config.sure) if saliency else None,
        "frozen_parameters_verified": len(frozen),
        "trained_parameters": sum(p.numel() for p in model.parameters() if p.requires_grad),
        "memory_estimate": memory.to_log(),
        "optimizer": config.optimizer,
        "gradient_checkpointing": config.gradient_checkpointing,
        **({"fsdp": config.fsdp} if config.fsdp else {}),
        **({"finish": finished} if finished else {}),
    }


def _describe(chunks: Chunks, texts: TrainingTexts, max_length: int) -> dict[str, Any]:
    """What was trained on: packing, files, documents (texts), chunks (windows), tokens."""
    return {"packing": texts.packing, "files": list(texts.files), "max_length": max_length,
            "documents": chunks.documents, "chunks": len(chunks.ids),
            "tokens": sum(len(c) for c in chunks.ids), "without_tokens": chunks.without_tokens}


def _as_texts(texts: Sequence[str] | TrainingTexts, config: UnlearnConfig) -> TrainingTexts:
    if isinstance(texts, TrainingTexts):
        return texts
    texts = list(texts)
    if config.packing == "windows":
        return TrainingTexts(["\n\n".join(texts)] if texts else [], "windows")
    return TrainingTexts(texts, "documents")
