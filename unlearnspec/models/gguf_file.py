"""A llama.cpp `.gguf` file as a model to measure: dequantized once into an ordinary Hugging
Face checkpoint (fp32 safetensors + config.json + tokenizer), which every other part of the
run then reads like any checkpoint (metrics, transforms, unlearning `from:` it, the streamed
weight metrics and `unlearnspec diff`).

Reading goes through transformers' own GGUF support (`from_pretrained(..., gguf_file=)`), which
reads the file with `gguf.GGUFReader`, dequantizes every tensor with `gguf.dequantize` (any
type the package decodes: F32/F16/BF16, Q4_0 … Q8_0, the K-quants Q2_K … Q6_K, IQ types,
MXFP4), maps llama.cpp's tensor names back (`blk.0.attn_q.weight` ->
`model.layers.0.self_attn.q_proj.weight`), undoes the rotary row permutation llama.cpp's
converter applies to Llama's attn_q / attn_k, and builds the config from the `llama.*`
metadata. Architectures: whatever transformers' GGUF loader maps (llama, mistral, qwen2,
qwen2moe, qwen3, phi3, gemma, ...); Llama is the one this project tests.

Tokenizer: by default from the file's `tokenizer.ggml.*` metadata (transformers' GGUF
tokenizer converters: llama's SentencePiece and gpt2's BPE vocabularies); `tokenizer: DIR`
on the model takes a Hugging Face tokenizer directory instead (for a tokenizer the metadata
cannot express, or to pin the one the model was trained with).
"""
from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any

from ..errors import RunError

VERSION = "gguf-load-1"
SOURCE_FILE = "gguf_source.json"


def is_gguf(path: str | Path) -> bool:
    return str(path).lower().endswith(".gguf")


def gguf_tensor_types(path: Path) -> dict[str, str]:
    """llama.cpp tensor name -> ggml type name (`Q4_K`, `F32`, ...), read from the header."""
    reader = _reader(path)
    return {t.name: t.tensor_type.name for t in reader.tensors}


def _reader(path: Path) -> Any:
    try:
        from gguf import GGUFReader
    except ImportError as exc:
        raise RunError(f"{path} is a GGUF file; reading it needs the gguf package: "
                       f"pip install 'unlearnspec[gguf]'") from exc
    try:
        return GGUFReader(str(path))
    except (OSError, ValueError, KeyError) as exc:
        raise RunError(f"{path} is not a readable GGUF file ({exc}); check that the download "
                       f"is complete (a GGUF file starts with the bytes 'GGUF')") from exc


def versions() -> dict[str, str]:
    """What decides the converted numbers, for cache keys."""
    from importlib.metadata import version

    return {"loader": VERSION, "gguf": version("gguf"), "transformers": version("transformers")}


def convert_gguf(path: Path, out: Path, *, tokenizer: Path | None = None,
                 with_tokenizer: bool = True) -> Path:
    """Write `path` (a .gguf file) as a Hugging Face checkpoint into `out` (created).
    `tokenizer`: a tokenizer directory to use instead of the file's metadata;
    `with_tokenizer=False` skips the tokenizer (weights only, for `unlearnspec diff`)."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from .loading import as_saved, transformers_bars

    path = Path(path)
    if not path.is_file():
        raise RunError(f"GGUF model file {path} does not exist")
    reader = _reader(path)
    arch = _field(reader, "general.architecture") or "?"
    types = {t.name: t.tensor_type.name for t in reader.tensors}
    del reader
    try:
        with transformers_bars(False):
            model = AutoModelForCausalLM.from_pretrained(
                str(path.parent), gguf_file=path.name, dtype=torch.float32)
    except (ValueError, KeyError, NotImplementedError, OSError) as exc:
        raise RunError(f"cannot read {path} (architecture '{arch}') as a causal LM: {exc}. "
                       f"transformers' GGUF loader covers llama, mistral, qwen2, qwen3, phi3, "
                       f"gemma and a few more; convert other files with llama.cpp's "
                       f"gguf-py tools to a Hugging Face checkpoint first") from exc
    tok = None
    if tokenizer is not None:
        try:
            tok = as_saved(AutoTokenizer.from_pretrained(str(tokenizer)), tokenizer)
        except (OSError, ValueError) as exc:
            raise RunError(f"tokenizer directory {tokenizer} for {path} could not be "
                           f"loaded: {exc}") from exc
    elif with_tokenizer:
        try:
            with transformers_bars(False):
                tok = AutoTokenizer.from_pretrained(str(path.parent), gguf_file=path.name)
        except (ValueError, KeyError, NotImplementedError, OSError) as exc:
            raise RunError(
                f"{path} has no tokenizer transformers can build from its tokenizer.ggml.* "
                f"metadata ({type(exc).__name__}: {exc}); give the model a tokenizer "
                f"directory: {{path: {path.name}, tokenizer: ./tokenizer_dir}}") from exc
    # the weights are plain fp32 now: saved and reloaded as an ordinary checkpoint
    if getattr(model.config, "quantization_config", None) is not None:
        del model.config.quantization_config
    model.hf_quantizer = None
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out, safe_serialization=True)
    dropped: list[str] = []
    if tok is not None:
        tok.save_pretrained(out)
        if tokenizer is None:
            dropped = _drop_tokens_beyond(out, model.get_input_embeddings().weight.shape[0])
    counts = Counter(types.values())
    (out / SOURCE_FILE).write_text(json.dumps({
        "file": str(path), "architecture": arch, "types": dict(sorted(counts.items())),
        "tensor_types": types, "tokenizer": str(tokenizer) if tokenizer else "gguf metadata",
        "dropped_tokens": dropped,
        **versions()}, indent=1))
    return out


def _drop_tokens_beyond(out: Path, rows: int) -> list[str]:
    """Remove added tokens whose id the model has no embedding row for, from the saved
    tokenizer. transformers' GPT-2 builder adds `<|endoftext|>` when a byte-level vocabulary
    lacks it; a text holding that string would otherwise index past the embedding."""
    tj, tc = out / "tokenizer.json", out / "tokenizer_config.json"
    if not tj.is_file():
        return []
    data = json.loads(tj.read_text(encoding="utf-8"))
    beyond = [a for a in data.get("added_tokens", []) if a.get("id", 0) >= rows]
    if not beyond:
        return []
    data["added_tokens"] = [a for a in data["added_tokens"] if a.get("id", 0) < rows]
    tj.write_text(json.dumps(data, ensure_ascii=False), encoding="utf-8")
    if tc.is_file():
        cfg = json.loads(tc.read_text(encoding="utf-8"))
        decoder = cfg.get("added_tokens_decoder")
        if isinstance(decoder, dict):
            cfg["added_tokens_decoder"] = {k: v for k, v in decoder.items() if int(k) < rows}
        tc.write_text(json.dumps(cfg, ensure_ascii=False, indent=1), encoding="utf-8")
    return [a["content"] for a in beyond]


def _field(reader: Any, key: str) -> str | None:
    f = reader.fields.get(key)
    if f is None:
        return None
    try:
        return bytes(f.parts[f.data[0]]).decode("utf-8")
    except (IndexError, UnicodeDecodeError):
        return None
