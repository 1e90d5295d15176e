"""GPTQ and AWQ through GPTQModel, calibrated on texts the spec names (`ctx.calibration`).

GPTQModel 7.7 quantizes on the CPU (slowly; minutes for a 1B model are hours) and runs the
result with its torch kernels. Both methods need the whole model and calibration activations,
so these transforms do not stream (`quantize_tensor` is not implemented): weight metrics
quantize whole models and compare their readbacks.

Install (its dependency list pulls a CUDA torch, so without dependencies, then its own by hand;
see docs/transforms.md): `pip install --no-deps gptqmodel==7.7.0` and its requirements.
"""
from __future__ import annotations

import os
import tempfile
from typing import Any, Iterator

from ..lazy import no_grad, torch

from ..errors import MissingExtraError, RunError
from .base import Readback, Transform, TransformContext
from .roles import parameter_roles


def _gptqmodel() -> Any:
    # GPTQModel sizes a thread pool from the CPU count at import; on small shared machines the
    # default oversubscribes the cores. A user's own setting wins.
    os.environ.setdefault("GPTQMODEL_CPU_WORKERS", str(min(2, os.cpu_count() or 1)))
    # Its C++ weight packer is compiled on first use (45 s on two cores, once per machine, and
    # only where a compiler is installed); the Python packer it falls back to writes the same
    # bytes (measured: identical GPTQ and AWQ checkpoints, sha256 over every tensor)
    os.environ.setdefault("GPTQMODEL_DISABLE_PACK_EXT", "1")
    try:
        import gptqmodel
    except ImportError as exc:
        raise MissingExtraError("the gptq and awq transforms", "gptq", "gptqmodel") from exc
    return gptqmodel


def calibration_examples(texts: list[str] | None, tokenizer: Any, *, n_samples: int,
                         seq_len: int, kind: str, sampling: str = "windows",
                         seed: int = 0) -> list[dict[str, list[int]]]:
    """GPTQModel's calibration records (see `data.calibration.calibration_sequences`)."""
    from ..data.calibration import calibration_sequences

    seqs = calibration_sequences(texts, tokenizer, n_samples=n_samples, seq_len=seq_len,
                                 sampling=sampling, seed=seed, kind=kind)  # type: ignore[arg-type]
    return [{"input_ids": ids, "attention_mask": [1] * len(ids)} for ids in seqs]


# model types on which GPTQModel 7.7's AWQ ends the process instead of raising (measured on
# the test zoo's tiny checkpoints, tests/zoo): refused before it starts
AWQ_ENDS_PROCESS = {
    "phi3": "KeyError 'q_zeros' while packing the fused qkv_proj / gate_up_proj",
    "falcon": "measured: the process exits while quantizing the first layer",
    "gpt2": "a tensor size mismatch (64 vs 192) in its scale search over Conv1D's fused "
            "c_attn, raised in a worker thread",
}

# model types on which GPTQModel 7.7's offloading of finished modules to disk loses a tensor
# (measured on tests/zoo): they are quantized with everything kept in memory
NO_DISK_OFFLOAD = {
    "gpt_neox": "FileNotFoundError: offloaded tensor 'lm_head.weight' not found when it "
                "reloads the head",
}


class GptqTransform(Transform):
    """`kind: gptq` (bits 2, 3, 4, 8; `group_size` must divide every linear's inputs)."""

    VERSION = "gptq-2"  # 2: Conv1D / split fused readback in the checkpoint layout; MoE refused
    METHOD = "gptq"

    def _quantize_config(self, gm: Any, model: Any) -> Any:
        c = self.config
        kw: dict[str, Any] = {"bits": c.bits, "group_size": c.group_size}
        if getattr(model.config, "model_type", None) in NO_DISK_OFFLOAD:
            kw["offload_to_disk"] = False  # memory only: the numbers are the same
        if self.METHOD != "gptq":
            kw["method"] = self.METHOD
        return gm.QuantizeConfig(**kw)

    def preflight(self, model: Any) -> None:
        """Refuse shapes GPTQModel cannot handle, before it runs: it reports a failure inside
        its worker threads by ending the whole process (os._exit), test runner included."""
        model_type = getattr(getattr(model, "config", None), "model_type", None)
        if self.METHOD == "awq" and model_type in AWQ_ENDS_PROCESS:
            raise RunError(
                f"awq cannot quantize a {model_type} model: GPTQModel's AWQ fails inside its "
                f"worker threads on this architecture ({AWQ_ENDS_PROCESS[model_type]}) and "
                f"ends the whole process; use gptq or rtn for this model")
        roles = parameter_roles(model)
        experts = [i.name for i in roles.values() if i.decoder and i.layout == "experts"]
        if experts:
            raise RunError(
                f"{self.METHOD} cannot quantize {experts[0]} (and {len(experts) - 1} more): "
                f"GPTQModel quantizes nn.Linear modules and transformers stores this model's "
                f"MoE experts as fused 3-D parameters, so they would stay float and weight "
                f"metrics would compare an unquantized model; use rtn for this model")
        gs = self.config.group_size
        decoder = {i.name.removesuffix(".weight") for i in roles.values() if i.decoder}
        for name, mod in model.named_modules():
            if not isinstance(mod, torch.nn.Linear) or name not in decoder:
                continue
            if gs > 0 and mod.in_features % gs:
                raise RunError(
                    f"{self.METHOD} cannot quantize {name}: group_size {gs} does not divide its "
                    f"{mod.in_features} inputs; set `group_size` to a divisor (or -1 for none)"
                )
            if self.METHOD == "awq" and mod.out_features % 64:
                raise RunError(
                    f"awq cannot quantize {name}: GPTQModel's AWQ needs a multiple of 64 "
                    f"outputs and it has {mod.out_features}; use gptq or rtn for this model"
                )

    def apply(self, model: Any, ctx: TransformContext) -> Any:
        gm = _gptqmodel()
        self.preflight(model)
        qconfig = self._quantize_config(gm, model)
        del model  # GPTQModel loads and quantizes the checkpoint itself
        examples = calibration_examples(
            ctx.calibration, ctx.tokenizer, n_samples=self.config.n_samples,
            seq_len=self.config.seq_len, kind=self.METHOD, sampling=self.config.sampling,
            seed=self.config.seed,
        )
        # GPTQModel offloads finished layers to disk while quantizing, so the model it holds
        # afterwards is not runnable: save the artifact and load it back, as a user would.
        with tempfile.TemporaryDirectory(prefix=f"unlearnspec-{self.METHOD}-") as tmp:
            try:
                qm = gm.GPTQModel.load(str(ctx.checkpoint), qconfig, device=ctx.device)
                qm.quantize(examples, batch_size=1)
                qm.save(tmp)
                del qm
                loaded = gm.GPTQModel.load(tmp, device=ctx.device)
            except (ValueError, RuntimeError, AssertionError) as exc:
                raise RunError(
                    f"GPTQModel could not {self.METHOD}-quantize {ctx.checkpoint} with bits="
                    f"{self.config.bits}, group_size={self.config.group_size}: {exc}"
                ) from exc
            finally:
                release_worker_threads(gm)
            model = loaded.model.eval()
            _no_compile(model)
            # materialise everything before the directory goes away
            for buf in model.buffers():
                buf.data = buf.data.clone()
        return model

    def readback(self, model: Any) -> Iterator[Readback]:
        yield from gptqmodel_readback(model)


def release_worker_threads(gm: Any) -> None:
    """End GPTQModel's device thread pool (it builds a new one when next used). Its workers run
    torch ops in threads of their own, each with an OpenMP team that outlives the work; with
    more OpenMP threads than cores, GNU OpenMP stops spinning between parallel regions, and
    every later op of the whole process waits on a futex wake-up: measured on two cores, a
    forward + backward step of the tiny benchmark model went from 16 ms to 29 ms after one
    GPTQ run, and back to 15 ms once the pool's threads ended."""
    pool = getattr(gm, "_DEVICE_THREAD_POOL", None)
    if pool is not None:
        pool.shutdown(wait=True)
        gm._DEVICE_THREAD_POOL = None


class AwqTransform(GptqTransform):
    """`kind: awq` (4 bits). AWQ also rescales norm weights; readback returns them too."""

    VERSION = "awq-2"
    METHOD = "awq"


def _no_compile(model: Any) -> None:
    """Undo GPTQModel's per-module torch.compile of `dequantize_weight`: on a CPU, inductor
    spends minutes compiling C++ for a tiny model, and the eager kernel computes the same."""
    for mod in model.modules():
        mod.__dict__.pop("dequantize_weight", None)


@no_grad
def dequantize_module(mod: Any) -> torch.Tensor | None:
    """The [out, in] float32 weight of a GPTQModel quantized linear, None for other modules."""
    if not hasattr(mod, "qweight") or not hasattr(mod, "scales"):
        return None
    from gptqmodel.nn_modules.qlinear import AWQuantLinear

    if isinstance(mod, AWQuantLinear):
        from gptqmodel.quantization.awq.utils.packing_utils import dequantize_gemm

        w = dequantize_gemm(mod.qweight, mod.qzeros, mod.scales, mod.bits, mod.group_size)
    else:
        w = mod.dequantize_weight()
    return w.T.float().contiguous()  # both kernels hold the weight as [in, out]


# fused checkpoint tensors GPTQModel's model definitions split into separately quantized
# linears (Phi-3's gate_up_proj = [gate; up] along the outputs, as Phi3MLP chunks it)
SPLIT_FUSED = {"gate_up_proj": ("gate_proj", "up_proj")}


def _float_layout(model: Any) -> tuple[set[str], dict[str, tuple[int, ...]]]:
    """(names of the modules that are Conv1D in the model's own transformers architecture,
    shapes of its parameters): GPTQModel replaces modules, so the quantized model itself no
    longer shows the checkpoint's layout. Built on the meta device from the config."""
    from .roles import meta_model_from_config

    config = getattr(model, "config", None)
    if config is None:
        return set(), {}
    ref = meta_model_from_config(config, what=f"the checkpoint layout of a GPTQ/AWQ "
                                              f"{config.model_type} model")
    conv1d = {n for n, m in ref.named_modules() if type(m).__name__ == "Conv1D"}
    return conv1d, {n: tuple(p.shape) for n, p in ref.named_parameters()}


def gptqmodel_readback(model: Any) -> Iterator[Readback]:
    """Readback of a model holding GPTQModel quantized linears (quantized here, or a GPTQ/AWQ
    checkpoint loaded through transformers), in the float architecture's names and layout:
    Conv1D weights as [in, out], split fused linears joined back."""
    _gptqmodel()
    conv1d, shapes = _float_layout(model)
    done: set[str] = set()
    quantized: dict[str, torch.Tensor] = {}
    for mod_name, mod in model.named_modules():
        w = dequantize_module(mod)
        if w is not None:
            done.add(f"{mod_name}.weight")
            quantized[f"{mod_name}.weight"] = w.T.contiguous() if mod_name in conv1d else w
    for fused, parts in SPLIT_FUSED.items():
        for name in [n for n in shapes if n.endswith(f".{fused}.weight") and n not in quantized]:
            prefix = name[: -len(f"{fused}.weight")]
            pieces = [quantized.get(f"{prefix}{p}.weight") for p in parts]
            if all(t is not None for t in pieces):
                for p in parts:
                    del quantized[f"{prefix}{p}.weight"]
                quantized[name] = torch.cat(pieces, dim=0)  # type: ignore[arg-type]
    for name, w in quantized.items():
        yield Readback(name, w, True)
    for name, p in model.named_parameters():
        if name not in done and p.is_floating_point():
            yield Readback(name, p.detach().float(), False)
