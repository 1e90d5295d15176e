"""bitsandbytes quantization through transformers' `BitsAndBytesConfig`: LLM.int8 (`int8`),
NF4 and FP4 — what the paper's released code ran (`load_in_4bit=True` is FP4 there).

bitsandbytes quantizes while loading, so `apply` reloads the checkpoint instead of using the
fp32 model it is given. It quantizes every nn.Linear except the LM head (transformers keeps
the output embedding in float), which is also what `quantize_tensor` selects.

CPU pitfall (bitsandbytes 0.50): on CPUs with AVX512-BF16 the first 4-bit forward repacks the
packed weights in place for a faster kernel; afterwards `dequantize_4bit` returns garbage and
`save_pretrained` writes a corrupt checkpoint. `apply` turns that path off on every Linear4bit
(`support_avx512bf16_for_cpu = False`), which keeps readback exact.
"""
from __future__ import annotations

import warnings
from typing import Any, Iterator

import torch

from ..errors import MissingExtraError, RunError
from .base import Quantized, Readback, Transform, TransformContext
from .rtn import weight_role

BLOCKSIZE_4BIT = 64  # bitsandbytes' Params4bit default, which transformers uses


def _bnb() -> Any:
    try:
        with warnings.catch_warnings():
            # importing bitsandbytes' CPU ops calls torch.compile, which imports
            # torch.utils.mkldnn, whose module body uses the deprecated torch.jit.script_method
            # 14 times: torch's own deprecation, nothing a spec author can act on
            warnings.filterwarnings("ignore", message=r".*torch\.jit\.script_method",
                                    category=DeprecationWarning)
            import bitsandbytes
    except ImportError as exc:
        raise MissingExtraError("the bnb transform", "bnb", "bitsandbytes") from exc
    return bitsandbytes


def disable_cpu_repack(model: Any) -> Any:
    """Keep bitsandbytes from repacking 4-bit weights on the first CPU forward (see the module
    docstring). Call it on any bnb model before its first forward, e.g. a pre-quantized bnb
    checkpoint a spec loads; a no-op for models without Linear4bit layers."""
    bnb = _bnb()
    for mod in model.modules():
        if isinstance(mod, bnb.nn.Linear4bit):
            mod.support_avx512bf16_for_cpu = False
    return model


class BnbTransform(Transform):
    """`kind: bnb` with `mode: int8 | nf4 | fp4`."""

    VERSION = "bnb-1"

    def _hf_config(self) -> Any:
        from transformers import BitsAndBytesConfig

        c = self.config
        if c.mode == "int8":
            return BitsAndBytesConfig(load_in_8bit=True)
        return BitsAndBytesConfig(
            load_in_4bit=True,
            bnb_4bit_quant_type=c.mode,
            bnb_4bit_use_double_quant=c.double_quant,
            bnb_4bit_compute_dtype=getattr(torch, c.compute_dtype),
        )

    def apply(self, model: Any, ctx: TransformContext) -> Any:
        from ..models.loading import load_causal_lm

        _bnb()
        del model  # unused: bitsandbytes quantizes while loading, so reload the checkpoint
        device_map = "cpu" if ctx.device == "cpu" else {"": ctx.device}
        qmodel, _ = load_causal_lm(
            ctx.checkpoint, quantization_config=self._hf_config(), device_map=device_map
        )
        disable_cpu_repack(qmodel)
        return qmodel

    def readback(self, model: Any) -> Iterator[Readback]:
        bnb = _bnb()
        done: set[str] = set()
        for mod_name, mod in model.named_modules():
            name = f"{mod_name}.weight"
            if isinstance(mod, bnb.nn.Linear4bit):
                w = mod.weight
                if getattr(mod, "support_avx512bf16_for_cpu", False) and w.device.type == "cpu":
                    raise RunError(
                        f"{mod_name} may have been repacked for AVX512-BF16 by a forward pass, "
                        "so its weights can no longer be read back; load it through the bnb "
                        "transform, which turns that repacking off"
                    )
                value = bnb.functional.dequantize_4bit(w.data, w.quant_state).float()
            elif isinstance(mod, bnb.nn.Linear8bitLt):
                # the row scales move from the parameter to the layer state on first forward
                scb = mod.weight.SCB if mod.weight.SCB is not None else mod.state.SCB
                cb = mod.state.CB if mod.state.CB is not None else mod.weight.data
                value = cb.float() * (scb.float().unsqueeze(1) / 127.0)
            else:
                continue
            done.add(name)
            yield Readback(name, value, True)
        for name, p in model.named_parameters():
            if name not in done and p.is_floating_point():
                yield Readback(name, p.detach().float(), False)

    def selects(self, name: str, ndim: int) -> bool:
        return weight_role(name, ndim) == "decoder"

    @torch.no_grad()
    def quantize_tensor(self, name: str, w: torch.Tensor) -> Quantized | None:
        if not self.selects(name, w.ndim):
            return None
        bnb = _bnb()
        F = bnb.functional
        x = w.detach().float().contiguous()
        if self.config.mode == "int8":  # as Int8Params does: via float16, row-wise absmax
            cb, scb, _ = F.int8_vectorwise_quant(x.to(torch.float16))
            values = cb.float() * (scb.float().unsqueeze(1) / 127.0)
            return Quantized(values.to(w.dtype), cb.to(torch.int16))
        packed, state = F.quantize_4bit(
            x, blocksize=BLOCKSIZE_4BIT, quant_type=self.config.mode,
            compress_statistics=self.config.double_quant,
        )
        values = F.dequantize_4bit(packed, state).reshape(w.shape)
        # two 4-bit codes per byte, high nibble first (bitsandbytes' packing order)
        flat = packed.reshape(-1)
        codes = torch.stack([flat >> 4, flat & 0xF], dim=1).reshape(-1)[: w.numel()]
        return Quantized(values.to(w.dtype), codes.reshape(w.shape).to(torch.int16))
