"""Writes a tiny Llama checkpoint as a llama.cpp `.gguf` file in the real layout, for the GGUF
loader's tests: llama.cpp's tensor names (`blk.N.attn_q.weight`, ...), attn_q/attn_k rows
permuted into ggml's rotary order as llama.cpp's converter stores them, norms in F32, and the
metadata keys llama.cpp reads (`llama.embedding_length`, ...).

`types` picks each tensor's ggml type by llama.cpp name fragment. The gguf package can encode
Q4_0/Q4_1/Q5_0/Q5_1/Q8_0/MXFP4 but only decode K-quants, so a K-quant tensor is written as
random block bytes with finite fp16 scales: its values are whatever the package decodes, which
is what the reader must reproduce. `expected_state` returns the weights (Hugging Face names and
layout) a faithful reader yields: each tensor decoded from the bytes written, un-permuted.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

HF_TO_GGUF = {
    "model.embed_tokens.weight": "token_embd.weight",
    "model.norm.weight": "output_norm.weight",
    "lm_head.weight": "output.weight",
}
LAYER = {
    "self_attn.q_proj": "attn_q", "self_attn.k_proj": "attn_k", "self_attn.v_proj": "attn_v",
    "self_attn.o_proj": "attn_output", "mlp.gate_proj": "ffn_gate", "mlp.up_proj": "ffn_up",
    "mlp.down_proj": "ffn_down", "input_layernorm": "attn_norm",
    "post_attention_layernorm": "ffn_norm",
}


def gguf_name(hf: str) -> str:
    if hf in HF_TO_GGUF:
        return HF_TO_GGUF[hf]
    _, _, layer, rest = hf.split(".", 3)
    module, _, kind = rest.rpartition(".")
    return f"blk.{layer}.{LAYER[module]}.{kind}"


def rotary_permute(w: np.ndarray, n_head: int) -> np.ndarray:
    """HF's half-split rotary rows -> ggml's interleaved pairs (what convert_hf_to_gguf does)."""
    return (w.reshape(n_head, 2, w.shape[0] // n_head // 2, *w.shape[1:])
            .swapaxes(1, 2).reshape(w.shape))


def rotary_unpermute(w: np.ndarray, n_head: int) -> np.ndarray:
    return (w.reshape(n_head, w.shape[0] // n_head // 2, 2, *w.shape[1:])
            .swapaxes(1, 2).reshape(w.shape))


def _kquant_bytes(rows: int, cols: int, qtype, rng: np.random.Generator) -> np.ndarray:
    from gguf import GGML_QUANT_SIZES, GGMLQuantizationType

    bs, size = GGML_QUANT_SIZES[qtype]
    raw = rng.integers(0, 256, size=(rows * cols // bs, size), dtype=np.uint8)
    d = np.frombuffer(np.float16(0.002).tobytes(), dtype=np.uint8)
    if qtype == GGMLQuantizationType.Q6_K:
        raw[:, -2:] = d  # ql, qh, int8 scales, then d
    elif qtype in (GGMLQuantizationType.Q4_K, GGMLQuantizationType.Q5_K,
                   GGMLQuantizationType.Q2_K):
        at = 0 if qtype != GGMLQuantizationType.Q2_K else size - 4
        raw[:, at:at + 2] = d
        raw[:, at + 2:at + 4] = np.frombuffer(np.float16(0.001).tobytes(), dtype=np.uint8)
    else:
        raise ValueError(f"no K-quant byte recipe for {qtype.name}")
    return raw.reshape(rows, cols // bs * size)


def make_bpe_checkpoint(out: Path, *, hidden: int = 64, seed: int = 0) -> Path:
    """A tiny random Llama with a byte-level BPE tokenizer (GPT-2 style, 320 tokens, `<s>` and
    `</s>` special): a tokenizer a GGUF file's `gpt2` metadata can carry."""
    import torch
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=320, special_tokens=["<s>", "</s>"],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator(BPE_TEXTS * 20, trainer)
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<s>", eos_token="</s>")
    torch.manual_seed(seed)
    cfg = LlamaConfig(vocab_size=tok.get_vocab_size(), hidden_size=hidden,
                      intermediate_size=2 * hidden, num_hidden_layers=2, num_attention_heads=4,
                      num_key_value_heads=4, max_position_embeddings=256, bos_token_id=0,
                      eos_token_id=1, tie_word_embeddings=False)
    out.mkdir(parents=True, exist_ok=True)
    LlamaForCausalLM(cfg).save_pretrained(out, safe_serialization=True)
    fast.save_pretrained(out)
    return out


BPE_TEXTS = ["the quick brown fox jumps over the lazy dog",
             "unlearning is measured under quantization", "llama.cpp files ship in gguf"]


def _add_bpe_tokenizer(w, checkpoint: Path) -> None:
    """llama.cpp's `gpt2` tokenizer metadata from a byte-level BPE tokenizer.json."""
    import json

    model = json.loads((checkpoint / "tokenizer.json").read_text())
    vocab = model["model"]["vocab"]
    tokens = [t for t, _ in sorted(vocab.items(), key=lambda kv: kv[1])]
    special = {a["content"] for a in model.get("added_tokens", []) if a.get("special")}
    w.add_tokenizer_model("gpt2")
    w.add_token_list(tokens)
    w.add_token_types([3 if t in special else 1 for t in tokens])  # 3 CONTROL, 1 NORMAL
    w.add_token_merges([" ".join(m) if isinstance(m, list) else m
                        for m in model["model"]["merges"]])
    w.add_add_bos_token(False)


def write_gguf(checkpoint: Path, out: Path, types: dict[str, str], *, seed: int = 0,
               bpe_tokenizer: bool = False) -> Path:
    """`checkpoint` (a tiny Llama saved by make_tiny_checkpoint) as a .gguf at `out`.
    `types` maps a llama.cpp name fragment (`attn_`, `ffn_down`, `token_embd`) to a type
    name; the first fragment that matches wins; unmatched 2-D tensors are F32.
    `bpe_tokenizer`: also write the checkpoint's byte-level BPE tokenizer as llama.cpp's
    `tokenizer.ggml.*` metadata (a make_bpe_checkpoint checkpoint)."""
    import json

    import gguf
    from gguf import GGMLQuantizationType, quants
    from safetensors.numpy import load_file

    cfg = json.loads((checkpoint / "config.json").read_text())
    sd = load_file(str(checkpoint / "model.safetensors"))
    rng = np.random.default_rng(seed)
    w = gguf.GGUFWriter(str(out), "llama")
    w.add_name("tiny-test")
    w.add_context_length(cfg["max_position_embeddings"])
    w.add_embedding_length(cfg["hidden_size"])
    w.add_block_count(cfg["num_hidden_layers"])
    w.add_feed_forward_length(cfg["intermediate_size"])
    w.add_head_count(cfg["num_attention_heads"])
    w.add_head_count_kv(cfg["num_key_value_heads"])
    w.add_layer_norm_rms_eps(cfg["rms_norm_eps"])
    w.add_rope_freq_base(float(cfg.get("rope_theta") or
                               cfg.get("rope_parameters", {}).get("rope_theta", 10000.0)))
    w.add_vocab_size(cfg["vocab_size"])
    w.add_file_type(gguf.LlamaFileType.MOSTLY_Q8_0)
    w.add_bos_token_id(cfg["bos_token_id"])
    w.add_eos_token_id(cfg["eos_token_id"])
    if bpe_tokenizer:
        _add_bpe_tokenizer(w, checkpoint)
    for hf, t in sd.items():
        name = gguf_name(hf)
        t = t.astype(np.float32)
        if ".attn_q." in name:
            t = rotary_permute(t, cfg["num_attention_heads"])
        elif ".attn_k." in name:
            t = rotary_permute(t, cfg["num_key_value_heads"])
        tname = next((v for k, v in types.items() if k in name), "F32") if t.ndim == 2 else "F32"
        qt = GGMLQuantizationType[tname]
        if tname == "F32":
            w.add_tensor(name, np.ascontiguousarray(t))
        elif tname.endswith("_K"):
            w.add_tensor(name, _kquant_bytes(*t.shape, qt, rng), raw_dtype=qt)
        else:
            w.add_tensor(name, quants.quantize(t, qt), raw_dtype=qt)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return out


def expected_state(gguf_file: Path, checkpoint: Path) -> dict[str, np.ndarray]:
    """The Hugging Face state a faithful reader builds from `gguf_file`: every tensor decoded
    by the gguf package from the bytes in the file, attn_q/attn_k rows un-permuted."""
    import json

    from gguf import GGUFReader, quants

    cfg = json.loads((checkpoint / "config.json").read_text())
    reader = GGUFReader(str(gguf_file))
    by_name = {t.name: t for t in reader.tensors}
    from safetensors.numpy import load_file

    out = {}
    for hf, ref in load_file(str(checkpoint / "model.safetensors")).items():
        t = by_name[gguf_name(hf)]
        v = quants.dequantize(t.data, t.tensor_type).reshape(ref.shape).astype(np.float32)
        if ".attn_q." in t.name:
            v = rotary_unpermute(v, cfg["num_attention_heads"])
        elif ".attn_k." in t.name:
            v = rotary_unpermute(v, cfg["num_key_value_heads"])
        out[hf] = v
    return out
