"""How much memory an unlearning run will need, estimated before its first step, and a
refusal with the numbers when that is more than the device has.

The parts (bytes), for P parameters of which T are trained, micro-batch b, sequence length
L, hidden size h, layers n, vocabulary V:

- weights: 4P (fp32 master weights, what the loop trains); gradients: 4T;
- optimizer: AdamW 8T (two fp32 moments), 8-bit AdamW 2T (two uint8 moments; bitsandbytes
  keeps tensors under 4096 weights in fp32, counted as 8 bytes each);
- reference: the frozen target NPO / KLR / RMU compare against, 4P (2P under bf16 autocast);
- activations, per micro-batch pair (forget, plus retain when the method has a retain
  loss): without checkpointing b·L·h·n·(34 + 5·heads·L/h)·2 bytes (Korthikanti et al. 2022,
  for 16-bit activations; doubled for fp32), with gradient checkpointing b·L·h·(n + 34)·4
  (each layer's input kept, one layer recomputed at a time); plus logits and their
  gradient, 3·b·L·V·4.

Per process under FSDP over N processes (`fsdp:` with `processes: N`): gradients and optimizer
states / N; with `full_shard` weights / N plus one decoder layer's full weights (gathered for
its forward and backward), 4P/n; the reference and the activations are not sharded.

It is an estimate (allocator slack, kernels' workspaces and fragmentation are not in it);
the refusal leaves 10 % headroom. The budget is what the device has free now plus what the
already-loaded model holds (CUDA: `mem_get_info` + allocated; CPU: MemAvailable + the
weights), or `UNLEARNSPEC_MEMORY_BUDGET` (`24GB`, `512MB`, bytes) to check against another
number.
"""
from __future__ import annotations

import os
import re
from dataclasses import dataclass
from typing import Any

from ..errors import RunError

BUDGET_ENV = "UNLEARNSPEC_MEMORY_BUDGET"
HEADROOM = 0.9
_UNITS = {"": 1, "b": 1, "kb": 2**10, "mb": 2**20, "gb": 2**30, "tb": 2**40,
          "kib": 2**10, "mib": 2**20, "gib": 2**30, "tib": 2**40}


@dataclass(frozen=True)
class MemoryEstimate:
    """Bytes per part; `budget` None when the device's free memory cannot be read."""

    weights: int
    gradients: int
    optimizer: int
    reference: int
    activations: int
    budget: int | None
    budget_source: str

    @property
    def total(self) -> int:
        return self.weights + self.gradients + self.optimizer + self.reference + self.activations

    @property
    def fits(self) -> bool:
        return self.budget is None or self.total <= HEADROOM * self.budget

    def describe(self) -> str:
        parts = ", ".join(f"{k} {_gb(getattr(self, k))}" for k in
                          ("weights", "gradients", "optimizer", "reference", "activations"))
        have = f"{_gb(self.budget)} ({self.budget_source})" if self.budget is not None \
            else f"unknown ({self.budget_source})"
        return f"needs about {_gb(self.total)} ({parts}); budget {have}"

    def to_log(self) -> dict[str, Any]:
        """The estimate, without the budget: the device's free memory is a fact of the moment,
        not of the artifact, and the log goes into reports that must be identical for the
        same spec and seed (the budget is printed, and in a refusal's message)."""
        return {"weights": self.weights, "gradients": self.gradients,
                "optimizer": self.optimizer, "reference": self.reference,
                "activations": self.activations, "total": self.total}


def _gb(n: int | None) -> str:
    return "?" if n is None else f"{n / 2**30:.2f} GiB" if n >= 2**28 else f"{n / 2**20:.1f} MiB"


def parse_bytes(text: str) -> int:
    """`24GB`, `512 MiB`, `1e9` -> bytes (binary units: GB = GiB)."""
    m = re.fullmatch(r"\s*([0-9.eE+]+)\s*([A-Za-z]*)\s*", text)
    if not m or m[2].lower() not in _UNITS:
        raise RunError(f"{BUDGET_ENV}={text!r} is not a size; write it like 24GB, 512MB or a "
                       f"number of bytes")
    try:
        return int(float(m[1]) * _UNITS[m[2].lower()])
    except ValueError as exc:
        raise RunError(f"{BUDGET_ENV}={text!r} is not a size; write it like 24GB") from exc


def _budget(model: Any, device: Any) -> tuple[int | None, str]:
    import torch

    env = os.environ.get(BUDGET_ENV)
    if env:
        return parse_bytes(env), BUDGET_ENV
    if device.type == "cuda":
        free, _ = torch.cuda.mem_get_info(device)
        return free + torch.cuda.memory_allocated(device), f"free on {device} + allocated"
    try:
        with open("/proc/meminfo") as f:
            avail = next(int(line.split()[1]) * 1024 for line in f
                         if line.startswith("MemAvailable:"))
    except (OSError, StopIteration, ValueError):
        return None, "this system does not report available memory"
    held = sum(p.numel() * p.element_size() for p in model.parameters())
    return avail + held, "MemAvailable + the loaded weights"


def estimate(model: Any, config: Any, *, trained: int, needs_reference: bool,
             uses_retain: bool, seq_len: int, bf16: bool, device: Any) -> MemoryEstimate:
    """The estimate for training `trained` of `model`'s parameters with `config`."""
    params = sum(p.numel() for p in model.parameters())
    cfg = model.config
    h = int(getattr(cfg, "hidden_size", 0) or getattr(cfg, "n_embd", 0) or 0)
    n = int(getattr(cfg, "num_hidden_layers", 0) or getattr(cfg, "n_layer", 0) or 0)
    heads = int(getattr(cfg, "num_attention_heads", 0) or getattr(cfg, "n_head", 0) or 1)
    vocab = int(getattr(cfg, "vocab_size", 0) or 0)
    b, L = config.batch_size, max(1, seq_len)
    if config.gradient_checkpointing:
        act = b * L * h * (n + 34) * 4
    else:
        act = int(b * L * h * n * (34 + 5 * heads * L / max(1, h)) * (1 if bf16 else 2))
    act += 3 * b * L * vocab * 4
    act *= 2 if uses_retain else 1
    if config.optimizer.endswith("8bit"):
        small = sum(p.numel() for p in model.parameters() if p.numel() < 4096)
        opt = 2 * trained + 6 * min(small, trained)
    else:
        opt = 8 * trained
    weights, grads = 4 * params, 4 * trained
    shards = config.processes if getattr(config, "fsdp", None) else 1
    if shards > 1:
        grads, opt = -(-grads // shards), -(-opt // shards)
        if config.fsdp == "full_shard":
            weights = -(-weights // shards) + weights // max(1, n)
    budget, source = _budget(model, device)
    return MemoryEstimate(weights=weights, gradients=grads, optimizer=opt,
                          reference=(2 if bf16 else 4) * params if needs_reference else 0,
                          activations=act, budget=budget, budget_source=source)


def check_fits(est: MemoryEstimate, name: str) -> None:
    """RunError with the numbers and what to change when the estimate exceeds the budget."""
    if est.fits:
        return
    raise RunError(
        f"unlearning with '{name}' would not fit: it {est.describe()} (the check leaves "
        f"{100 - HEADROOM * 100:.0f} % headroom). Set gradient_checkpointing: true (activations), "
        f"optimizer: adamw_8bit (optimizer states 8 -> 2 bytes per weight), a smaller "
        f"batch_size with a larger grad_accum, or run on a device with more memory"
        + (f"; {BUDGET_ENV} sets the budget checked against" if est.budget_source != BUDGET_ENV
           else f"; unset {BUDGET_ENV} to check against the device's own free memory"))
