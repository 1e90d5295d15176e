"""SURE (section 6.1): module-level saliency from the forget-loss gradient, and its mask.

s_i = ‖∇_{θ_i} L_forget(θ_o; D_forget)‖_F per candidate module (Eq. 4), γ = the configured
percentile of the s_i, salient = s_i ≥ γ (Eq. 5); only salient modules are trained (Eq. 6).
Candidates are the modules that own a weight matrix (`nn.Linear`, GPT-2-style `Conv1D`,
and MoE expert blocks, whose 3-D expert tensors are ranked as one module). `decoder`
excludes the output head: it is usually left un-quantized, so a head-only update would
survive 4-bit rounding and make any method look robust. The mask is enforced twice:
non-salient parameters get `requires_grad=False` and stay out of the optimizer (so weight
decay cannot move them), and their bytes are fingerprinted before and compared after
training.
"""
from __future__ import annotations

import fnmatch
import hashlib
from dataclasses import dataclass
from typing import Any, Callable, Iterable

import numpy as np
import torch
from torch import nn

from ..errors import RunError
from .data import Batch
from .registry import SureConfig


@dataclass(frozen=True)
class Saliency:
    """Scores per candidate module, the threshold γ and the salient modules (sorted by name)."""

    scores: dict[str, float]
    threshold: float
    selected: list[str]

    def to_log(self, config: SureConfig) -> dict[str, Any]:
        return {"percentile": config.percentile, "modules": _modules_label(config),
                "threshold": self.threshold, "selected": self.selected, "scores": self.scores}


def _modules_label(config: SureConfig) -> Any:
    return list(config.modules) if isinstance(config.modules, tuple) else config.modules


def _is_linear(module: nn.Module) -> bool:
    """A module that owns a weight matrix: `nn.Linear`, GPT-2's `Conv1D`, and the modules
    transformers 5 keeps MoE experts in (one 3-D tensor per projection, [experts, out, in])
    or a router with a bare 2-D weight. Embeddings are excluded (nothing SURE should rank)."""
    if isinstance(module, nn.Linear):
        return True
    if isinstance(module, nn.Embedding):
        return False
    return any(p.ndim >= 2 and p.is_floating_point()
               for p in module.parameters(recurse=False))


def candidate_modules(model: nn.Module, config: SureConfig) -> dict[str, nn.Module]:
    """The modules SURE ranks, by qualified name. Raises when none matches."""
    head = model.get_output_embeddings() if hasattr(model, "get_output_embeddings") else None
    linears = {n: m for n, m in model.named_modules() if _is_linear(m)}
    if config.modules == "all":
        chosen = linears
    elif config.modules == "decoder":
        chosen = {n: m for n, m in linears.items() if m is not head}
    else:
        chosen = {n: m for n, m in linears.items()
                  if any(fnmatch.fnmatchcase(n, p) for p in config.modules)}
    if not chosen:
        examples = ", ".join(list(linears)[:3]) or "none"
        raise RunError(
            f"SURE has no module to rank: sure.modules={_modules_label(config)!r} selects none "
            f"of the model's {len(linears)} linear modules (e.g. {examples}). Use "
            f"'decoder', 'all', or patterns that match those names.")
    return chosen


def saliency_scores(model: nn.Module, modules: dict[str, nn.Module],
                    loss_of: Callable[[Batch], torch.Tensor],
                    batches: Iterable[Batch]) -> dict[str, float]:
    """Frobenius norm of the mean forget-loss gradient over `batches`, per module. Only the
    candidates' parameters require grad during the pass; the caller restores the flags."""
    params = {id(p) for m in modules.values() for p in m.parameters()}
    for p in model.parameters():
        p.requires_grad_(id(p) in params)
    model.zero_grad(set_to_none=True)
    batches = list(batches)
    for batch in batches:
        (loss_of(batch) / len(batches)).backward()
    scores = {}
    for name, module in modules.items():
        squares = [p.grad.double().pow(2).sum() for p in module.parameters() if p.grad is not None]
        scores[name] = float(torch.stack(squares).sum().sqrt()) if squares else 0.0
    model.zero_grad(set_to_none=True)
    return scores


def select(scores: dict[str, float], percentile: float) -> tuple[float, list[str]]:
    """γ = percentile of the scores (linear interpolation); salient = s ≥ γ and s > 0 (the
    paper requires γ > 0: a module the forget loss does not touch is never salient)."""
    values = np.array(list(scores.values()), dtype=np.float64)
    if not np.isfinite(values).all():
        bad = [n for n, s in scores.items() if not np.isfinite(s)]
        raise RunError(f"SURE: the forget-loss gradient is not finite on {bad[:3]}; the "
                       f"starting model or the forget set gives NaN/inf losses.")
    threshold = float(np.percentile(values, percentile))
    chosen = sorted(n for n, s in scores.items() if s >= threshold and s > 0)
    if not chosen:
        raise RunError("SURE selected no module: the forget-loss gradient is zero on every "
                       "candidate module, so nothing is salient. Check that the forget set "
                       "has tokens the model predicts and that sure.modules names trained "
                       "layers.")
    return threshold, chosen


def apply_mask(model: nn.Module, modules: dict[str, nn.Module], selected: list[str]) -> None:
    """requires_grad on the salient modules' parameters only (embeddings, norms and the head
    included in 'everything else')."""
    keep = {id(p) for n in selected for p in modules[n].parameters()}
    for p in model.parameters():
        p.requires_grad_(id(p) in keep)


def fingerprint(model: nn.Module, names: Iterable[str] | None = None) -> dict[str, str]:
    """A digest of the bytes of each named parameter (default: every frozen one): exact
    equality, without a second copy of the model in memory."""
    wanted = None if names is None else set(names)
    digests = {}
    for name, p in model.named_parameters():
        if (not p.requires_grad) if wanted is None else (name in wanted):
            data = p.detach().to("cpu").contiguous().view(torch.uint8).numpy()
            digests[name] = hashlib.blake2b(data.tobytes(), digest_size=16).hexdigest()
    return digests


def verify_untouched(model: nn.Module, before: dict[str, str]) -> None:
    """Raise when a parameter SURE froze changed during training."""
    after = fingerprint(model, before)
    changed = sorted(n for n in before if after.get(n) != before[n])
    if changed:
        raise RunError(f"SURE's mask was not in force: {len(changed)} frozen parameters "
                       f"changed during training (e.g. {', '.join(changed[:3])}). This is a "
                       f"bug in the training loop or the method; the checkpoint was not saved.")
