"""RMU (Li et al. 2024, the WMDP paper) and RMU_LAT (Sheshadri et al. 2024): unlearning in
activation space.

RMU pushes the residual stream after decoder layer `layer` towards c·u on forget tokens (u a
fixed random unit vector, drawn once per run from the seed) and keeps it equal to the frozen
target's on retain tokens:

    L = mean_t ‖h_ℓ(θ; x_f)_t − c·u‖² / d  +  α · mean_t ‖h_ℓ(θ; x_r)_t − h_ℓ(θ_target; x_r)_t‖² / d

and only the parameters named by `params` in the decoder layers `layers` are trained (the
reference: layer 7, layers 5-7, param_ids [6] = `mlp.down_proj.weight` on Llama/Mistral).

RMU_LAT adds a latent adversary: before each forget loss, a perturbation δ of the residual
stream after layer `adv_layer` (‖δ_t‖₂ ≤ ε per token) is fitted with `inner_steps` Adam steps
to make the model predict the forget text again (cross-entropy towards it), and the RMU forget
loss is computed with δ in place. The retain loss is computed without it.
"""
from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from fnmatch import fnmatchcase
from typing import Any, Iterator, Optional

import torch

from ..errors import RunError
from .data import Batch
from .losses import mean_nll


def decoder_layers(model: Any) -> Any:
    """The model's list of decoder blocks (Llama/Mistral/Qwen `model.layers`, GPT-2 `h`,
    GPT-NeoX `layers`)."""
    for path in ("model.layers", "transformer.h", "gpt_neox.layers", "model.decoder.layers"):
        obj = model
        try:
            for part in path.split("."):
                obj = getattr(obj, part)
        except AttributeError:
            continue
        if isinstance(obj, torch.nn.ModuleList):
            return obj
    raise RunError(f"RMU needs the decoder layers of a {type(model).__name__}, but it has none "
                   f"of model.layers / transformer.h / gpt_neox.layers.")


def _layer_prefix(model: Any, index: int) -> str:
    layers = decoder_layers(model)
    target = layers[index]
    for name, module in model.named_modules():
        if module is target:
            return name
    raise RunError(f"decoder layer {index} is not a named submodule")  # pragma: no cover


def check_layer(model: Any, index: int, option: str) -> None:
    n = len(decoder_layers(model))
    if not 0 <= index < n:
        raise RunError(f"{option} = {index}, but the model has {n} decoder layers (0..{n - 1}); "
                       f"set {option} to one of them (the WMDP paper uses 7 on a 32-layer "
                       f"7B model).")


def _hidden(output: Any) -> torch.Tensor:
    return output[0] if isinstance(output, tuple) else output


def layer_activations(model: Any, batch: Batch, layer: int) -> torch.Tensor:
    """The residual stream after decoder layer `layer` (B, T, d), in float32, with grad."""
    captured: list[torch.Tensor] = []

    def hook(_module: Any, _inputs: Any, output: Any) -> None:
        captured.append(_hidden(output))

    handle = decoder_layers(model)[layer].register_forward_hook(hook)
    try:
        model(input_ids=batch.input_ids, attention_mask=batch.attention_mask)
    finally:
        handle.remove()
    return captured[0].float()


def masked_mse(acts: torch.Tensor, target: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean squared error over the real (non-padding) positions and every hidden unit: what
    `F.mse_loss` gives on an unpadded batch."""
    m = mask.bool()
    if not m.any():
        return acts.sum() * 0.0
    diff = (acts - target)[m]
    return diff.pow(2).mean()


@contextmanager
def perturbed(model: Any, layer: int, delta: torch.Tensor) -> Iterator[None]:
    """Add `delta` (B, T, d) to the residual stream after decoder layer `layer`."""

    def hook(_module: Any, _inputs: Any, output: Any) -> Any:
        if isinstance(output, tuple):
            return (output[0] + delta.to(output[0].dtype), *output[1:])
        return output + delta.to(output.dtype)

    handle = decoder_layers(model)[layer].register_forward_hook(hook)
    try:
        yield
    finally:
        handle.remove()


def project(delta: torch.Tensor, epsilon: float) -> torch.Tensor:
    """Scale every position's perturbation down to L2 norm ε where it is larger."""
    norms = delta.norm(dim=-1, keepdim=True)
    return delta * torch.clamp(epsilon / norms.clamp_min(1e-12), max=1.0)


def latent_adversary(model: Any, batch: Batch, config: Any) -> torch.Tensor:
    """δ after `inner_steps` Adam steps (lr `inner_lr`) minimising the forget cross-entropy
    under the perturbation, projected to ‖δ_t‖₂ ≤ ε after each step; zero on padding. Only δ
    gets gradients (torch.autograd.grad): the model's .grad fields are left untouched."""
    hidden = model.config.hidden_size
    b, t = batch.input_ids.shape
    mask = batch.attention_mask.unsqueeze(-1).float()
    delta = torch.zeros(b, t, hidden, device=batch.input_ids.device, requires_grad=True)
    optimizer = torch.optim.Adam([delta], lr=config.inner_lr)
    was_training = model.training
    for _ in range(config.inner_steps):
        with perturbed(model, config.adv_layer, delta * mask):
            loss = mean_nll(model, batch)
        (grad,) = torch.autograd.grad(loss, delta)
        delta.grad = grad
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        with torch.no_grad():
            delta.copy_(project(delta, config.epsilon))
    model.train(was_training)
    return (delta * mask).detach()


@dataclass(frozen=True)
class RMU:
    """The RMU method object (see the module docstring). `control` is c·u once `start` has
    drawn u; the registered instance is unbound."""

    name: str = "rmu"
    adversarial: bool = False
    control: Optional[torch.Tensor] = field(default=None, compare=False)
    VERSION: str = "1"
    needs_reference: bool = True
    uses_retain: bool = True

    def start(self, model: Any, ref: Any, config: Any, seed: int) -> "RMU":
        check_layer(model, config.layer, "layer")
        for index in config.layers:
            check_layer(model, index, "layers")
        if self.adversarial:
            check_layer(model, config.adv_layer, "adv_layer")
        # WMDP: torch.rand(1, 1, hidden) / its norm * c -- uniform in [0, 1), not Gaussian
        gen = torch.Generator().manual_seed(int(seed))
        u = torch.rand(model.config.hidden_size, generator=gen, dtype=torch.float32)
        device = next(model.parameters()).device
        return replace(self, control=(u / u.norm() * config.steering_coeff).to(device))

    def trainable_parameters(self, model: Any, config: Any) -> list[str]:
        """The parameters RMU updates: `params` patterns inside the `layers` blocks."""
        names = []
        for index in config.layers:
            prefix = _layer_prefix(model, index) + "."
            for name, _ in model.named_parameters():
                if name.startswith(prefix) and any(
                        fnmatchcase(name[len(prefix):], p) for p in config.params):
                    names.append(name)
        if not names:
            prefix = _layer_prefix(model, config.layers[0]) + "."
            have = [n[len(prefix):] for n, _ in model.named_parameters() if n.startswith(prefix)]
            raise RunError(f"RMU's params {list(config.params)} match no parameter of decoder "
                           f"layers {list(config.layers)}; layer {config.layers[0]} has "
                           f"{', '.join(have[:9])}. Set params to patterns of those names.")
        return names

    def forget_loss(self, model: Any, batch: Batch, ref: Any, config: Any) -> torch.Tensor:
        if self.control is None:
            raise RunError("RMU's control vector was not drawn: call start() first (the "
                           "training loop does).")
        if self.adversarial:
            delta = latent_adversary(model, batch, config)
            with perturbed(model, config.adv_layer, delta):
                acts = layer_activations(model, batch, config.layer)
        else:
            acts = layer_activations(model, batch, config.layer)
        return masked_mse(acts, self.control.expand_as(acts), batch.attention_mask)

    def retain_loss(self, model: Any, batch: Batch, ref: Any, config: Any) -> torch.Tensor:
        with torch.no_grad():
            frozen = layer_activations(ref, batch, config.layer)
        acts = layer_activations(model, batch, config.layer)
        return masked_mse(acts, frozen, batch.attention_mask)


RMU_METHOD = RMU("rmu")
RMU_LAT_METHOD = RMU("rmu_lat", adversarial=True)
