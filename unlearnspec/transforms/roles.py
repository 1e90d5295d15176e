"""Which weights of a causal LM are "decoder weights", and what each one is: the one rule that
every transform, the coverage check, `unlearnspec diff` and the streamed weight metrics use.

A weight is classified by the module that holds it, not by its name alone: GPT-2's `Conv1D`
stores its weight as [in, out] (the transpose of `nn.Linear`'s [out, in]), and transformers 5
stores a Mixtral / Qwen2-MoE layer's experts as two 3-D parameters ([experts, out, in]) in a
module that is no `nn.Linear` at all. Both are decoder weights; a rule that looks for
`nn.Linear` modules misses them.

Roles: inside a decoder block (`layers.N.`, `h.N.`, `blocks.N.`; `decoder_block` is the
name rule): `attention`, `mlp`, `experts` (MoE expert matrices, 3-D in the model), `router`
(an MoE gate), `unknown` (a matrix in a module no transform knows how to quantize); outside:
`embed`, `head`, `extra`.
A head tied to the input embedding is one tensor with role `head`, counted once.

The streamed metrics read checkpoint tensors, whose names and shapes can differ from the
model's: transformers 5 saves Mixtral's fused experts back as one 2-D tensor per expert and
projection. `checkpoint_roles` maps each checkpoint tensor to the parameter it becomes (via
transformers' own `revert_weight_conversion`, on a model built on the meta device from the
checkpoint's config.json) and gives it that parameter's role.
"""
from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

DECODER_ROLES = ("attention", "mlp", "experts", "router", "unknown")
OTHER_ROLES = ("embed", "head", "extra")
ROLES = DECODER_ROLES + OTHER_ROLES

# Names of decoder blocks across Hugging Face architectures (Llama `layers.3.`, GPT-2 / Falcon
# `h.3.`, T5/BLOOM style `block.3.` / `blocks.3.`).
_DECODER_BLOCK = re.compile(r"^(?P<block>.*?(?:^|\.)(?:layers|h|blocks|block|layer)\.\d+)(?:\.|$)")
_ATTENTION = re.compile(r"(^|\.)(self_attn|self_attention|attn|attention)(\.|$)")
_LINEAR = "torch.nn.modules.linear.Linear"
_CONV1D = "transformers.pytorch_utils.Conv1D"


def decoder_block(name: str) -> str | None:
    """The decoder block a weight, tensor or module name lies in (`model.layers.3` for
    `model.layers.3.mlp.up_proj.weight`; the first block when names nest, as MoE experts'
    `layers.3.mlp.experts.7.`), or None outside every block."""
    m = _DECODER_BLOCK.match(name)
    return m["block"] if m else None


@dataclass(frozen=True)
class WeightInfo:
    """One weight tensor (a model parameter, or a checkpoint tensor when `source` is set).

    layout: how the kernels read it: `linear` [out, in], `conv1d` [in, out] (quantized along
    its transpose), `experts` [experts, out, in] (one scale per expert × output channel),
    `embedding` [vocab, dim], or `other` (no transform quantizes it).
    module: the class holding it (`torch.nn.modules.linear.Linear`, ...), for messages and
    for transforms that only convert some classes (bitsandbytes: exact nn.Linear and Conv1D).
    source: for a checkpoint tensor, the model parameter it is loaded into (differs from
    `name` when transformers fuses tensors at load, as for MoE experts); None for a parameter.
    """

    name: str
    role: str
    layout: str
    shape: tuple[int, ...]
    module: str
    source: str | None = None
    tied: bool = False

    @classmethod
    def linear(cls, name: str, shape: tuple[int, ...], role: str = "mlp") -> WeightInfo:
        """An nn.Linear weight [out, in] of a decoder block (for quantizing a bare tensor)."""
        return cls(name, role, "linear", tuple(shape), _LINEAR)

    @property
    def decoder(self) -> bool:
        return self.role in DECODER_ROLES

    @property
    def numel(self) -> int:
        n = 1
        for s in self.shape:
            n *= s
        return n

    @property
    def module_class(self) -> str:
        return self.module.rsplit(".", 1)[-1]

    @property
    def exact_linear(self) -> bool:
        return self.module == _LINEAR

    @property
    def fused(self) -> bool:
        """A checkpoint tensor that is only part of the model parameter it is loaded into."""
        return self.source is not None and self.source != self.name


def _qualname(mod: Any) -> str:
    cls = type(mod)
    return f"{cls.__module__}.{cls.__qualname__}"


def _classify(mod_name: str, mod: Any, pname: str, p: Any, head: Any,
              children: set[str]) -> WeightInfo | None:
    """The rule. `head` is the output-embedding module; `children` the names of `mod`'s parent's
    children (an MoE gate sits beside an `experts` module)."""
    import torch

    full = f"{mod_name}.{pname}" if mod_name else pname
    shape = tuple(p.shape)
    module = _qualname(mod)
    if not p.is_floating_point() or p.ndim < 2:
        return None
    if head is not None and p is getattr(head, "weight", None):
        return WeightInfo(full, "head", "linear", shape, module)
    if isinstance(mod, torch.nn.Embedding):
        return WeightInfo(full, "embed", "embedding", shape, module)
    in_decoder = decoder_block(full) is not None
    leaf = mod_name.rsplit(".", 1)[-1]
    is_conv1d = module == _CONV1D or type(mod).__name__ == "Conv1D"
    if pname == "weight" and (isinstance(mod, torch.nn.Linear) or is_conv1d) and p.ndim == 2:
        layout = "conv1d" if is_conv1d else "linear"
        if not in_decoder:
            return WeightInfo(full, "extra", layout, shape, module)
        if leaf in ("gate", "router") and "experts" in children:
            role = "router"
        elif ".experts." in f".{mod_name}.":
            role = "experts"
        elif _ATTENTION.search(mod_name):
            role = "attention"
        else:
            role = "mlp"
        return WeightInfo(full, role, layout, shape, module)
    if not in_decoder:
        return WeightInfo(full, "extra", "other", shape, module)
    if p.ndim == 3 and (leaf == "experts" or type(mod).__name__.endswith("Experts")):
        return WeightInfo(full, "experts", "experts", shape, module)
    if p.ndim == 2 and pname == "weight" and (
            "Router" in type(mod).__name__ or (leaf in ("gate", "router") and "experts" in children)):
        return WeightInfo(full, "router", "linear", shape, module)
    return WeightInfo(full, "unknown", "other", shape, module)


def parameter_roles(model: Any) -> dict[str, WeightInfo]:
    """Every weight matrix of a model by parameter name (tied tensors once, under the name
    `named_parameters` gives them). Norms, biases and other 1-D tensors are not listed."""
    head = model.get_output_embeddings() if hasattr(model, "get_output_embeddings") else None
    mods = dict(model.named_modules())
    out: dict[str, WeightInfo] = {}
    seen: set[int] = set()
    for mod_name, mod in mods.items():
        parent = mod_name.rsplit(".", 1)[0] if "." in mod_name else ""
        parent_mod = mods.get(parent)
        children = {n for n, _ in parent_mod.named_children()} if parent_mod is not None else set()
        for pname, p in mod.named_parameters(recurse=False):
            if id(p) in seen:
                continue
            seen.add(id(p))
            info = _classify(mod_name, mod, pname, p, head, children)
            if info is not None:
                out[info.name] = info
    canonical = {id(p): n for n, p in model.named_parameters()}
    aliases: dict[int, int] = {}
    for _, p in model.named_parameters(remove_duplicate=False):
        aliases[id(p)] = aliases.get(id(p), 0) + 1
    fixed: dict[str, WeightInfo] = {}
    for name, info in out.items():
        p = _param(model, name)
        cname = canonical.get(id(p), name)
        fixed[cname] = dataclasses.replace(info, name=cname, tied=aliases.get(id(p), 1) > 1)
    return fixed


def _param(model: Any, name: str) -> Any:
    mod_name, _, pname = name.rpartition(".")
    mod = model.get_submodule(mod_name) if mod_name else model
    return getattr(mod, pname)


def iter_parameters(model: Any) -> Iterator[tuple[WeightInfo, Any]]:
    """(info, parameter) for every weight `parameter_roles` lists."""
    for name, info in parameter_roles(model).items():
        yield info, _param(model, name)


def meta_model(checkpoint: Path) -> Any:
    """The checkpoint's architecture built on the meta device from its config.json (no
    weights read, no memory used), for classifying tensors without loading them."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    from ..errors import RunError

    try:
        config = AutoConfig.from_pretrained(str(checkpoint))
    except (OSError, ValueError) as exc:
        raise RunError(f"cannot tell which tensors of {checkpoint} are decoder weights: its "
                       f"config.json could not be read ({exc})") from exc
    return meta_model_from_config(config, what=f"which tensors of {checkpoint} are decoder "
                                                f"weights")


def meta_model_from_config(config: Any, *, what: str) -> Any:
    """The architecture of `config` built on the meta device; `what` says, in the error,
    what could not be told without it."""
    import torch
    from transformers import AutoModelForCausalLM

    from ..errors import RunError

    with torch.device("meta"):
        try:
            return AutoModelForCausalLM.from_config(config)
        except (ValueError, KeyError, TypeError) as exc:
            raise RunError(f"cannot tell {what}: transformers cannot build the "
                           f"architecture ({exc})") from exc


def checkpoint_roles(checkpoint: Path, model: Any | None = None) -> dict[str, WeightInfo]:
    """Every checkpoint tensor that is (part of) a weight matrix, by checkpoint tensor name,
    with the role of the model parameter it is loaded into. A checkpoint tensor that is a
    slice of a fused parameter keeps the parameter's role with layout `linear` when the
    slice is rows of that parameter (the inputs axis unchanged), else `other`."""
    from transformers.core_model_loading import revert_weight_conversion

    model = meta_model(Path(checkpoint)) if model is None else model
    out: dict[str, WeightInfo] = {}
    for name, info in parameter_roles(model).items():
        p = _param(model, name)
        try:
            reverted = revert_weight_conversion(model, {name: p})
        except Exception:  # noqa: BLE001 - a converter that needs more than one tensor
            reverted = {name: p}
        for ck_name, t in reverted.items():
            shape = tuple(t.shape)
            if ck_name == name and shape == info.shape:
                out[ck_name] = WeightInfo(ck_name, info.role, info.layout, shape, info.module,
                                          source=name, tied=info.tied)
                continue
            layout = info.layout
            if info.layout == "experts":
                layout = "linear" if len(shape) == 2 and shape[-1] == info.shape[-1] else "other"
            out[ck_name] = WeightInfo(ck_name, info.role, layout, shape, info.module,
                                      source=name, tied=info.tied)
    return out
