"""Unlearning methods a spec can name (`unlearn: ga_klr`). Torch-free: configs only.

Implementations live in `unlearnspec.unlearn.methods` and are imported when a run trains.
Third-party methods register through the entry-point group `unlearnspec.methods`.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal, Optional, Union

from ..registry import Component, Registry, build_config, check

METHODS = Registry("unlearning method", "unlearnspec.methods")
OPTIMIZERS = ("adamw", "adamw_8bit", "paged_adamw", "paged_adamw_8bit")
# options that change no number when left at their default: left out of cache keys then, so
# adding them kept every existing unlearning run's key
KEY_DEFAULTS = {"gradient_checkpointing": False, "optimizer": "adamw", "processes": 1,
                "fsdp": None}
FSDP_STRATEGIES = ("full_shard", "shard_grad_op")


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
    # tokens per training example; None: 2048 with MUSE's window packing (its scripts'
    # MAX_LEN), 256 with one example per document
    max_length: int | None = None
    packing: Literal["auto", "windows", "documents"] = "auto"  # see unlearn/sources.py
    weight_decay: float = 0.0
    seed: int | None = None  # None: the spec's seed
    sure: Any = None  # a SureConfig (a mapping in the spec), or None
    lr_schedule: Literal["constant", "linear"] = "constant"  # linear: decay to 0 at the end
    precision: Literal["auto", "fp32", "bf16"] = "auto"  # auto: bf16 autocast on CUDA only
    # recompute each decoder layer's forward in the backward pass instead of keeping its
    # activations (transformers' gradient checkpointing): memory for one more forward
    gradient_checkpointing: bool = False
    # adamw: torch.optim.AdamW; adamw_8bit / paged_adamw / paged_adamw_8bit: bitsandbytes'
    # AdamW8bit (uint8 moments), PagedAdamW (CUDA unified memory), PagedAdamW8bit
    optimizer: Literal["adamw", "adamw_8bit", "paged_adamw", "paged_adamw_8bit"] = "adamw"
    # DDP over this many processes (one per GPU; gloo processes on CPU): each takes
    # grad_accum / processes of a step's micro-batches (unlearn/ddp.py)
    processes: int = 1
    # with processes > 1: shard over them with FSDP instead of one full copy each (DDP):
    # full_shard = weights, gradients and optimizer states; shard_grad_op = gradients and
    # optimizer states, weights kept whole between forward and backward (unlearn/parallel.py)
    fsdp: Optional[Literal["full_shard", "shard_grad_op"]] = None

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
        check(self.max_length is None or self.max_length >= 2, "max_length must be at least "
              "2 tokens (one to predict from, one to predict)", "max_length")
        check(self.packing in ("auto", "windows", "documents"),
              f"packing must be 'auto' (MUSE's windows on a MUSE directory, one example per "
              f"document elsewhere), 'windows' or 'documents', got {self.packing!r}", "packing")
        check(self.weight_decay >= 0, "weight_decay must be non-negative", "weight_decay")
        check(isinstance(self.gradient_checkpointing, bool),
              "gradient_checkpointing must be true or false", "gradient_checkpointing")
        check(isinstance(self.processes, int) and self.processes >= 1,
              "processes must be a whole number >= 1", "processes")
        check(self.grad_accum % self.processes == 0,
              f"processes {self.processes} must divide grad_accum {self.grad_accum}: each "
              f"process takes grad_accum / processes micro-batches of every step (raise "
              f"grad_accum to a multiple of {self.processes})", "grad_accum")
        check(self.fsdp is None or self.fsdp in FSDP_STRATEGIES,
              f"fsdp must be one of {', '.join(FSDP_STRATEGIES)} (or left out for DDP), got "
              f"{self.fsdp!r}", "fsdp")
        check(self.fsdp is None or self.processes > 1,
              f"fsdp: {self.fsdp} shards the model over processes, and processes is 1; set "
              f"processes: 2 or more (or leave fsdp out)", "fsdp")
        check(self.optimizer in OPTIMIZERS,
              f"optimizer must be one of {', '.join(OPTIMIZERS)}, got {self.optimizer!r}",
              "optimizer")


@dataclass(frozen=True)
class KLRConfig(UnlearnConfig):
    """UnlearnConfig plus the KL regularizer's direction: `forward` = KL(p_target ‖ p_θ), as
    MUSE's intended code, TOFU and open-unlearning compute it; `reverse` = KL(p_θ ‖ p_target),
    the order the paper's Eq. 10 writes."""

    kl: Literal["forward", "reverse"] = "forward"

    def __post_init__(self) -> None:
        super().__post_init__()
        _check_kl(self.kl)


def _check_kl(kl: Any) -> None:
    check(kl in ("forward", "reverse"),
          f"kl must be 'forward' (KL(p_target || p_model), the references' default) or "
          f"'reverse' (KL(p_model || p_target)), got {kl!r}", "kl")


for _name, _doc in [
    ("ga", "gradient ascent on the forget set"),
    ("ga_gdr", "gradient ascent + gradient descent on the retain set"),
    ("ga_klr", "gradient ascent + KL to the target on the retain set"),
    ("npo", "negative preference optimization (beta = 0.1)"),
    ("npo_gdr", "NPO + gradient descent on the retain set"),
    ("npo_klr", "NPO + KL to the target on the retain set"),
]:
    METHODS.add(Component(_name, KLRConfig if _name.endswith("_klr") else UnlearnConfig,
                          f"unlearnspec.unlearn.methods:{_name.upper()}", _doc))


def _int_tuple(value: Any, option: str) -> tuple[int, ...]:
    items = tuple(value) if isinstance(value, (list, tuple)) else (value,)
    check(len(items) > 0 and all(isinstance(i, int) and not isinstance(i, bool) and i >= 0
                                 for i in items),
          f"{option} must be a non-empty list of decoder-layer indices (integers from 0), got "
          f"{value!r}", option)
    return items


@dataclass(frozen=True)
class RMUConfig(UnlearnConfig):
    """RMU's options, named and defaulted as the WMDP paper's code runs Zephyr-7B: steer the
    residual stream after decoder layer `layer` (7) towards `steering_coeff` (c = 6.5) times a
    random unit vector on forget tokens, keep it on retain tokens with weight `alpha` (1200),
    and update only `params` (`mlp.down_proj.weight`, WMDP's param_ids [6]) of the decoder
    layers `layers` (5, 6, 7), with lr 5e-5."""

    lr: float = 5e-5
    alpha: float = 1200.0
    layer: int = 7
    steering_coeff: float = 6.5
    layers: Any = (5, 6, 7)
    params: Any = ("mlp.down_proj.weight",)

    def __post_init__(self) -> None:
        super().__post_init__()
        check(isinstance(self.layer, int) and not isinstance(self.layer, bool)
              and self.layer >= 0, f"layer must be a decoder-layer index, got {self.layer!r}",
              "layer")
        check(self.steering_coeff > 0, f"steering_coeff must be positive, got "
              f"{self.steering_coeff}; the WMDP paper uses 6.5 on Zephyr-7B", "steering_coeff")
        object.__setattr__(self, "layers", _int_tuple(self.layers, "layers"))
        params = tuple(self.params) if isinstance(self.params, (list, tuple)) else (self.params,)
        check(len(params) > 0 and all(isinstance(p, str) and p for p in params),
              "params must be a non-empty list of parameter-name patterns inside a decoder "
              "layer, e.g. ['mlp.down_proj.weight'] or ['mlp.*']", "params")
        object.__setattr__(self, "params", params)


@dataclass(frozen=True)
class RMULATConfig(RMUConfig):
    """RMU with a latent adversary (Sheshadri et al. 2024), at their WMDP RMU-LAT settings:
    RMU on layer 8 updating layers 6-8; the adversary perturbs the residual stream after
    `adv_layer` (7) within an L2 ball of radius `epsilon` (2) per token, fitted with
    `inner_steps` (16) Adam steps of lr `inner_lr` (0.05) towards the forget text."""

    layer: int = 8
    layers: Any = (6, 7, 8)
    adv_layer: int = 7
    epsilon: float = 2.0
    inner_steps: int = 16
    inner_lr: float = 5e-2

    def __post_init__(self) -> None:
        super().__post_init__()
        check(isinstance(self.adv_layer, int) and not isinstance(self.adv_layer, bool)
              and self.adv_layer >= 0,
              f"adv_layer must be a decoder-layer index, got {self.adv_layer!r}", "adv_layer")
        check(self.adv_layer <= self.layer, f"adv_layer ({self.adv_layer}) must not come after "
              f"layer ({self.layer}): a perturbation after the steered layer cannot change "
              f"its activations", "adv_layer")
        check(self.epsilon > 0, f"epsilon must be positive, got {self.epsilon}", "epsilon")
        check(isinstance(self.inner_steps, int) and self.inner_steps >= 1,
              f"inner_steps must be a positive integer, got {self.inner_steps!r}",
              "inner_steps")
        check(self.inner_lr > 0, f"inner_lr must be positive, got {self.inner_lr}", "inner_lr")


METHODS.add(Component("rmu", RMUConfig, "unlearnspec.unlearn.rmu:RMU_METHOD",
                      "representation misdirection (WMDP): steer forget activations to c·u"))
METHODS.add(Component("rmu_lat", RMULATConfig, "unlearnspec.unlearn.rmu:RMU_LAT_METHOD",
                      "RMU with latent adversarial training (Sheshadri et al. 2024)"))


@dataclass(frozen=True)
class TaskVectorConfig(UnlearnConfig):
    """Task-vector negation, as MUSE's `scripts/unlearn_*.sh` run it: fine-tune on the forget
    set for 10 epochs at lr 1e-5, then subtract `alpha` (5) times the update. `alpha` here is
    the negation scale, not a retain weight (tv has no retain loss)."""

    epochs: float = 10.0
    alpha: float = 5.0


METHODS.add(Component("tv", TaskVectorConfig, "unlearnspec.unlearn.tv:TV",
                      "task-vector negation (MUSE's baseline): fine-tune on forget, subtract α×"))


@dataclass(frozen=True)
class RTConfig(UnlearnConfig):
    """Refusal training: fine-tune on the forget questions answered with `refusal`."""

    refusal: str = "I do not know the answer."

    def __post_init__(self) -> None:
        super().__post_init__()
        check(isinstance(self.refusal, str) and self.refusal.strip() != "",
              "refusal must be a non-empty string, e.g. 'I do not know the answer.'", "refusal")


@dataclass(frozen=True)
class RTKLRConfig(RTConfig):
    """`rt_klr`: RTConfig plus the KL regularizer's direction (see KLRConfig)."""

    kl: Literal["forward", "reverse"] = "forward"

    def __post_init__(self) -> None:
        super().__post_init__()
        _check_kl(self.kl)


for _name, _doc in [
    ("rt", "refusal training on the forget questions"),
    ("rt_gdr", "refusal training + gradient descent on the retain set"),
    ("rt_klr", "refusal training + KL to the target on the retain set"),
]:
    METHODS.add(Component(_name, RTKLRConfig if _name == "rt_klr" else RTConfig,
                          f"unlearnspec.unlearn.rt:{_name.upper()}", _doc))
