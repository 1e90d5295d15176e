"""The models a run holds in memory: each (model, transform) loaded and transformed once,
its coverage checked and kept, at most `settings.max_models_in_memory` held at a time."""
from __future__ import annotations

import dataclasses
import gc
import logging
import sys
import time
from collections import OrderedDict
from pathlib import Path
from typing import Any, Iterator

from ..errors import RunError
from .context import RunContext
from .sources import Sources
from .transforms import SpecTransforms

# transforms that re-read the checkpoint instead of the model in memory (they quantize while
# loading); in a chain after another member, they get the model as it is, saved
RELOADING = frozenset({"bnb", "gptq", "awq", "gguf"})

Slot = tuple[str, "str | None"]  # (model, transform)
log = logging.getLogger("unlearnspec")


def _device_map(strategy: str, device: str) -> Any:
    """accelerate's strategy over the GPUs when the run is on CUDA; on a CPU run every layer
    goes to the CPU (accelerate would otherwise still place them on a visible GPU)."""
    return strategy if device.startswith("cuda") else {"": device}


# A transformers model holds reference cycles, so dropping it frees nothing until the cycle
# collector runs; a full collection walks every object the imported libraries made (0.3-0.5 s
# once transformers and GPTQModel are loaded, 53 times in the embedded benchmark's cold run:
# 19 s). Models below this size are left to Python's own collections; a larger one, or any
# on a GPU, is collected at once, before the next model loads.
COLLECT_AT_BYTES = 256 * 2**20


def model_bytes(model: Any) -> int:
    """The bytes of a model's parameters and buffers (0 for anything that is not a module)."""
    total = 0
    for get in ("parameters", "buffers"):
        for t in getattr(model, get, lambda: ())():
            total += t.numel() * t.element_size()
    return total


def on_gpu(model: Any) -> bool:
    device = getattr(model, "device", None)
    return getattr(device, "type", "cpu") not in ("cpu", "meta")


def free_memory(nbytes: int | None = None, gpu: bool = True) -> None:
    """Collect cycles and release CUDA's cache; with `nbytes` (what was just dropped) only
    when it is at least COLLECT_AT_BYTES or was on a GPU."""
    if nbytes is not None and nbytes < COLLECT_AT_BYTES and not gpu:
        return
    gc.collect()
    torch = sys.modules.get("torch")  # never imported: no CUDA cache to free
    if torch is not None and torch.cuda.is_available():
        torch.cuda.empty_cache()


class LoadedModels:
    def __init__(self, ctx: RunContext, sources: Sources, transforms: SpecTransforms) -> None:
        self.ctx = ctx
        self.spec = ctx.spec
        self.sources = sources
        self.transforms = transforms
        self._loaded: OrderedDict[Slot, tuple[Any, Any]] = OrderedDict()
        self.coverage: dict[Slot, Any] = {}  # (model, transform) -> Coverage

    def load(self, model: str, transform: str | None) -> tuple[Any, Any]:
        """(model, tokenizer) of `model` after `transform`: relearning members first (a
        cached checkpoint), then the others applied in memory, in order."""
        slot = (model, transform)
        if slot in self._loaded:
            self._loaded.move_to_end(slot)
            return self._loaded[slot]
        limit = max(1, self.spec.settings.max_models_in_memory)
        while len(self._loaded) >= limit:
            _, (old, _tok) = self._loaded.popitem(last=False)
            nbytes, gpu = model_bytes(old), on_gpu(old)
            del old, _tok
            free_memory(nbytes, gpu)
        ts = self.transforms
        steps = ts.members(transform) if transform is not None else []
        relearns = ts.relearn_prefix(transform, steps)
        rest = steps[len(relearns):]
        cov = None
        if relearns:  # the relearned checkpoint, trained once and cached like an unlearned one
            path: Path | str = ts.fail_as(transform, relearns[-1], model,
                                          lambda: ts.relearned_path(model, relearns))
            cov = self._relearn_coverage(model, transform, relearns[-1], path)
        else:
            path = self.sources.model_path(model)
        m, tok = self.load_checkpoint(model, path)
        for i, member in enumerate(rest):
            started = time.monotonic()
            m, cov = ts.fail_as(transform, member, model,
                                lambda: self._apply_member(member, m, tok, path, i > 0))
            log.info("unlearnspec: applied %s to %s in %.1fs", member, model,
                     time.monotonic() - started)
        if cov is not None:
            self.coverage[slot] = cov
            self.ctx.stats["transformed"] += 1
        self._loaded[slot] = (m, tok)
        return m, tok

    def load_checkpoint(self, model: str, path: Path | str) -> tuple[Any, Any]:
        from ..models.loading import load_causal_lm

        ms = self.spec.models[model]
        import torch

        # `auto`: the checkpoint's own dtype, as transformers reads it from config.json
        dtype = ms.dtype if ms.dtype == "auto" else getattr(torch, ms.dtype) if ms.dtype else None
        device = self.ctx.device
        placement = {"device_map": _device_map(ms.device_map, device)} \
            if getattr(ms, "device_map", None) else {}
        m, tok = load_causal_lm(path, device=device, dtype=dtype, revision=ms.revision,
                                allow_pickle=ms.allow_pickle,
                                trust_remote_code=ms.trust_remote_code, **placement)
        self.ctx.stats["loaded"] += 1
        return m, tok

    def _apply_member(self, member: str, m: Any, tok: Any, path: Path | str,
                      changed: bool) -> tuple[Any, Any]:
        """One transform applied to the loaded model; its coverage checked (a transform that
        leaves the decoder (mostly) as it was gives no numbers). A member that re-reads the
        checkpoint (bitsandbytes, GPTQ, AWQ) after earlier members changed the model gets
        the model as it is now, saved to a temporary checkpoint."""
        from ..transforms.base import TransformContext
        from ..transforms.coverage import apply_measured

        t = self.transforms.get(member)
        ctx = TransformContext(checkpoint=Path(path), tokenizer=tok, device=self.ctx.device,
                               calibration=self.transforms.calibration(member))
        if not (changed and self.spec.transforms[member].kind in RELOADING):
            out, cov = apply_measured(t, m, ctx)
            return out, cov.check("it", t)
        import tempfile

        tmp_root = self.ctx.cache.root / "tmp"
        tmp_root.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=tmp_root) as tmp:
            m.save_pretrained(tmp, safe_serialization=True)
            tok.save_pretrained(tmp)
            out, cov = apply_measured(t, m, dataclasses.replace(ctx, checkpoint=Path(tmp)))
        return out, cov.check("it", t)

    def _relearn_coverage(self, model: str, transform: str, member: str, path: Path) -> Any:
        """What relearning changed, measured against the model it started from."""
        from ..transforms.coverage import measure, snapshot

        base, _ = self.load_checkpoint(model, self.sources.model_path(model))
        snap = snapshot(base)
        del base
        relearned, _ = self.load_checkpoint(model, path)
        t = self.transforms.get(member)
        cov = self.transforms.fail_as(transform, member, model,
                                      lambda: measure(snap, t, relearned).check("it", t))
        del relearned
        return cov

    def draws(self, transform: str | None) -> int:
        """How many times `transform` is drawn (matched noise: K > 1 random draws)."""
        return getattr(self.transforms.get(transform), "draws", 1) if transform else 1

    def each_draw(self, model: str, transform: str) -> Iterator[tuple[Any, Any]]:
        """(model, tokenizer) for each draw of `transform`, each applied to a fresh copy of
        the untransformed model; one copy held at a time (the caller drops the last one)."""
        import copy

        from ..transforms.base import TransformContext
        from ..transforms.coverage import apply_measured

        base, tok = self.load(model, None)
        ts = self.spec.transforms[transform]
        ctx = TransformContext(checkpoint=Path(self.sources.model_path(model)), tokenizer=tok,
                               device=self.ctx.device)
        for k in range(self.draws(transform)):
            t = self.transforms.get(transform).with_draw(k)
            try:
                drawn, cov = apply_measured(t, copy.deepcopy(base), ctx)
                self.coverage[(model, transform)] = cov.check("it", t)
            except Exception as exc:
                what = str(exc) if isinstance(exc, RunError) else f"{type(exc).__name__}: {exc}"
                raise RunError(f"{ts.loc}: transform '{transform}' ({ts.kind}) draw {k} failed "
                               f"on model '{model}': {what}") from exc
            self.ctx.stats["transformed"] += 1
            yield drawn, tok
            del drawn

    def close(self) -> None:
        self._loaded.clear()
        free_memory()
