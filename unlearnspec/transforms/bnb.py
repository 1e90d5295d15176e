"""bitsandbytes quantization through transformers' `BitsAndBytesConfig`: LLM.int8 (`int8`),
NF4 and FP4 — what the paper's released code ran (`load_in_4bit=True` is FP4 there).

bitsandbytes quantizes while loading, so `apply` reloads the checkpoint instead of using the
fp32 model it is given. transformers converts exactly the `nn.Linear` modules (not their
subclasses, such as Falcon's FalconLinear) and GPT-2's `Conv1D` (whose [in, out] weight it
transposes first), except the LM head and tied weights; `quantize_tensor` selects the same
tensors and transposes Conv1D the same way. MoE expert tensors (Mixtral, Qwen2-MoE in
transformers 5) and nn.Linear subclasses stay float, so `apply` refuses such models instead of
measuring a mostly full-precision model under a quantizer's name.

`mode: fp4` with the defaults is `BitsAndBytesConfig(load_in_4bit=True)` exactly (FP4, float32
compute, no double quantization, uint8 storage), as the paper's code loads its models;
`settings()` is the full BitsAndBytesConfig, recorded in the report.

CPU pitfall (bitsandbytes 0.50): on CPUs with AVX512-BF16 the first 4-bit forward repacks the
packed weights in place for a faster kernel; afterwards `dequantize_4bit` returns garbage and
`save_pretrained` writes a corrupt checkpoint. `apply` turns that path off on every Linear4bit
(`support_avx512bf16_for_cpu = False`), which keeps readback exact.
"""
from __future__ import annotations

import warnings
from typing import Any, Iterator

from ..lazy import no_grad, torch

from ..errors import MissingExtraError, RunError
from .base import Quantized, Readback, Transform, TransformContext
from .roles import WeightInfo, parameter_roles

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

    VERSION = "bnb-2"  # bnb-1 streamed GPT-2's Conv1D weights untransposed

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

    def settings(self) -> dict[str, Any]:
        """Every setting of the BitsAndBytesConfig this transform loads with (JSON-ready)."""
        d = self._hf_config().to_dict()
        return {k: (str(v).replace("torch.", "") if isinstance(v, torch.dtype) else v)
                for k, v in sorted(d.items())}

    def coverage_hint(self) -> str:
        return ("bitsandbytes, through transformers, converts only exact nn.Linear and Conv1D "
                "modules: nn.Linear subclasses (FalconLinear) and MoE expert tensors stay "
                "float. Quantize this model with `kind: rtn` (which handles them) instead.")

    def preflight(self, model: Any) -> None:
        """Refuse, before loading anything quantized, a model whose decoder weights
        transformers' bitsandbytes integration would leave float."""
        from .coverage import LIMIT
        from .inventory import pattern

        infos = [i for i in parameter_roles(model).values() if i.decoder]
        left = [i for i in infos if not self.selects(i)]
        total = sum(i.numel for i in infos)
        missed = sum(i.numel for i in left)
        if total and missed / total > LIMIT:
            names = sorted({f"{pattern(i.name)} ({i.module_class})" for i in left})
            raise RunError(
                f"bnb {self.config.mode} would leave {missed:,} of the decoder's {total:,} "
                f"weights ({100 * missed / total:.0f}%) in float: {'; '.join(names[:8])}. "
                f"{self.coverage_hint()}")

    def apply(self, model: Any, ctx: TransformContext) -> Any:
        from ..models.loading import load_causal_lm

        _bnb()
        self.preflight(model)
        del model  # bitsandbytes quantizes while loading, so reload the checkpoint
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
            if _from_conv1d(mod):  # back to the checkpoint's [in, out]
                value = value.t().contiguous()
            done.add(name)
            yield Readback(name, value, True)
        for name, p in model.named_parameters():
            if name not in done and p.is_floating_point():
                yield Readback(name, p.detach().float(), False)

    def selects(self, info: WeightInfo) -> bool:
        """What transformers converts: exact nn.Linear or Conv1D, never the head or a tied
        tensor (roles give those role `head`), nor anything outside the decoder blocks."""
        return info.decoder and (info.exact_linear or info.layout == "conv1d")

    @no_grad
    def quantize_tensor(self, info: WeightInfo, w: torch.Tensor) -> Quantized | None:
        if not self.selects(info):
            return None
        if info.layout == "conv1d":  # transformers quantizes Conv1D's weight transposed
            q = self._quantize_rows(w.detach().t())
            return Quantized(q.values.t().contiguous(), q.codes.t().contiguous())
        return self._quantize_rows(w)

    def _quantize_rows(self, w: torch.Tensor) -> Quantized:
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


def _from_conv1d(mod: Any) -> bool:
    src = getattr(mod, "source_cls", None)
    return src is not None and src.__name__ == "Conv1D"
