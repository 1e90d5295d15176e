"""The model zoo's architectures: tiny transformers configs (2 layers, 64 hidden) of the
families users bring, each as a plain value so the cache key can hash it.

Dimensions are chosen so every family builds the module layout its real checkpoints have
(GPT-2's `Conv1D`, NeoX/Falcon/Phi-3's fused projections, OPT's `model.decoder.layers`,
Mixtral's and Qwen2-MoE's 3-D expert tensors, tied heads where the family ties them), not to
be good language models. Mistral keeps grouped-query attention (2 KV heads), which is what
makes AWQ refuse it (k/v projections of 32 outputs); the others use 4 KV heads.

Torch-free: `build_config` imports transformers only when called.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping

HIDDEN, LAYERS, HEADS, FFN, POSITIONS = 64, 2, 4, 128, 256

_DECODER = dict(hidden_size=HIDDEN, num_hidden_layers=LAYERS, num_attention_heads=HEADS,
                num_key_value_heads=HEADS, intermediate_size=FFN,
                max_position_embeddings=POSITIONS)


@dataclass(frozen=True)
class Arch:
    """One family: its transformers config class, the config options on top of the shared
    special-token ids, and facts the conformance tests check against (`tied`: the head shares
    the embedding; `moe`: experts are 3-D parameters)."""

    name: str
    config_class: str
    options: Mapping[str, Any]
    tied: bool = False
    moe: bool = False
    linear: str = "Linear"  # the module class holding decoder weights
    notes: tuple[str, ...] = field(default=())

    def key(self) -> dict[str, Any]:
        return {"name": self.name, "config_class": self.config_class,
                "options": dict(self.options)}


ARCHS: tuple[Arch, ...] = (
    Arch("llama", "LlamaConfig", {**_DECODER, "tie_word_embeddings": False}),
    Arch("mistral", "MistralConfig", {**_DECODER, "num_key_value_heads": 2,
                                      "sliding_window": 64, "tie_word_embeddings": False}),
    Arch("qwen2", "Qwen2Config", {**_DECODER, "tie_word_embeddings": False}),
    Arch("qwen3", "Qwen3Config", {**_DECODER, "head_dim": HIDDEN // HEADS,
                                  "tie_word_embeddings": True}, tied=True),
    Arch("gemma2", "Gemma2Config", {**_DECODER, "head_dim": HIDDEN // HEADS,
                                    "sliding_window": 64, "query_pre_attn_scalar": 16,
                                    "tie_word_embeddings": True}, tied=True),
    Arch("phi3", "Phi3Config", {**_DECODER, "tie_word_embeddings": False}),
    Arch("gpt2", "GPT2Config", {"n_embd": HIDDEN, "n_layer": LAYERS, "n_head": HEADS,
                                "n_inner": FFN, "n_positions": POSITIONS,
                                "tie_word_embeddings": True}, tied=True, linear="Conv1D"),
    Arch("gpt_neox", "GPTNeoXConfig", {**_DECODER, "tie_word_embeddings": False}),
    Arch("opt", "OPTConfig", {"hidden_size": HIDDEN, "num_hidden_layers": LAYERS,
                              "num_attention_heads": HEADS, "ffn_dim": FFN,
                              "word_embed_proj_dim": HIDDEN,
                              "max_position_embeddings": POSITIONS,
                              "tie_word_embeddings": True}, tied=True),
    Arch("falcon", "FalconConfig", {"hidden_size": HIDDEN, "num_hidden_layers": LAYERS,
                                    "num_attention_heads": HEADS, "new_decoder_architecture":
                                    False, "multi_query": False, "parallel_attn": True,
                                    "bias": False, "alibi": False,
                                    "max_position_embeddings": POSITIONS,
                                    "tie_word_embeddings": True}, tied=True),
    Arch("mixtral", "MixtralConfig", {**_DECODER, "num_local_experts": 4,
                                      "num_experts_per_tok": 2, "sliding_window": None,
                                      "tie_word_embeddings": False}, moe=True),
    Arch("qwen2_moe", "Qwen2MoeConfig", {**_DECODER, "num_experts": 4,
                                         "num_experts_per_tok": 2,
                                         "moe_intermediate_size": 64,
                                         "shared_expert_intermediate_size": 128,
                                         "decoder_sparse_step": 1,
                                         "tie_word_embeddings": False}, moe=True),
)

BY_NAME = {a.name: a for a in ARCHS}


def build_config(arch: Arch, *, vocab_size: int, bos: int | None, eos: int,
                 pad: int | None) -> Any:
    """The transformers config of `arch` for a tokenizer with these special ids."""
    import transformers

    cls = getattr(transformers, arch.config_class)
    return cls(vocab_size=vocab_size, bos_token_id=bos, eos_token_id=eos, pad_token_id=pad,
               **dict(arch.options))
