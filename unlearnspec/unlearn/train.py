"""`run_unlearning`: the one training loop every method shares.

Each optimizer step draws `grad_accum` (forget, retain) micro-batch pairs and minimises
L_forget + α·L_retain with AdamW (constant lr by default). Everything a user can get wrong is
checked before the first step; the result is a Hugging Face checkpoint (safetensors, fp32
weights, config, tokenizer) written atomically to `out`, and a JSON-able log.
"""
from __future__ import annotations

import contextlib
import copy
import inspect
import math
import os
import shutil
import time
from pathlib import Path
from typing import Any, Iterator, Sequence

import torch

from ..errors import RunError
from ..faults import fault_point
from ..models.loading import load_causal_lm, transformers_bars
from ..registry import Component
from . import sure as sure_mod
from .data import (Batch, Chunks, collate, micro_batches_per_epoch, pad_id_of, paired_batches,
                   tokenize_documents, tokenize_pairs, total_steps)
from .methods import missing_interface
from .progress import LossProgress
from .registry import UnlearnConfig
from .sources import DOCUMENT_MAX_LENGTH, TrainingTexts, default_max_length, pack_windows


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
    impl = _load_method(method)
    forget, retain = _as_texts(forget, config), _as_texts(retain, config)
    _check_inputs(method, config, forget, retain, impl, Path(base), Path(out), device)
    seed = int(config.seed if config.seed is not None else seed)
    from . import ddp

    accelerator = None
    if config.processes > 1 and hasattr(impl, "trainable_parameters"):
        raise RunError(f"unlearning with '{method.name}' cannot run on {config.processes} "
                       f"processes: the method reads the hidden states of named layers (RMU), "
                       f"which a DDP-wrapped model does not expose; set processes: 1")
    if config.processes > 1 and not ddp.in_distributed_worker():
        log = ddp.launch(method, config, base=Path(base), forget=forget, retain=retain,
                         out=Path(out), seed=seed, device=device, processes=config.processes)
        return {**log, "seconds": time.perf_counter() - started}
    if config.processes > 1:
        accelerator = _accelerator(config, device, method.name)
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


def _accelerator(config: UnlearnConfig, device: str, name: str) -> Any:
    """This process's accelerate state, checked against the `processes` the config asks."""
    from accelerate import Accelerator

    acc = Accelerator(cpu=not device.startswith("cuda"), mixed_precision="no")
    if acc.num_processes != config.processes:
        raise RunError(f"unlearning with '{name}': processes is {config.processes} but this "
                       f"worker was launched among {acc.num_processes}; launch as many "
                       f"processes as the config says")
    return acc


def _unlearn(name: str, impl: Any, config: UnlearnConfig, base: Path, forget: list[str],
             retain: list[str], out: Path, seed: int, dev: torch.device,
             progress: bool, accelerator: Any = None) -> dict:
    autocast = _autocast(config, dev)
    _check_optimizer(config, dev, name)
    model, tokenizer = load_causal_lm(base, device=str(dev))
    forget_chunks = _pairs(impl.examples(forget.texts, config), tokenizer, config, name) \
        if hasattr(impl, "examples") else _chunks(forget, tokenizer, config, "forget", name)
    retain_chunks = _chunks(retain, tokenizer, config, "retain", name) \
        if impl.uses_retain else None
    ref = _reference(model, impl, autocast is not None)
    if config.gradient_checkpointing:
        _enable_checkpointing(model, name)
    pad = pad_id_of(tokenizer)
    if hasattr(impl, "start"):  # per-run state (RMU's random direction), drawn from the seed
        impl = impl.start(model, ref, config, seed)
    allowed = _allowed_parameters(model, impl, config)
    memory = _memory_check(model, impl, config, forget_chunks, retain_chunks, dev,
                           autocast is not None, name, progress, allowed)

    saliency = None
    if config.sure is not None:
        saliency = _saliency(model, impl, ref, forget_chunks, config, pad, dev, autocast,
                             allowed)
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
    losses = _train(model, impl, ref, pairs, config, steps, dev, autocast, progress, name,
                    accelerator)
    if frozen:
        sure_mod.verify_untouched(model, frozen)
    finished = impl.finish(model, ref, config) if hasattr(impl, "finish") else None
    if frozen:
        sure_mod.verify_untouched(model, frozen)
    if accelerator is None or accelerator.is_main_process:
        _save(model, tokenizer, out)
    if accelerator is not None:
        accelerator.wait_for_everyone()
    return {
        "precision": "bf16" if autocast is not None else "fp32",
        "steps": steps,
        "epochs": steps * config.grad_accum / micro_batches_per_epoch(n, config.batch_size),
        "forget": _describe(forget_chunks, forget, _max_length(config, forget)),
        "retain": None if retain_chunks is None
        else _describe(retain_chunks, retain, _max_length(config, retain)),
        "losses": losses,
        "sure": saliency.to_log(config.sure) if saliency else None,
        "frozen_parameters_verified": len(frozen),
        "trained_parameters": sum(p.numel() for p in model.parameters() if p.requires_grad),
        "memory_estimate": memory.to_log(),
        "optimizer": config.optimizer,
        "gradient_checkpointing": config.gradient_checkpointing,
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


def _max_length(config: UnlearnConfig, texts: TrainingTexts) -> int:
    return config.max_length or default_max_length(texts.packing)


# ---------------------------------------------------------------- checks before training


def _load_method(method: Component) -> Any:
    impl = method.load()
    missing = missing_interface(impl)
    if missing:
        raise RunError(
            f"unlearning method '{method.name}' ({method.target}) is a "
            f"{type(impl).__name__} without {', '.join(missing)}; it must give an object with "
            f"the method interface, e.g. unlearnspec.unlearn.methods.Method (see "
            f"docs/methods.md).")
    return impl


def _check_inputs(method: Component, config: Any, forget: list[str], retain: list[str],
                  impl: Any, base: Path, out: Path, device: str) -> None:
    if not isinstance(config, UnlearnConfig):
        raise RunError(f"unlearning method '{method.name}' got a {type(config).__name__} "
                       f"config; run_unlearning needs an UnlearnConfig (or a subclass).")
    if not forget:
        raise RunError(f"unlearning with '{method.name}': the forget set is empty, so there "
                       f"is nothing to unlearn. Point the spec's data at a corpus with "
                       f"forget documents.")
    if impl.uses_retain and not retain:
        raise RunError(f"unlearning method '{method.name}' regularizes on the retain set, "
                       f"but the retain set is empty. Provide retain documents or use a "
                       f"method without a retain loss.")
    if not base.is_dir():
        raise RunError(f"unlearning with '{method.name}': the base checkpoint {base} is not a "
                       f"directory; run_unlearning needs a local Hugging Face checkpoint.")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise RunError(f"device '{device}' was requested but CUDA is not available here; "
                       f"use device 'cpu'.")
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise RunError(f"{out} already exists and is not empty; refusing to overwrite it. "
                       f"Remove it or choose another output directory.")


def _chunks(texts: TrainingTexts, tokenizer: Any, config: UnlearnConfig, split: str,
            name: str) -> Chunks:
    max_length = _max_length(config, texts)
    if texts.packing == "windows":
        bos = getattr(tokenizer, "bos_token_id", None)
        windows = [w for text in texts.texts for w in pack_windows(
            tokenizer(text, add_special_tokens=False, verbose=False)["input_ids"],
            max_length, bos)]
        chunks = Chunks(windows, len(texts.texts), sum(not t for t in texts.texts))
    else:
        chunks = tokenize_documents(texts.texts, tokenizer, max_length)
    if not chunks.ids:
        raise RunError(f"unlearning with '{name}': none of the {chunks.documents} {split} "
                       f"documents has a token to train on (all are empty). Check the "
                       f"corpus's {split} texts.")
    return chunks


def _pairs(pairs: list[tuple[str, str]], tokenizer: Any, config: UnlearnConfig,
           name: str) -> Chunks:
    """(prompt, completion) forget examples (RT's question + refusal)."""
    unk = getattr(tokenizer, "unk_token_id", None)
    for _, completion in pairs[:1]:
        ids = tokenizer(completion, add_special_tokens=False, verbose=False)["input_ids"]
        if unk is not None and unk in ids:
            raise RunError(f"unlearning with '{name}': the completion {completion!r} has words "
                           f"this tokenizer does not know (it encodes them as "
                           f"{tokenizer.unk_token!r}); the model would be trained to say "
                           f"<unk>. Choose a completion in the model's vocabulary.")
    chunks = tokenize_pairs(pairs, tokenizer, config.max_length or DOCUMENT_MAX_LENGTH)
    if not chunks.ids:
        raise RunError(f"unlearning with '{name}': none of the {chunks.documents} forget "
                       f"examples has a completion token within max_length "
                       f"{config.max_length or DOCUMENT_MAX_LENGTH}. Raise max_length.")
    return chunks


def _autocast(config: UnlearnConfig, dev: torch.device) -> Any:
    """A bf16 autocast factory, or None for fp32. Master weights stay fp32 either way: with
    lr ~1e-5, bf16 weights would round most updates away."""
    bf16 = config.precision == "bf16" or (config.precision == "auto" and dev.type == "cuda")
    if not bf16:
        return None
    return lambda: torch.autocast(device_type=dev.type, dtype=torch.bfloat16)


def _reference(model: Any, impl: Any, bf16: bool) -> Any:
    """The frozen target, made once: eval mode, no grads (bf16 when training under bf16
    autocast, which computes in bf16 anyway and halves its memory)."""
    if not impl.needs_reference:
        return None
    ref = copy.deepcopy(model)
    if bf16:
        ref.to(torch.bfloat16)
    ref.eval()
    ref.requires_grad_(False)
    return ref


def _allowed_parameters(model: Any, impl: Any, config: UnlearnConfig) -> set[str] | None:
    """The parameters a method restricts training to (RMU's updated layers), or None."""
    if not hasattr(impl, "trainable_parameters"):
        return None
    return set(impl.trainable_parameters(model, config))


def _saliency(model: Any, impl: Any, ref: Any, forget: Chunks, config: UnlearnConfig,
              pad: int, dev: torch.device, autocast: Any,
              allowed: set[str] | None = None) -> sure_mod.Saliency:
    modules = sure_mod.candidate_modules(model, config.sure)
    if allowed is not None:  # SURE ranks only modules the method itself would train
        names = {id(p): n for n, p in model.named_parameters()}
        modules = {n: m for n, m in modules.items()
                   if any(names[id(p)] in allowed for p in m.parameters())}
        if not modules:
            raise RunError(f"SURE has no module to rank: the method '{impl.name}' trains only "
                           f"{len(allowed)} parameters and none is in a module sure.modules "
                           f"selects.")
    bs = config.batch_size
    prompts = forget.prompt_lengths
    batches = [collate(forget.ids[i:i + bs], pad,
                       None if prompts is None else prompts[i:i + bs]).to(dev)
               for i in range(0, len(forget.ids), bs)]

    def loss_of(batch: Batch) -> torch.Tensor:
        with autocast() if autocast else contextlib.nullcontext():
            return impl.forget_loss(model, batch, ref, config)

    model.train()
    scores = sure_mod.saliency_scores(model, modules, loss_of, batches)
    threshold, selected = sure_mod.select(scores, config.sure.percentile)
    sure_mod.apply_mask(model, modules, selected)
    return sure_mod.Saliency(scores, threshold, selected)


# ---------------------------------------------------------------- memory and optimizers


def _check_optimizer(config: UnlearnConfig, dev: torch.device, name: str) -> None:
    """Refuse, before loading anything, an optimizer this device cannot run as asked."""
    if config.optimizer == "adamw":
        return
    if config.optimizer.startswith("paged") and dev.type != "cuda":
        raise RunError(
            f"unlearning with '{name}': optimizer {config.optimizer} pages its states between "
            f"GPU and host memory through CUDA unified memory, and this run is on {dev}, "
            f"where the states already live in host memory: paging would do nothing. Use "
            f"optimizer: adamw_8bit (uint8 states, runs on CPU) or adamw, or run on CUDA.")
    try:
        import bitsandbytes  # noqa: F401
    except ImportError as exc:
        raise RunError(f"unlearning with '{name}': optimizer {config.optimizer} comes from "
                       f"bitsandbytes, which is not installed ({exc}); pip install "
                       f"bitsandbytes, or use optimizer: adamw") from exc


def _optimizer(params: list[Any], config: UnlearnConfig) -> Any:
    if config.optimizer == "adamw":
        return torch.optim.AdamW(params, lr=config.lr, weight_decay=config.weight_decay)
    import bitsandbytes as bnb

    cls = {"adamw_8bit": bnb.optim.AdamW8bit, "paged_adamw": bnb.optim.PagedAdamW,
           "paged_adamw_8bit": bnb.optim.PagedAdamW8bit}[config.optimizer]
    return cls(params, lr=config.lr, weight_decay=config.weight_decay)


def _enable_checkpointing(model: Any, name: str) -> None:
    if not getattr(model, "supports_gradient_checkpointing", False):
        raise RunError(f"unlearning with '{name}': gradient_checkpointing was asked for, but "
                       f"{type(model).__name__} does not support it in transformers; set "
                       f"gradient_checkpointing: false")
    # non-reentrant: works when the inputs need no grad (SURE freezes most parameters)
    model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    model.config.use_cache = False


def _memory_check(model: Any, impl: Any, config: UnlearnConfig, forget: Chunks,
                  retain: Chunks | None, dev: torch.device, bf16: bool, name: str,
                  progress: bool, allowed: set[str] | None) -> Any:
    """Estimate the run's memory, print it (with progress on), refuse when it cannot fit."""
    import sys

    from . import memory

    seq = max([len(c) for c in forget.ids] + ([len(c) for c in retain.ids] if retain else []))
    trained = sum(p.numel() for n, p in model.named_parameters()
                  if allowed is None or n in allowed)
    est = memory.estimate(model, config, trained=trained, needs_reference=impl.needs_reference,
                          uses_retain=impl.uses_retain, seq_len=seq, bf16=bf16, device=dev)
    if progress and sys.__stderr__ is not None:
        print(f"unlearn {name}: memory estimate: {est.describe()}", file=sys.__stderr__)
    memory.check_fits(est, name)
    return est


# ---------------------------------------------------------------- the loop


def _train(model: Any, impl: Any, ref: Any, pairs: Iterator[tuple[Batch, Batch | None]],
           config: UnlearnConfig, steps: int, dev: torch.device, autocast: Any,
           progress: bool, name: str, accelerator: Any = None) -> list[dict[str, float]]:
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = _optimizer(params, config)
    if accelerator is not None:
        return _train_ddp(model, impl, ref, pairs, config, steps, dev, autocast, name,
                          accelerator, optimizer)
    schedule = (lambda s: 1.0) if config.lr_schedule == "constant" \
        else (lambda s: max(0.0, 1.0 - s / steps))
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, schedule)
    model.train()
    log: list[dict[str, float]] = []
    with LossProgress(name, steps, enabled=progress) as bar:
        for step in range(1, steps + 1):
            parts = [_micro_step(model, impl, ref, *next(pairs), config, dev, autocast)
                     for _ in range(config.grad_accum)]
            entry = _step(name, step, sum(p[0] for p in parts) / len(parts),
                          sum(p[1] for p in parts) / len(parts), config, optimizer, scheduler)
            log.append(entry)
            bar.update(entry)
    model.eval()
    return log


def _step(name: str, step: int, forget: float, retain: float, config: UnlearnConfig,
          optimizer: Any, scheduler: Any) -> dict[str, float]:
    """The end of one optimizer step, on one process or several: refuse a diverged loss,
    step, and the step's log entry."""
    total = forget + config.alpha * retain
    if not math.isfinite(total):
        raise RunError(f"unlearning with '{name}' diverged at step {step}: the loss is "
                       f"{total}. Lower lr (now {config.lr}) or the number of steps.")
    optimizer.step()
    scheduler.step()
    optimizer.zero_grad(set_to_none=True)
    fault_point("unlearn-step")
    return {"step": step, "forget": forget, "retain": retain, "total": total}


def _train_ddp(model: Any, impl: Any, ref: Any, pairs: Iterator[tuple[Batch, Batch | None]],
               config: UnlearnConfig, steps: int, dev: torch.device, autocast: Any, name: str,
               accelerator: Any, optimizer: Any) -> list[dict[str, float]]:
    """`_train` on one of N DDP processes: of each step's grad_accum micro-batches this
    process computes those with index ≡ rank (mod N); DDP averages the gradients, the loss is
    scaled by N, so the step is the single-process one (unlearn/ddp.py)."""
    world, rank = accelerator.num_processes, accelerator.process_index
    wrapped = accelerator.prepare_model(model)
    schedule = (lambda s: 1.0) if config.lr_schedule == "constant" \
        else (lambda s: max(0.0, 1.0 - s / steps))
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, schedule)
    model.train()
    log: list[dict[str, float]] = []
    for step in range(1, steps + 1):
        mine = [pair for i, pair in ((i, next(pairs)) for i in range(config.grad_accum))
                if i % world == rank]
        sums = torch.zeros(2, dtype=torch.float64)
        for j, pair in enumerate(mine):
            sync = contextlib.nullcontext() if j == len(mine) - 1 else wrapped.no_sync()
            with sync:
                f, r = _micro_step(wrapped, impl, ref, *pair, config, dev, autocast,
                                   scale=world)
            sums += torch.tensor([f, r], dtype=torch.float64)
        sums = accelerator.reduce(sums.to(dev), reduction="sum").cpu()
        forget, retain = (float(x) / config.grad_accum for x in sums)
        log.append(_step(name, step, forget, retain, config, optimizer, scheduler))
    model.eval()
    return log


def _micro_step(model: Any, impl: Any, ref: Any, forget: Batch, retain: Batch | None,
                config: UnlearnConfig, dev: torch.device, autocast: Any,
                scale: int = 1) -> tuple[float, float]:
    """Forward + backward of one micro-batch pair; returns (forget, retain) loss values.
    `scale`: the number of DDP processes whose gradients are averaged."""
    with autocast() if autocast else contextlib.nullcontext():
        lf = impl.forget_loss(model, forget.to(dev), ref, config)
        l_retain = impl.retain_loss(model, retain.to(dev), ref, config) if retain is not None \
            else None
        total = lf if l_retain is None else lf + config.alpha * l_retain
    loss = total / config.grad_accum
    (loss if scale == 1 else loss * scale).backward()
    return float(lf.detach()), 0.0 if l_retain is None else float(l_retain.detach())


# ---------------------------------------------------------------- saving


def _save(model: Any, tokenizer: Any, out: Path) -> None:
    """Write to a sibling temp dir, then rename: `out` is either complete or absent."""
    out.parent.mkdir(parents=True, exist_ok=True)
    # hidden, and inside the cache named after `out` (.tmp-KEY-...), so a build killed while
    # saving leaves a directory the next build of that key removes under its lock
    hidden = out.name if out.name.startswith(".") else f".{out.name}"
    tmp = out.parent / f"{hidden}.partial-{os.getpid()}"
    if tmp.exists():
        shutil.rmtree(tmp)
    kwargs = {}
    if "safe_serialization" in inspect.signature(model.save_pretrained).parameters:
        kwargs["safe_serialization"] = True  # transformers < 5; 5 always writes safetensors
    try:
        model.save_pretrained(tmp, **kwargs)
        tokenizer.save_pretrained(tmp)
        if not any(tmp.glob("*.safetensors")):
            raise RunError(f"saving the unlearned model to {out} wrote no .safetensors file")
        if out.exists():
            out.rmdir()  # checked empty before training
        os.replace(tmp, out)
    except BaseException:  # a full disk, Ctrl-C: nothing half-written stays beside `out`
        shutil.rmtree(tmp, ignore_errors=True)
        raise
