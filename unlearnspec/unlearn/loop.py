"""The training loop every method shares, on one process or on one of N DDP processes: each
optimizer step draws `grad_accum` (forget, retain) micro-batch pairs and minimises
L_forget + α·L_retain."""
from __future__ import annotations

import contextlib
import math
from typing import Any, Iterator

import torch

from ..errors import RunError
from ..faults import fault_point
from .data import Batch
from .optim import build_optimizer, build_scheduler
from .progress import LossProgress
from .registry import UnlearnConfig


def train(model: Any, impl: Any, ref: Any, pairs: Iterator[tuple[Batch, Batch | None]],
          config: UnlearnConfig, steps: int, dev: torch.device, autocast: Any,
          progress: bool, name: str, accelerator: Any = None) -> list[dict[str, float]]:
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = build_optimizer(params, config)
    if accelerator is not None:
        return train_parallel(model, impl, ref, pairs, config, steps, dev, autocast, name,
                              accelerator, optimizer)
    scheduler = build_scheduler(optimizer, config, steps)
    model.train()
    log: list[dict[str, float]] = []
    with LossProgress(name, steps, enabled=progress) as bar:
        for step in range(1, steps + 1):
            parts = [micro_step(model, impl, ref, *next(pairs), config, dev, autocast)
                     for _ in range(config.grad_accum)]
            entry = end_step(name, step, sum(p[0] for p in parts) / len(parts),
                          sum(p[1] for p in parts) / len(parts), config, optimizer, scheduler)
            log.append(entry)
            bar.update(entry)
    model.eval()
    return log


def end_step(name: str, step: int, forget: float, retain: float, config: UnlearnConfig,
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


def train_parallel(wrapped: Any, impl: Any, ref: Any,
                   pairs: Iterator[tuple[Batch, Batch | None]], config: UnlearnConfig,
                   steps: int, dev: torch.device, autocast: Any, name: str, accelerator: Any,
                   optimizer: Any) -> list[dict[str, float]]:
    """`train` on one of N processes, `wrapped` in DDP or FSDP (unlearn/parallel.py): of each
    step's grad_accum micro-batches this process computes those with index ≡ rank (mod N);
    DDP / FSDP average the gradients, the loss is scaled by N, so the step is the
    single-process one (unlearn/ddp.py)."""
    world, rank = accelerator.num_processes, accelerator.process_index
    scheduler = build_scheduler(optimizer, config, steps)
    wrapped.train()
    log: list[dict[str, float]] = []
    for step in range(1, steps + 1):
        mine = [pair for i, pair in ((i, next(pairs)) for i in range(config.grad_accum))
                if i % world == rank]
        sums = torch.zeros(2, dtype=torch.float64)
        for j, pair in enumerate(mine):
            sync = contextlib.nullcontext() if j == len(mine) - 1 else wrapped.no_sync()
            with sync:
                f, r = micro_step(wrapped, impl, ref, *pair, config, dev, autocast,
                                  scale=world)
            sums += torch.tensor([f, r], dtype=torch.float64)
        sums = accelerator.reduce(sums.to(dev), reduction="sum").cpu()
        forget, retain = (float(x) / config.grad_accum for x in sums)
        log.append(end_step(name, step, forget, retain, config, optimizer, scheduler))
    wrapped.eval()
    return log


def micro_step(model: Any, impl: Any, ref: Any, forget: Batch, retain: Batch | None,
               config: UnlearnConfig, dev: torch.device, autocast: Any,
               scale: int = 1) -> tuple[float, float]:
    """Forward + backward of one micro-batch pair; returns (forget, retain) loss values.
    `scale`: the number of processes whose gradients are averaged."""
    with autocast() if autocast else contextlib.nullcontext():
        lf = impl.forget_loss(model, forget.to(dev), ref, config)
        l_retain = impl.retain_loss(model, retain.to(dev), ref, config) if retain is not None \
            else None
        total = lf if l_retain is None else lf + config.alpha * l_retain
    loss = total / config.grad_accum
    (loss if scale == 1 else loss * scale).backward()
    return float(lf.detach()), 0.0 if l_retain is None else float(l_retain.detach())

