"""The public method interface and the six built-in methods.

A method is any object with::

    name: str
    VERSION: str                 # optional; part of the engine's cache key
    needs_reference: bool        # load the frozen target and pass it as `ref`
    uses_retain: bool            # pair every forget batch with a retain batch
    forget_loss(model, batch, ref, config) -> Tensor        # minimised
    retain_loss(model, batch, ref, config) -> Tensor | None # weighted by config.alpha

The easy way to get one is `Method(name, forget=Loss(...), retain=Loss(...) | None)`; the
registered components point at the instances below (`unlearnspec.unlearn.methods:GA_KLR`).
`config` is the run's `UnlearnConfig` (or a plug-in's subclass of it, for extra options).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable, Optional

if TYPE_CHECKING:
    import torch

    from .data import Batch

LossFn = Callable[[Any, "Batch", Any, Any], "torch.Tensor"]


@dataclass(frozen=True)
class Loss:
    """A named loss function and whether it reads the frozen reference model."""

    name: str
    fn: LossFn
    needs_reference: bool = False

    def __call__(self, model: Any, batch: Batch, ref: Any, config: Any) -> torch.Tensor:
        return self.fn(model, batch, ref, config)


@dataclass(frozen=True)
class Method:
    """A forget loss plus an optional retain regularizer: L = L_forget + α·L_retain."""

    name: str
    forget: Loss
    retain: Optional[Loss] = None
    version: str = "1"  # bump when the losses change: it is part of the engine's cache key

    @property
    def VERSION(self) -> str:  # noqa: N802 - the attribute name the engine reads
        return self.version

    @property
    def needs_reference(self) -> bool:
        return self.forget.needs_reference or bool(self.retain and self.retain.needs_reference)

    @property
    def uses_retain(self) -> bool:
        return self.retain is not None

    def forget_loss(self, model: Any, batch: Batch, ref: Any, config: Any) -> torch.Tensor:
        return self.forget(model, batch, ref, config)

    def retain_loss(self, model: Any, batch: Batch, ref: Any,
                    config: Any) -> Optional[torch.Tensor]:
        return None if self.retain is None else self.retain(model, batch, ref, config)


def builtin_loss(name: str) -> LossFn:
    """`unlearnspec.unlearn.losses.<name>`, imported (with torch) at its first call: the
    engine's cache keys read these methods' VERSION, and a fully cached run must not pay for
    importing torch to do that."""
    def loss(model: Any, batch: Batch, ref: Any, config: Any) -> torch.Tensor:
        from . import losses

        return getattr(losses, name)(model, batch, ref, config)
    loss.__name__ = loss.__qualname__ = name
    return loss


GA_LOSS = Loss("ga", builtin_loss("ga_loss"))
NPO_LOSS = Loss("npo", builtin_loss("npo_loss"), needs_reference=True)
GDR = Loss("gdr", builtin_loss("gdr_loss"))
KLR = Loss("klr", builtin_loss("klr_loss"), needs_reference=True)

GA = Method("ga", GA_LOSS)
GA_GDR = Method("ga_gdr", GA_LOSS, GDR)
# version 2: KLR's default direction became KL(p_target ‖ p_θ) (was KL(p_θ ‖ p_target))
GA_KLR = Method("ga_klr", GA_LOSS, KLR, version="2")
NPO = Method("npo", NPO_LOSS)
NPO_GDR = Method("npo_gdr", NPO_LOSS, GDR)
NPO_KLR = Method("npo_klr", NPO_LOSS, KLR, version="2")

REQUIRED = ("name", "needs_reference", "uses_retain", "forget_loss", "retain_loss")


def missing_interface(obj: Any) -> list[str]:
    """The parts of the method interface `obj` lacks (empty when it is a usable method)."""
    return [attr for attr in REQUIRED if not hasattr(obj, attr)]
