"""The optimizer, its learning-rate schedule, gradient checkpointing and the memory check of
an unlearning run: what it trains with, built from the config and refused before loading
anything when the device cannot run it as asked."""
from __future__ import annotations

from typing import Any

import torch

from ..errors import RunError
from .data import Chunks
from .registry import UnlearnConfig


def check_optimizer(config: UnlearnConfig, dev: torch.device, name: str) -> None:
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


def build_optimizer(params: list[Any], config: UnlearnConfig) -> Any:
    if config.optimizer == "adamw":
        # foreach: one multi-tensor kernel per update op instead of a Python loop over the
        # parameters (torch's default on CUDA; on CPU it defaults to the loop, which cost a
        # tiny-model step ~10x its compute). The same arithmetic: the weights are bit-identical
        # (tests/unlearn/test_unlearn_scale.py), so no cache key changes
        return torch.optim.AdamW(params, lr=config.lr, weight_decay=config.weight_decay,
                                 foreach=True)
    import bitsandbytes as bnb

    cls = {"adamw_8bit": bnb.optim.AdamW8bit, "paged_adamw": bnb.optim.PagedAdamW,
           "paged_adamw_8bit": bnb.optim.PagedAdamW8bit}[config.optimizer]
    return cls(params, lr=config.lr, weight_decay=config.weight_decay)


def build_scheduler(optimizer: Any, config: UnlearnConfig, steps: int) -> Any:
    """Constant lr, or (`linear`) decayed to 0 at the last of `steps` steps."""
    schedule = (lambda s: 1.0) if config.lr_schedule == "constant" \
        else (lambda s: max(0.0, 1.0 - s / steps))
    return torch.optim.lr_scheduler.LambdaLR(optimizer, schedule)


def enable_checkpointing(model: Any, name: str) -> None:
    if not getattr(model, "supports_gradient_checkpointing", False):
        raise RunError(f"unlearning with '{name}': gradient_checkpointing was asked for, but "
                       f"{type(model).__name__} does not support it in transformers; set "
                       f"gradient_checkpointing: false")
    # non-reentrant: works when the inputs need no grad (SURE freezes most parameters)
    model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    model.config.use_cache = False


def memory_check(model: Any, impl: Any, config: UnlearnConfig, forget: Chunks,
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

