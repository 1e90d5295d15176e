"""`kind: prune`: sparsify the decoder's weight matrices, as Wanda's reference code does
(Sun et al. 2024, github.com/locuslab/wanda, `lib/prune.py`).

Each weight is looked at as the [output, input] matrix the kernels multiply by (Conv1D
transposed, MoE experts stacked). Scores: `magnitude` |W_ij|; `wanda` |W_ij|·‖X_j‖₂, X_j the
j-th input feature over every calibration token (Wanda accumulates ‖X_j‖²/n_samples; the
constant does not change any comparison). Which weights go:
- unstructured magnitude: the int(numel·ratio) lowest scores of the whole matrix;
- unstructured wanda: the int(in·ratio) lowest scores of each output row (Wanda compares
  weights per output);
- N:M (both methods): in each row, the N lowest scores of every M consecutive inputs.
Ties are broken by position (a stable sort), so a rerun zeroes the same weights.

One deliberate difference: Wanda's `prune_magnitude` zeroes every |W| <= the score at index
int(numel·ratio) of the sorted matrix, i.e. one weight more than the ratio (plus ties), so its
ratio 0 still prunes; here exactly int(numel·ratio) go and ratio 0 is the identity.

Wanda prunes block by block: the calibration activations entering decoder block i are
computed with blocks 0..i−1 already pruned (`prune_wanda` feeds each block the previous
block's pruned outputs). Here every block's inputs come from a forward pass of the model as
pruned so far, stopped after that block.
"""
from __future__ import annotations

from typing import Any

import torch

from ..errors import RunError
from .base import InPlaceTransform, Quantized, TransformContext
from .roles import DECODER_ROLES, WeightInfo, decoder_block, iter_parameters
from .rtn import from_rows, to_rows

_ROLES = {"decoder": set(DECODER_ROLES), "decoder+head": {*DECODER_ROLES, "head"}}


def prune_mask(scores: torch.Tensor, ratio: float, n_m: tuple[int, int] | None,
               per_row: bool) -> torch.Tensor:
    """True where a weight is pruned, for a [out, in] score matrix."""
    rows, cols = scores.shape
    mask = torch.zeros_like(scores, dtype=torch.bool)
    if n_m is not None:
        n, m = n_m
        if cols % m:
            raise RunError(f"N:M pruning {n}:{m} needs the input dimension to be a multiple "
                           f"of {m}; this matrix has {cols} inputs")
        groups = scores.reshape(rows, cols // m, m)
        # the N lowest of each group (a stable order breaks ties by position)
        idx = torch.sort(groups, dim=-1, stable=True).indices[..., :n]
        return mask.reshape(rows, cols // m, m).scatter_(-1, idx, True).reshape(rows, cols)
    if per_row:
        k = int(cols * ratio)
        if k:
            idx = torch.sort(scores, dim=-1, stable=True).indices[:, :k]
            mask.scatter_(1, idx, True)
        return mask
    k = int(scores.numel() * ratio)
    if k:
        idx = torch.sort(scores.flatten(), stable=True).indices[:k]
        mask.view(-1)[idx] = True
    return mask


def wanda_scores(w: torch.Tensor, sq_norms: torch.Tensor) -> torch.Tensor:
    """|W_ij|·‖X_j‖₂ for W [out, in] and the per-input sums of squares ‖X_j‖² [in]."""
    return w.abs().float() * sq_norms.float().sqrt().unsqueeze(0)


class _Stop(Exception):
    """Ends a calibration forward pass after the block being measured."""


def _stop(*_: Any) -> None:
    raise _Stop()


class PruneTransform(InPlaceTransform):
    """`kind: prune` (see the module docstring)."""

    VERSION = "prune-1"

    def __init__(self, config: Any) -> None:
        super().__init__(config)
        self._roles = _ROLES[config.modules]
        self.pruned: dict[str, int] = {}  # weight name -> how many zeroed by the last apply

    def selects(self, info: WeightInfo) -> bool:
        return info.role in self._roles and info.layout in ("linear", "conv1d", "experts")

    @property
    def streams(self) -> bool:  # wanda needs activations: weight metrics prune whole models
        return self.config.method == "magnitude"

    def _prune_rows(self, rows: torch.Tensor, scores: torch.Tensor) -> tuple[torch.Tensor,
                                                                               torch.Tensor]:
        c = self.config
        mask = prune_mask(scores, c.ratio, c.n_m, per_row=c.method == "wanda")
        return rows.masked_fill(mask, 0), mask

    def quantize_tensor(self, info: WeightInfo, w: torch.Tensor) -> Quantized | None:
        if self.config.method != "magnitude":
            raise NotImplementedError("wanda pruning needs calibration activations")
        if not self.selects(info):
            return None
        rows = to_rows(w, info.layout)
        values, mask = self._prune_rows(rows, rows.abs().float())
        shape = tuple(w.shape)
        # codes: 1 where the weight is kept, 0 where it is pruned
        codes = from_rows((~mask).to(torch.int16), info.layout, shape)
        return Quantized(from_rows(values, info.layout, shape).contiguous(), codes.contiguous())

    @torch.no_grad()
    def apply(self, model: Any, ctx: TransformContext) -> Any:
        selected = [(info, p) for info, p in iter_parameters(model) if self.selects(info)]
        if self.config.method == "magnitude":
            for info, p in selected:
                self._set(info, p, to_rows(p.data, info.layout).abs().float())
            return model
        for group in _blocks(selected):
            norms = self._input_norms(model, group, ctx)
            for info, p in group:
                self._set(info, p, wanda_scores(to_rows(p.data, info.layout), norms[info.name]))
        return model

    def _set(self, info: WeightInfo, p: Any, scores: torch.Tensor) -> None:
        rows = to_rows(p.data, info.layout)
        values, mask = self._prune_rows(rows, scores.to(rows.device))
        p.data.copy_(from_rows(values, info.layout, tuple(p.shape)))
        self.pruned[info.name] = int(mask.sum())

    def _input_norms(self, model: Any, group: list[tuple[WeightInfo, Any]],
                     ctx: TransformContext) -> dict[str, torch.Tensor]:
        """‖X_j‖² per input feature of each weight in `group` (one decoder block, or the
        head), over every calibration token, on the model as pruned so far."""
        from ..data.calibration import calibration_sequences

        c = self.config
        if not hasattr(self, "_sequences"):
            self._sequences = calibration_sequences(
                ctx.calibration, ctx.tokenizer, n_samples=c.n_samples, seq_len=c.seq_len,
                sampling=c.sampling, seed=c.seed, kind="wanda")
        sums: dict[str, torch.Tensor] = {}
        hooks = []
        last = None
        for info, _ in group:
            if info.layout == "experts":
                raise RunError(f"wanda needs each expert's own inputs, and {info.name} stores "
                               f"all experts in one tensor; prune it with method: magnitude")
            mod = _module_of(model, info)
            last = mod

            def hook(mod: Any, args: Any, out: Any, name: str = info.name) -> None:
                x = args[0].detach().float().reshape(-1, args[0].shape[-1])
                s = x.pow(2).sum(dim=0)
                sums[name] = sums[name] + s if name in sums else s

            hooks.append(mod.register_forward_hook(hook))
        block = _block_module(model, group[0][0]) or last
        stop = block.register_forward_hook(_stop)
        device = next(model.parameters()).device
        try:
            for ids in self._sequences:
                try:
                    model(input_ids=torch.tensor([ids], device=device))
                except _Stop:
                    pass
        finally:
            for h in hooks:
                h.remove()
            stop.remove()
        missing = [info.name for info, _ in group if info.name not in sums]
        if missing:
            raise RunError(f"wanda saw no calibration input reaching {missing[0]}; its module "
                           f"is not called in the model's forward pass")
        return sums


    def coverage_hint(self) -> str:
        return ("Pruning zeroes weights of the matrices it selects; at this ratio it zeroed "
                "none of these (int(size x ratio) is 0 for them). Raise ratio.")


def _module_of(model: Any, info: WeightInfo) -> Any:
    if info.role == "head":
        return model.get_output_embeddings()
    return model.get_submodule(info.name.rpartition(".")[0])


def _block_key(info: WeightInfo) -> str:
    if info.role == "head":
        return "~head"  # after every block
    return decoder_block(info.name) or info.name


def _block_module(model: Any, info: WeightInfo) -> Any:
    key = _block_key(info)
    if key == "~head" or key == info.name:
        return None
    return model.get_submodule(key)


def _blocks(selected: list[tuple[WeightInfo, Any]]) -> list[list[tuple[WeightInfo, Any]]]:
    """Selected weights grouped by decoder block, in the model's order (head last)."""
    groups: dict[str, list[tuple[WeightInfo, Any]]] = {}
    for info, p in selected:
        groups.setdefault(_block_key(info), []).append((info, p))
    heads = groups.pop("~head", None)
    return list(groups.values()) + ([heads] if heads else [])
