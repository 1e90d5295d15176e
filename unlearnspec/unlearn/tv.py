"""Task-vector negation (Ilharco et al. 2023), MUSE's `tv` baseline.

Fine-tune a copy of the target on the forget set (plain next-token cross-entropy, descending),
then move the target *away* from the fine-tuned copy:

    θ_unlearned = θ_target − α · (θ_ft − θ_target)        (MUSE's scripts: α = 5)

The fine-tuning runs on the shared loop (its `forget` loss is the forget cross-entropy, which
falls); `finish` applies the negation once, after the last step, to every trained parameter.
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any, Optional

import torch

from ..errors import RunError
from .data import Batch
from .losses import mean_nll


@dataclass(frozen=True)
class TaskVector:
    name: str = "tv"
    VERSION: str = "1"
    needs_reference: bool = False
    uses_retain: bool = False
    # θ_target in the model's own (fp32) precision, copied by `start`: the loop's frozen
    # reference may be bf16, which would round the task vector
    initial: Optional[dict] = field(default=None, compare=False, repr=False)

    def start(self, model: Any, ref: Any, config: Any, seed: int) -> "TaskVector":
        return replace(self, initial={n: p.detach().clone()
                                      for n, p in model.named_parameters()})

    def forget_loss(self, model: Any, batch: Batch, ref: Any, config: Any) -> torch.Tensor:
        return mean_nll(model, batch)

    def retain_loss(self, model: Any, batch: Batch, ref: Any, config: Any) -> None:
        return None

    def finish(self, model: Any, ref: Any, config: Any) -> dict[str, Any]:
        target = self.initial
        norm = 0.0
        with torch.no_grad():
            for name, p in model.named_parameters():
                if not p.requires_grad:
                    continue  # frozen (SURE): its task-vector entry is exactly zero
                base = target[name]
                vector = p - base
                norm += float(vector.double().pow(2).sum())
                p.copy_(base - config.alpha * vector)
        if norm == 0.0:
            raise RunError("task vector: fine-tuning on the forget set did not change any "
                           "weight (zero task vector), so negating it would unlearn nothing. "
                           "Raise lr or epochs.")
        return {"task_vector_norm": norm ** 0.5, "scale": config.alpha}


TV = TaskVector()
