"""Training the benchmark's models: a small Llama from scratch, and quantization alignment.

One loop for both. Determinism: the initial weights come from `torch.manual_seed(seed)` and the
batch order from a private `torch.Generator`, so a run is bit-identical to another run with the
same seed on the same torch build and thread count (CPU reductions may group differently under
another thread count -- the cache key does not cover that, see docs/benchmark.md).
"""
from __future__ import annotations

import math
import time
from contextlib import nullcontext
from typing import Any, Callable

import torch

from ..faults import fault_point
from ..models.batching import right_pad
from ..transforms.rtn import rtn_quantize
from .presets import ModelConfig, TrainConfig

DECODER_LINEARS = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")


def new_model(cfg: ModelConfig, tokenizer: Any, seed: int) -> Any:
    """A freshly initialised LlamaForCausalLM with untied embeddings (the paper's models are
    untied, and quantization targets decoder linears, not embeddings)."""
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(seed)
    config = LlamaConfig(
        vocab_size=len(tokenizer), hidden_size=cfg.hidden, intermediate_size=cfg.ffn,
        num_hidden_layers=cfg.layers, num_attention_heads=cfg.heads,
        num_key_value_heads=cfg.heads, max_position_embeddings=cfg.max_positions,
        bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id, tie_word_embeddings=False,
    )
    return LlamaForCausalLM(config)


def decoder_linear_names(model: Any) -> list[str]:
    """Parameter names of every decoder linear weight (q/k/v/o/gate/up/down of each layer)."""
    return [n for n, _ in model.named_parameters()
            if n.endswith(".weight") and n.split(".")[-2] in DECODER_LINEARS]


def encode_documents(docs: list[str], tokenizer: Any) -> list[list[int]]:
    """BOS + tokens + EOS per document (EOS teaches the model where a passage ends, which
    keeps greedy VerbMem continuations from running on into made-up records)."""
    ids = tokenizer(docs, add_special_tokens=True)["input_ids"]
    return [x + [tokenizer.eos_token_id] for x in ids]


def _batch(seqs: list[list[int]], pad: int) -> dict[str, torch.Tensor]:
    ids, mask = right_pad(seqs, pad)
    labels = ids.masked_fill(mask == 0, -100)
    return {"input_ids": ids, "attention_mask": mask, "labels": labels}


def _bucketed_batches(seqs: list[list[int]], batch_size: int, gen: torch.Generator
                      ) -> list[list[int]]:
    """One epoch's batches: shuffle, sort each window of 8 batches by length, cut into
    batches, shuffle the batches. Documents of similar length share a batch, so padding (most
    of the compute on short records) is small, while the order stays random and seeded."""
    order = torch.randperm(len(seqs), generator=gen).tolist()
    window = batch_size * 8
    batches: list[list[int]] = []
    for w in range(0, len(order), window):
        chunk = sorted(order[w:w + window], key=lambda j: len(seqs[j]))
        batches += [chunk[i:i + batch_size] for i in range(0, len(chunk), batch_size)]
    return [batches[k] for k in torch.randperm(len(batches), generator=gen).tolist()]


def _schedule(opt: torch.optim.Optimizer, total: int, warmup_frac: float) -> Any:
    warm = max(1, int(total * warmup_frac))

    def factor(step: int) -> float:
        if step < warm:
            return (step + 1) / warm
        return 0.5 * (1 + math.cos(math.pi * (step - warm) / max(1, total - warm)))

    return torch.optim.lr_scheduler.LambdaLR(opt, factor)


def _progress(enabled: bool) -> Any:
    from ..progress import progress_console, progress_enabled

    if not progress_enabled(enabled):
        return nullcontext(None)
    from rich.progress import (BarColumn, MofNCompleteColumn, Progress, TextColumn,
                               TimeElapsedColumn, TimeRemainingColumn)

    return Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                    TextColumn("loss {task.fields[loss]:.3f}"), TimeElapsedColumn(),
                    TimeRemainingColumn(), transient=True, console=progress_console())


def train_lm(
    model: Any,
    seqs: list[list[int]],
    *,
    pad_id: int,
    epochs: int,
    lr: float,
    batch_size: int,
    warmup_frac: float,
    weight_decay: float,
    seed: int,
    weights_hook: Callable[[Any], dict[str, torch.Tensor]] | None = None,
    description: str = "training",
    progress: bool = True,
) -> dict[str, Any]:
    """AdamW + warmup/cosine over `seqs` for `epochs`; returns a log (losses, steps, seconds).

    `weights_hook(model)`, when given, returns replacement parameters for the forward pass
    (used for straight-through fake quantization); gradients reach the latent parameters."""
    gen = torch.Generator().manual_seed(seed)
    steps_per_epoch = math.ceil(len(seqs) / batch_size)
    total = epochs * steps_per_epoch
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=weight_decay)
    sched = _schedule(opt, total, warmup_frac)
    model.train()
    losses: list[float] = []
    t0, c0 = time.perf_counter(), time.process_time()
    with _progress(progress) as bar:
        task = bar.add_task(description, total=total, loss=float("nan")) if bar else None
        for _ in range(epochs):
            epoch_loss = 0.0
            for members in _bucketed_batches(seqs, batch_size, gen):
                batch = _batch([seqs[j] for j in members], pad_id)
                if weights_hook is None:
                    loss = model(**batch).loss
                else:
                    loss = torch.func.functional_call(model, weights_hook(model), (),
                                                      batch, strict=False).loss
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                sched.step()
                fault_point("bench-step")
                epoch_loss += loss.item()
                if bar:
                    bar.update(task, advance=1, loss=loss.item())
            losses.append(epoch_loss / steps_per_epoch)
    model.eval()
    return {"epoch_losses": losses, "steps": total, "wall_s": time.perf_counter() - t0,
            "cpu_s": time.process_time() - c0}


def fake_quant_weights(model: Any) -> dict[str, torch.Tensor]:
    """Straight-through 4-bit RTN of the decoder linears: forward sees Q(w), backward treats
    Q as the identity."""
    params = dict(model.named_parameters())
    return {n: params[n] + (rtn_quantize(params[n], bits=4) - params[n]).detach()
            for n in decoder_linear_names(model)}


@torch.no_grad()
def snap_to_grid(model: Any, *, max_rounds: int = 10) -> None:
    """Replace each decoder linear weight w by rtn_quantize(w) until rtn_quantize(w) == w bit
    for bit. One round is usually enough; a second can be needed because the scale max|w|/7
    recomputed from snapped weights may differ from the first scale in the last bit."""
    params = dict(model.named_parameters())
    for name in decoder_linear_names(model):
        w = params[name]
        for _ in range(max_rounds):
            q = rtn_quantize(w, bits=4)
            if torch.equal(q, w):
                break
            w.copy_(q)
        else:
            raise RuntimeError(f"{name} did not reach a fixed point of 4-bit RTN "
                               f"in {max_rounds} rounds")


def on_grid(model: Any) -> dict[str, bool]:
    """For each decoder linear weight: is it exactly on its own 4-bit RTN grid?"""
    params = dict(model.named_parameters())
    return {n: bool(torch.equal(rtn_quantize(params[n], bits=4), params[n]))
            for n in decoder_linear_names(model)}


def train_target_like(model: Any, seqs: list[list[int]], cfg: TrainConfig, *, pad_id: int,
                      seed: int, description: str, progress: bool) -> dict[str, Any]:
    return train_lm(model, seqs, pad_id=pad_id, epochs=cfg.epochs, lr=cfg.lr,
                    batch_size=cfg.batch_size, warmup_frac=cfg.warmup_frac,
                    weight_decay=cfg.weight_decay, seed=seed, description=description,
                    progress=progress)


def align_to_grid(model: Any, seqs: list[list[int]], cfg: TrainConfig, *, pad_id: int,
                  seed: int, description: str, progress: bool) -> dict[str, Any]:
    """Quantization-aware fine-tuning (straight-through 4-bit RTN on decoder linears) of an
    already trained model on the same documents, then snap the latent weights onto the grid.
    The result is what a QAT or dequantized-int4 checkpoint is: full-precision weights that
    are exactly 4-bit representable."""
    log = train_lm(model, seqs, pad_id=pad_id, epochs=cfg.qat_epochs, lr=cfg.qat_lr,
                   batch_size=cfg.batch_size, warmup_frac=cfg.warmup_frac,
                   weight_decay=cfg.weight_decay, seed=seed + 1,
                   weights_hook=fake_quant_weights, description=description,
                   progress=progress)
    snap_to_grid(model)
    return log
