"""`kind: relearn`: a relearning attack (Hu et al. 2024; Fan et al. 2025). A few fine-tuning
steps on a small related set bring "unlearned" knowledge back when the unlearning only hid it.

The relearned model is a checkpoint, built by the engine (`Run.relearned_path`) with the one
training loop unlearning uses (`unlearn.train.run_unlearning`, the method below: next-token
cross-entropy descending, no retain term, no reference) and cached as a model artifact keyed
by the base model's key, this transform's key and the data's content. `apply` therefore never
runs on a loaded model: a relearned model is loaded from its artifact, and chain members after
the relearning transform it (`transforms/chain.py`).
"""
from __future__ import annotations

from typing import Any, Iterator, Sequence

from ..errors import RunError
from ..registry import Component
from ..unlearn.methods import Loss, Method, builtin_loss
from ..unlearn.registry import UnlearnConfig
from .base import Readback, Transform, TransformContext

# the loop's method: fine-tuning (the "forget" loss it minimises is the cross-entropy of
# the texts, gdr_loss = mean next-token NLL)
RELEARN = Method("relearn", Loss("nll", builtin_loss("gdr_loss")), version="1")
RELEARN_METHOD = Component("relearn", UnlearnConfig, "unlearnspec.transforms.relearn:RELEARN",
                           "fine-tuning, as a relearning attack")


def training_config(config: Any, seed: int) -> UnlearnConfig:
    """The loop's options for a RelearnConfig: exactly `steps` optimizer steps."""
    return UnlearnConfig(lr=config.lr, max_steps=config.steps, batch_size=config.batch_size,
                         alpha=0.0, max_length=config.max_length, packing="documents",
                         lr_schedule=config.lr_schedule, seed=seed, precision="auto")


def relearn(config: Any, *, base: Any, texts: Sequence[str], out: Any, seed: int,
            device: str = "cpu", progress: bool = True) -> dict:
    """Fine-tune the checkpoint `base` on `texts`; save it to `out`; return the loop's log."""
    from ..unlearn.train import run_unlearning

    if not texts:
        raise RunError("relearning has no texts to train on")
    return run_unlearning(RELEARN_METHOD, training_config(config, seed), base=base,
                          forget=list(texts), retain=[], out=out, seed=seed, device=device,
                          progress=progress)


class RelearnTransform(Transform):
    """A model-producing transform: the engine trains and caches the relearned checkpoint."""

    VERSION = "relearn-1"
    trains = True

    def apply(self, model: Any, ctx: TransformContext) -> Any:
        raise RunError("relearning trains a new checkpoint from the model's own files; it "
                       "cannot be applied to a model in memory (the engine builds it). In a "
                       "chain, put relearning members first: chain: [rel50, rtn4]")

    def readback(self, model: Any) -> Iterator[Readback]:
        for name, p in model.named_parameters():
            if p.is_floating_point():
                yield Readback(name, p.detach(), True)

    def coverage_hint(self) -> str:
        return ("Relearning changes every weight it trains; these were left as they were "
                "(a learning rate too small to move fp32 weights, or frozen parameters). "
                "Raise lr or steps.")
