"""What an unlearning run checks and builds before its first step: the method object, the
inputs' sanity, the tokenized forget / retain chunks, bf16 autocast, the frozen reference, the
parameters a method restricts training to, and SURE's saliency mask."""
from __future__ import annotations

import contextlib
import copy
from pathlib import Path
from typing import Any

import torch

from ..errors import RunError
from ..registry import Component
from . import sure as sure_mod
from .data import Batch, Chunks, collate, tokenize_documents, tokenize_pairs
from .methods import missing_interface
from .registry import UnlearnConfig
from .sources import DOCUMENT_MAX_LENGTH, TrainingTexts, default_max_length, pack_windows


def max_length_of(config: UnlearnConfig, texts: TrainingTexts) -> int:
    return config.max_length or default_max_length(texts.packing)


def load_method(method: Component) -> Any:
    impl = method.load()
    missing = missing_interface(impl)
    if missing:
        raise RunError(
            f"unlearning method '{method.name}' ({method.target}) is a "
            f"{type(impl).__name__} without {', '.join(missing)}; it must give an object with "
            f"the method interface, e.g. unlearnspec.unlearn.methods.Method (see "
            f"docs/methods.md).")
    return impl


def check_inputs(method: Component, config: Any, forget: list[str], retain: list[str],
                 impl: Any, base: Path, out: Path, device: str) -> None:
    if not isinstance(config, UnlearnConfig):
        raise RunError(f"unlearning method '{method.name}' got a {type(config).__name__} "
                       f"config; run_unlearning needs an UnlearnConfig (or a subclass).")
    if not forget:
        raise RunError(f"unlearning with '{method.name}': the forget set is empty, so there "
                       f"is nothing to unlearn. Point the spec's data at a corpus with "
                       f"forget documents.")
    if impl.uses_retain and not retain:
        raise RunError(f"unlearning method '{method.name}' regularizes on the retain set, "
                       f"but the retain set is empty. Provide retain documents or use a "
                       f"method without a retain loss.")
    if not base.is_dir():
        raise RunError(f"unlearning with '{method.name}': the base checkpoint {base} is not a "
                       f"directory; run_unlearning needs a local Hugging Face checkpoint.")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise RunError(f"device '{device}' was requested but CUDA is not available here; "
                       f"use device 'cpu'.")
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise RunError(f"{out} already exists and is not empty; refusing to overwrite it. "
                       f"Remove it or choose another output directory.")


def document_chunks(texts: TrainingTexts, tokenizer: Any, config: UnlearnConfig, split: str,
                    name: str) -> Chunks:
    max_length = max_length_of(config, texts)
    if texts.packing == "windows":
        bos = getattr(tokenizer, "bos_token_id", None)
        windows = [w for text in texts.texts for w in pack_windows(
            tokenizer(text, add_special_tokens=False, verbose=False)["input_ids"],
            max_length, bos)]
        chunks = Chunks(windows, len(texts.texts), sum(not t for t in texts.texts))
    else:
        chunks = tokenize_documents(texts.texts, tokenizer, max_length)
    if not chunks.ids:
        raise RunError(f"unlearning with '{name}': none of the {chunks.documents} {split} "
                       f"documents has a token to train on (all are empty). Check the "
                       f"corpus's {split} texts.")
    return chunks


def pair_chunks(pairs: list[tuple[str, str]], tokenizer: Any, config: UnlearnConfig,
                name: str) -> Chunks:
    """(prompt, completion) forget examples (RT's question + refusal)."""
    unk = getattr(tokenizer, "unk_token_id", None)
    for _, completion in pairs[:1]:
        ids = tokenizer(completion, add_special_tokens=False, verbose=False)["input_ids"]
        if unk is not None and unk in ids:
            raise RunError(f"unlearning with '{name}': the completion {completion!r} has words "
                           f"this tokenizer does not know (it encodes them as "
                           f"{tokenizer.unk_token!r}); the model would be trained to say "
                           f"<unk>. Choose a completion in the model's vocabulary.")
    chunks = tokenize_pairs(pairs, tokenizer, config.max_length or DOCUMENT_MAX_LENGTH)
    if not chunks.ids:
        raise RunError(f"unlearning with '{name}': none of the {chunks.documents} forget "
                       f"examples has a completion token within max_length "
                       f"{config.max_length or DOCUMENT_MAX_LENGTH}. Raise max_length.")
    return chunks


def bf16_autocast(config: UnlearnConfig, dev: torch.device) -> Any:
    """A bf16 autocast factory, or None for fp32. Master weights stay fp32 either way: with
    lr ~1e-5, bf16 weights would round most updates away."""
    bf16 = config.precision == "bf16" or (config.precision == "auto" and dev.type == "cuda")
    if not bf16:
        return None
    return lambda: torch.autocast(device_type=dev.type, dtype=torch.bfloat16)


def frozen_reference(model: Any, impl: Any, bf16: bool) -> Any:
    """The frozen target, made once: eval mode, no grads (bf16 when training under bf16
    autocast, which computes in bf16 anyway and halves its memory)."""
    if not impl.needs_reference:
        return None
    ref = copy.deepcopy(model)
    if bf16:
        ref.to(torch.bfloat16)
    ref.eval()
    ref.requires_grad_(False)
    return ref


def allowed_parameters(model: Any, impl: Any, config: UnlearnConfig) -> set[str] | None:
    """The parameters a method restricts training to (RMU's updated layers), or None."""
    if not hasattr(impl, "trainable_parameters"):
        return None
    return set(impl.trainable_parameters(model, config))


def sure_saliency(model: Any, impl: Any, ref: Any, forget: Chunks, config: UnlearnConfig,
                  pad: int, dev: torch.device, autocast: Any,
                  allowed: set[str] | None = None) -> sure_mod.Saliency:
    modules = sure_mod.candidate_modules(model, config.sure)
    if allowed is not None:  # SURE ranks only modules the method itself would train
        names = {id(p): n for n, p in model.named_parameters()}
        modules = {n: m for n, m in modules.items()
                   if any(names[id(p)] in allowed for p in m.parameters())}
        if not modules:
            raise RunError(f"SURE has no module to rank: the method '{impl.name}' trains only "
                           f"{len(allowed)} parameters and none is in a module sure.modules "
                           f"selects.")
    bs = config.batch_size
    prompts = forget.prompt_lengths
    batches = [collate(forget.ids[i:i + bs], pad,
                       None if prompts is None else prompts[i:i + bs]).to(dev)
               for i in range(0, len(forget.ids), bs)]

    def loss_of(batch: Batch) -> torch.Tensor:
        with autocast() if autocast else contextlib.nullcontext():
            return impl.forget_loss(model, batch, ref, config)

    model.train()
    scores = sure_mod.saliency_scores(model, modules, loss_of, batches)
    threshold, selected = sure_mod.select(scores, config.sure.percentile)
    sure_mod.apply_mask(model, modules, selected)
    return sure_mod.Saliency(scores, threshold, selected)

