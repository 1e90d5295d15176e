"""The roles of a checkpoint's weights for `unlearnspec diff` and the streamed weight metrics,
from its config.json alone where the architecture is a plain decoder, else from a model built
on the meta device (`roles.meta_model`).

Building the meta model imports transformers' modeling code: about 4 s on two cores, most of
a 5 s diff of two 1 GB checkpoints. For the architectures in `PLAIN` the modeling code holds
every weight matrix in an `nn.Embedding` or an `nn.Linear` with a fixed name and a shape that
config.json determines, and loads checkpoint tensors unconverted, so the roles rule's answer
can be written down from the config: `plain_roles` does that. It is the rule's answer, not a
second rule: tests build each architecture on the meta device (GQA, a `head_dim` override,
tied and untied heads) and check that both give the same WeightInfos in the same order. A
config that lacks a key the shapes need, or any other architecture, goes the meta way.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from .roles import WeightInfo, checkpoint_roles, meta_model, parameter_roles

_LINEAR = "torch.nn.modules.linear.Linear"
_EMBEDDING = "torch.nn.modules.sparse.Embedding"
_ATTENTION = ("q_proj", "k_proj", "v_proj", "o_proj")
_MLP = ("gate_proj", "up_proj", "down_proj")
# model_type -> whether a missing / null head_dim means hidden_size // num_attention_heads
# (Qwen2's attention computes it so; the others' config classes fill it in when saved, and a
# config.json without it goes the meta way rather than guess the class default)
PLAIN = {"llama": False, "mistral": False, "qwen2": True, "qwen3": False}
_SIZES = ("vocab_size", "hidden_size", "intermediate_size", "num_hidden_layers",
          "num_attention_heads", "num_key_value_heads")


def _size(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool) and v > 0


def _config(checkpoint: Path) -> dict[str, Any] | None:
    try:
        cfg = json.loads((Path(checkpoint) / "config.json").read_text())
    except (OSError, ValueError):
        return None  # the meta way reads it again and says what is wrong with it
    return cfg if isinstance(cfg, dict) else None


def plain_roles(checkpoint: Path) -> dict[str, WeightInfo] | None:
    """`parameter_roles` of the checkpoint's architecture, from config.json, for a plain
    decoder (`PLAIN`) whose config states every size; None otherwise."""
    cfg = _config(checkpoint)
    if cfg is None or cfg.get("model_type") not in PLAIN:
        return None
    if not all(_size(cfg.get(k)) for k in _SIZES) or not isinstance(
            cfg.get("tie_word_embeddings"), bool):
        return None
    hidden, heads, kv = cfg["hidden_size"], cfg["num_attention_heads"], cfg["num_key_value_heads"]
    head_dim = cfg.get("head_dim")
    if head_dim is None and PLAIN[cfg["model_type"]]:
        head_dim = hidden // heads
    if not _size(head_dim):
        return None
    inter, vocab, tied = cfg["intermediate_size"], cfg["vocab_size"], cfg["tie_word_embeddings"]
    shapes = {"q_proj": (heads * head_dim, hidden), "k_proj": (kv * head_dim, hidden),
              "v_proj": (kv * head_dim, hidden), "o_proj": (hidden, heads * head_dim),
              "gate_proj": (inter, hidden), "up_proj": (inter, hidden),
              "down_proj": (hidden, inter)}
    embed = "model.embed_tokens.weight"
    out = {embed: (WeightInfo(embed, "head", "linear", (vocab, hidden), _EMBEDDING, tied=True)
                   if tied else WeightInfo(embed, "embed", "embedding", (vocab, hidden),
                                           _EMBEDDING))}
    for i in range(cfg["num_hidden_layers"]):
        for block, names, role in (("self_attn", _ATTENTION, "attention"), ("mlp", _MLP, "mlp")):
            for p in names:
                name = f"model.layers.{i}.{block}.{p}.weight"
                out[name] = WeightInfo(name, role, "linear", shapes[p], _LINEAR)
    if not tied:
        out["lm_head.weight"] = WeightInfo("lm_head.weight", "head", "linear", (vocab, hidden),
                                           _LINEAR)
    return out


def decoder_roles(checkpoint: Path) -> tuple[dict[str, WeightInfo], list[WeightInfo]]:
    """(`checkpoint_roles`, the model's `parameter_roles`) of a checkpoint: from config.json
    for a plain decoder (its tensors load unconverted, so each checkpoint tensor is its
    parameter), else from the architecture built on the meta device."""
    params = plain_roles(checkpoint)
    if params is not None:
        return ({n: WeightInfo(n, i.role, i.layout, i.shape, i.module, source=n, tied=i.tied)
                 for n, i in params.items()}, list(params.values()))
    model = meta_model(Path(checkpoint))
    return checkpoint_roles(Path(checkpoint), model), list(parameter_roles(model).values())
