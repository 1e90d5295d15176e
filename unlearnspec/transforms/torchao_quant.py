"""torchao weight-only quantization (`kind: torchao`), applied with torchao's own `quantize_`
and configs, the way transformers' TorchAoConfig and the serving engines that load its
checkpoints (vLLM, SGLang) apply it: the decoder's nn.Linear weights become torchao tensor
subclasses and every matmul runs through torchao's kernels; the LM head and the embeddings
stay in float, as transformers' quantizer keeps them.

- `mode: int8`: `Int8WeightOnlyConfig()` (one symmetric scale per output row, scale =
  max|w| / 127.5, int8 codes). Runs on a CPU.
- `mode: int4`: `Int4WeightOnlyConfig(group_size=..., int4_packing_format="tile_packed_to_4d")`
  (tinygemm's asymmetric per-group grid with a float zero point), on bfloat16 weights as
  torchao requires. torchao ships no CPU kernel for it (its other int4 formats need the mslk
  CUDA library or an XPU/NPU), so on a machine without CUDA it is a RunError saying so and
  what to use instead; it is not exercised by this project's CPU tests.

Readback: each quantized weight's `dequantize()`, codes its `qdata` (int8 mode).
"""
from __future__ import annotations

from functools import cached_property
from typing import Any, Iterator

import torch

from ..errors import RunError
from .base import Quantized, Readback, Transform, TransformContext
from .roles import DECODER_ROLES, WeightInfo, iter_parameters
from .rtn import from_rows, to_rows

INT4_INSTEAD = ("on a CPU use mode: int8, or kind: rtn, bits: 4, group_size: 128, "
                "zero_point: true for the nearest pure-torch 4-bit grid (torchao's int4 grid "
                "is asymmetric per 128 inputs with a float zero point), or run on a CUDA GPU")


def _torchao() -> Any:
    try:
        import torchao.quantization as q
    except ImportError as exc:
        raise RunError("kind: torchao needs torchao: pip install 'unlearnspec[torchao]'") from exc
    return q


class TorchaoTransform(Transform):
    """`kind: torchao`. Replaces the decoder's nn.Linear weights by torchao tensors."""

    @cached_property
    def VERSION(self) -> str:  # type: ignore[override]
        from importlib.metadata import version

        return f"torchao-1+{version('torchao')}"

    def selects(self, info: WeightInfo) -> bool:
        return info.role in DECODER_ROLES and info.exact_linear and info.layout == "linear"

    def _config(self, device: str) -> Any:
        q = _torchao()
        c = self.config
        if c.mode == "int8":
            return q.Int8WeightOnlyConfig(set_inductor_config=False)
        if not str(device).startswith("cuda") or not torch.cuda.is_available():
            raise RunError(
                f"torchao int4 weight-only cannot run on {device}: torchao has no CPU kernel "
                f"for it (tile_packed_to_4d needs CUDA's tinygemm on sm80+, the plain and "
                f"preshuffled formats the mslk CUDA library); {INT4_INSTEAD}")
        return q.Int4WeightOnlyConfig(group_size=c.group_size, set_inductor_config=False,
                                      int4_packing_format="tile_packed_to_4d")

    def _check_shape(self, name: str, in_features: int) -> None:
        g = self.config.group_size if self.config.mode == "int4" else None
        if g and in_features % g:
            raise RunError(f"torchao int4 cannot quantize {name}: its {in_features} inputs "
                           f"are not a multiple of group_size {g} (torchao would leave it in "
                           f"float); choose a group_size that divides {in_features}")

    @torch.no_grad()
    def apply(self, model: Any, ctx: TransformContext) -> Any:
        q = _torchao()
        cfg = self._config(ctx.device)
        chosen = {}
        for info, p in iter_parameters(model):
            if self.selects(info):
                self._check_shape(info.name, info.shape[1])
                chosen[info.name.rsplit(".", 1)[0]] = info
        if self.config.mode == "int4":
            model = model.to(torch.bfloat16)  # torchao's int4 kernels take bf16 only
        q.quantize_(model, cfg, filter_fn=lambda mod, fqn: fqn in chosen)
        return model

    def readback(self, model: Any) -> Iterator[Readback]:
        for name, p in model.named_parameters():
            if hasattr(p, "qdata") and hasattr(p, "dequantize"):  # a torchao tensor
                yield Readback(name, p.dequantize().float(), True)
            elif p.is_floating_point():
                yield Readback(name, p.detach().float(), False)

    @torch.no_grad()
    def quantize_tensor(self, info: WeightInfo, w: torch.Tensor) -> Quantized | None:
        if not self.selects(info):
            return None
        q = _torchao()
        cfg = self._config(str(w.device))
        self._check_shape(info.name, info.shape[-1])
        rows = to_rows(w, info.layout)
        lin = torch.nn.Linear(rows.shape[1], rows.shape[0], bias=False, device=w.device,
                              dtype=torch.bfloat16 if self.config.mode == "int4" else w.dtype)
        lin.weight.copy_(rows)
        q.quantize_(lin, cfg)
        t = lin.weight
        values = t.dequantize().to(w.dtype)
        codes = t.qdata.to(torch.int16) if self.config.mode == "int8" else values
        shape = tuple(w.shape)
        return Quantized(values=from_rows(values, info.layout, shape).contiguous(),
                         codes=from_rows(codes, info.layout, shape).contiguous())
