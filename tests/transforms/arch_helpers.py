"""Tiny random models of the architectures whose weights sit in different modules: GPT-2
(Conv1D, [in, out]), Llama (nn.Linear), Mixtral and Qwen2-MoE (3-D expert tensors; Qwen2-MoE
adds a shared expert), Falcon (FalconLinear, an nn.Linear subclass bitsandbytes skips).
2 layers, hidden size 64, built from transformers configs. Used by the coverage and streaming
tests and by benchmarks/transform_coverage.py (the model zoo in tests/zoo/ is for conformance)."""
from __future__ import annotations

from pathlib import Path

import torch


ARCHS = ("gpt2", "llama", "mixtral", "qwen2_moe", "falcon")


def arch_config(arch: str):  # noqa: ANN201 - a transformers config
    """The sizes of issue 14's table (GPT-2 98,304, Mixtral 229,888, Qwen2-MoE 156,288 decoder
    weights)."""
    import transformers as tf

    common = dict(vocab_size=96, max_position_embeddings=64)
    if arch == "gpt2":
        return tf.GPT2Config(n_layer=2, n_embd=64, n_head=4, vocab_size=96, n_positions=64,
                             bos_token_id=0, eos_token_id=1)
    if arch == "llama":
        return tf.LlamaConfig(num_hidden_layers=2, hidden_size=64, intermediate_size=128,
                              num_attention_heads=4, num_key_value_heads=2, **common)
    if arch == "mixtral":
        return tf.MixtralConfig(num_hidden_layers=2, hidden_size=64, intermediate_size=128,
                                num_attention_heads=4, num_key_value_heads=4,
                                num_local_experts=4, num_experts_per_tok=2, **common)
    if arch == "qwen2_moe":
        return tf.Qwen2MoeConfig(num_hidden_layers=2, hidden_size=64, intermediate_size=128,
                                 moe_intermediate_size=64, shared_expert_intermediate_size=64,
                                 num_attention_heads=4, num_key_value_heads=4, num_experts=4,
                                 num_experts_per_tok=2, **common)
    if arch == "falcon":
        return tf.FalconConfig(num_hidden_layers=2, hidden_size=64, num_attention_heads=4,
                               vocab_size=96)
    raise ValueError(arch)


def _tokenizer():  # noqa: ANN202
    """A word-level tokenizer of the models' 96 ids (loading needs one; nothing here reads
    its words)."""
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    vocab = {t: i for i, t in enumerate(["<s>", "</s>", "<unk>"] + [f"w{i}" for i in range(93)])}
    tok = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    return PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<s>", eos_token="</s>",
                                   unk_token="<unk>", pad_token="</s>")


def make_arch_checkpoint(arch: str, out: Path, *, seed: int = 0) -> Path:
    """A random tiny `arch` saved with save_pretrained, with a word-level tokenizer."""
    from transformers import AutoModelForCausalLM

    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_config(arch_config(arch))
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out)
    _tokenizer().save_pretrained(out)
    return out


def load_arch(path: Path):  # noqa: ANN201
    from transformers import AutoModelForCausalLM

    return AutoModelForCausalLM.from_pretrained(str(path), dtype=torch.float32).eval()


