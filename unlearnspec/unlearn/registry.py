"""Unlearning methods a spec can name (`unlearn: ga_klr`). Torch-free: configs only.

Implementations live in `unlearnspec.unlearn.methods` and are imported when a run trains.
Third-party methods register through the entry-point group `unlearnspec.methods`.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal, Union

from ..registry import Component, Registry, build_config, check

METHODS = Registry("unlearning method", "unlearnspec.methods")


@dataclass(frozen=True)
class SureConfig:
    """SURE (section 6.1): train only modules whose forget-gradient norm is at or above the
    `percentile`-th percentile over modules. `modules: decoder` ranks the decoder's linear
    layers only (a never-quantized head must not make a model look robust); `all` adds the
    output head; a list of glob patterns (`["*.mlp.*"]`) ranks the linear modules whose
    qualified names match one of them."""

    percentile: float = 90.0
    modules: Union[Literal["decoder", "all"], tuple[str, ...]] = "decoder"

    def __post_init__(self) -> None:
        check(isinstance(self.percentile, (int, float)) and 0 < self.percentile < 100,
              f"sure.percentile must lie strictly between 0 and 100, got {self.percentile!r}; "
              f"the paper uses 90, 95 or 99", "percentile")
        if isinstance(self.modules, (list, tuple)):
            patterns = tuple(self.modules)
            check(len(patterns) > 0 and all(isinstance(p, str) and p for p in patterns),
                  "sure.modules must be 'decoder', 'all' or a non-empty list of module-name "
                  "patterns such as ['*.mlp.*']", "modules")
            object.__setattr__(self, "modules", patterns)
        else:
            check(self.modules in ("decoder", "all"),
                  f"sure.modules must be 'decoder', 'all' or a list of module-name patterns, "
                  f"got {self.modules!r}", "modules")


@dataclass(frozen=True)
class UnlearnConfig:
    """Options shared by every built-in method (spec keys under the model entry)."""

    lr: float = 1e-5
    epochs: float = 5.0
    max_steps: int | None = None
    batch_size: int = 4
    grad_accum: int = 1
    alpha: float = 1.0  # weight of the retain loss
    beta: float = 0.1  # NPO temperature
    max_length: int = 256
    weight_decay: float = 0.0
    seed: int | None = None  # None: the spec's seed
    sure: Any = None  # a SureConfig (a mapping in the spec), or None
    lr_schedule: Literal["constant", "linear"] = "constant"  # linear: decay to 0 at the end
    precision: Literal["auto", "fp32", "bf16"] = "auto"  # auto: bf16 autocast on CUDA only

    def __post_init__(self) -> None:
        check(self.lr > 0, f"lr must be positive, got {self.lr}; the paper uses 1e-5 "
              f"(1e-4 with SURE)", "lr")
        check(self.epochs > 0 or self.max_steps, "epochs must be positive", "epochs")
        check(self.max_steps is None or self.max_steps > 0, "max_steps must be positive",
              "max_steps")
        check(self.batch_size >= 1, "batch_size must be at least 1", "batch_size")
        check(self.grad_accum >= 1, "grad_accum must be at least 1", "grad_accum")
        check(self.alpha >= 0, "alpha must be non-negative", "alpha")
        check(self.beta > 0, "beta must be positive", "beta")
        if isinstance(self.sure, dict):
            object.__setattr__(self, "sure", build_config(SureConfig, self.sure, what="sure"))
        elif self.sure is True:
            object.__setattr__(self, "sure", SureConfig())
        check(self.sure is None or self.sure is False or isinstance(self.sure, SureConfig),
              "sure must be a mapping like {percentile: 90}", "sure")
        if self.sure is False:
            object.__setattr__(self, "sure", None)
        check(self.lr_schedule in ("constant", "linear"),
              f"lr_schedule must be 'constant' or 'linear', got {self.lr_schedule!r}",
              "lr_schedule")
        check(self.precision in ("auto", "fp32", "bf16"),
              f"precision must be 'auto', 'fp32' or 'bf16', got {self.precision!r}", "precision")
        check(self.max_length >= 2, "max_length must be at least 2 tokens (one to predict "
              "from, one to predict)", "max_length")
        check(self.weight_decay >= 0, "weight_decay must be non-negative", "weight_decay")


for _name, _doc in [
    ("ga", "gradient ascent on the forget set"),
    ("ga_gdr", "gradient ascent + gradient descent on the retain set"),
    ("ga_klr", "gradient ascent + KL to the target on the retain set"),
    ("npo", "negative preference optimization (beta = 0.1)"),
    ("npo_gdr", "NPO + gradient descent on the retain set"),
    ("npo_klr", "NPO + KL to the target on the retain set"),
]:
    METHODS.add(Component(_name, UnlearnConfig, f"unlearnspec.unlearn.methods:{_name.upper()}",
                          _doc))
