"""The one interface every transform implements, and the values it exchanges with the engine
and the weight-space metrics.

A transform turns a freshly loaded fp32 model into the model to measure (`apply`). To compare
two quantized models weight by weight, every transform also reads its result back as float
tensors under the checkpoint's own parameter names (`readback`), and a transform that
quantizes tensor by tensor says so (`quantize_tensor`), which lets the weight metrics stream
safetensors files without loading a model at all.
"""
from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Iterator, NamedTuple

from ..lazy import torch

from .roles import WeightInfo


@dataclass(frozen=True)
class TransformContext:
    """What `apply` may use besides the model: the checkpoint it was loaded from (bitsandbytes
    and GPTQ reload from it), its tokenizer, the device, and calibration texts from the spec
    (None when the spec names none; GPTQ/AWQ then refuse to run)."""

    checkpoint: Path
    tokenizer: Any
    device: str = "cpu"
    calibration: list[str] | None = None


@dataclass(frozen=True)
class Quantized:
    """One weight under a transform: `values` = Q(w) as floats of w's shape, and `codes`, an
    integer tensor of w's shape identifying each weight's quantization level (for a dtype cast,
    the bit pattern). Two weights with equal codes may still have different values when their
    groups' scales differ."""

    values: torch.Tensor
    codes: torch.Tensor


class Readback(NamedTuple):
    """A weight of a transformed model, as the float tensor it computes with. `quantized` is
    True for the weights the transform changed (the ones weight metrics compare); the others
    (norms, biases, and AWQ's rescaled norms, which are marked quantized=False but still
    differ from the checkpoint) are yielded too, so a float model rebuilt from a readback
    computes what the transformed model does."""

    name: str
    value: torch.Tensor
    quantized: bool


class Transform(ABC):
    """`cls(config)`; `VERSION` goes into cache keys, so bump it whenever numbers change."""

    VERSION: ClassVar[str] = "0"

    def __init__(self, config: Any) -> None:
        self.config = config

    @abstractmethod
    def apply(self, model: Any, ctx: TransformContext) -> Any:
        """The model to measure; `model` may be modified in place or replaced."""

    @abstractmethod
    def readback(self, model: Any) -> Iterator[Readback]:
        """Every floating-point weight of a model this transform returned, dequantized."""

    def quantize_tensor(self, info: WeightInfo, w: torch.Tensor) -> Quantized | None:
        """Q(w) for one checkpoint tensor, or None when this transform leaves it alone. `info`
        (from `roles.checkpoint_roles`) says what the tensor is and how the kernels read it
        (a Conv1D weight is [in, out]); values and codes come back in w's own shape.

        Raises NotImplementedError for transforms that need the whole model (GPTQ, AWQ use
        calibration activations); weight metrics then quantize whole models instead."""
        raise NotImplementedError(f"{type(self).__name__} does not quantize tensor by tensor")

    def selects(self, info: WeightInfo) -> bool:
        """Whether `quantize_tensor` quantizes this tensor (streaming transforms override)."""
        return True

    @property
    def streams(self) -> bool:
        """True when `quantize_tensor` is implemented."""
        return type(self).quantize_tensor is not Transform.quantize_tensor


class InPlaceTransform(Transform):
    """A transform that changes weights in place and keeps every module's type (RTN, GGUF
    block formats, pruning): its readback is the model's own parameters, marked quantized
    where `selects` chose them."""

    def readback(self, model: Any) -> Iterator[Readback]:
        from .roles import iter_parameters

        infos = {info.name: info for info, _ in iter_parameters(model)}
        for name, p in model.named_parameters():
            info = infos.get(name)
            yield Readback(name, p.detach(), info is not None and self.selects(info))
