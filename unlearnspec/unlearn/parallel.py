"""One process of an N-process unlearning run (ddp.py starts them): its accelerate state, the
model wrapped for it, and the trained model back in one piece for saving.

`processes: N` alone wraps the model in DistributedDataParallel through accelerate's
`prepare_model` (a full copy per process). `fsdp: full_shard | shard_grad_op` wraps it in
torch's FullyShardedDataParallel instead, one FSDP unit per decoder layer (the classes
transformers names in `_no_split_modules`, accelerate's own wrap policy): each process holds
1/N of the gradients and optimizer states, and with `full_shard` 1/N of the weights too,
gathering one layer's weights at a time in forward and backward. accelerate still owns the
process group, the device and the loss reduction; the FSDP wrapper is torch's own because
accelerate 1.16 turns its FSDP plugin on only for GPU backends and on CPU processes falls back
to DDP without saying so, which would leave a CPU test of FSDP testing DDP.
"""
from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

from ..errors import RunError


def accelerator_for(config: Any, device: str, name: str) -> Any:
    """This process's accelerate state, checked against the `processes` the config asks."""
    from accelerate import Accelerator

    acc = Accelerator(cpu=not device.startswith("cuda"), mixed_precision="no")
    if acc.num_processes != config.processes:
        raise RunError(f"unlearning with '{name}': processes is {config.processes} but this "
                       f"worker was launched among {acc.num_processes}; launch as many "
                       f"processes as the config says")
    return acc


def wrap(model: Any, config: Any, accelerator: Any) -> Any:
    """`model` wrapped for this process: DDP, or FSDP with `config.fsdp`'s sharding."""
    if config.fsdp is None:
        return accelerator.prepare_model(model)
    import torch
    from torch.distributed.fsdp import FullyShardedDataParallel, ShardingStrategy
    from torch.distributed.fsdp.wrap import transformer_auto_wrap_policy

    layer_names = set(getattr(model, "_no_split_modules", None) or ())
    layers = {type(m) for m in model.modules() if type(m).__name__ in layer_names}
    policy = functools.partial(transformer_auto_wrap_policy, transformer_layer_cls=layers) \
        if layers else None
    dev = accelerator.device
    return FullyShardedDataParallel(
        model, sharding_strategy=ShardingStrategy[config.fsdp.upper()],
        auto_wrap_policy=policy, device_id=_fsdp_device(dev),
        use_orig_params=True)  # the optimizer sees the model's own parameters (SURE's mask)


def whole(wrapped: Any, model: Any, config: Any, accelerator: Any, base: Path,
          trainable: dict[str, bool]) -> Any:
    """The trained model in one piece on process 0 (None on the others; every process must
    call this): `model` itself under DDP; under FSDP the full state dict gathered to process
    0 and loaded into a fresh copy of `base` (FSDP rewrote `model`'s module tree), with the
    parameters' `requires_grad` as training had them, so that what follows (SURE's check, a
    method's `finish`, saving) sees the model exactly as on one process."""
    if config.fsdp is None:
        return model if accelerator.is_main_process else None
    from torch.distributed.fsdp import (FullStateDictConfig, FullyShardedDataParallel,
                                        StateDictType)

    from ..models.loading import load_causal_lm

    with FullyShardedDataParallel.state_dict_type(
            wrapped, StateDictType.FULL_STATE_DICT,
            # offloading on CPU processes crashes torch 2.13's gloo FSDP (a segfault cloning
            # the gathered tensors); there the state is in host memory already
            FullStateDictConfig(offload_to_cpu=accelerator.device.type != "cpu",
                                rank0_only=True)):
        state = wrapped.state_dict()
    if not accelerator.is_main_process:
        return None
    fresh, _ = load_causal_lm(base, device="cpu")
    fresh.load_state_dict(state, strict=True)
    for name, p in fresh.named_parameters():
        p.requires_grad_(trainable[name])
    return fresh.to(accelerator.device)


def _fsdp_device(dev: Any) -> Any:
    """FSDP's `device_id`: plain 'cpu' on CPU processes. accelerate names a CPU process's
    device 'cpu:0', which FSDP in torch 2.13 rejects as inconsistent with the 'cpu' its CPU
    device handle reports."""
    import torch

    return torch.device("cpu") if dev.type == "cpu" else dev
