"""Loading causal LMs and tokenizers from a local directory or the hub, safely.

Defaults a release gate needs: safetensors only (a pickle checkpoint can run code when
loaded), `trust_remote_code=False`, and an optional pinned revision.
"""
from __future__ import annotations

import contextlib
import json
from pathlib import Path
from typing import Any, Iterator

from ..errors import RunError

PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".ckpt", ".pkl")


def check_weights_format(path: Path, *, allow_pickle: bool) -> None:
    """Refuse a local checkpoint whose weights are only in pickle files, unless allowed."""
    files = [p.name for p in path.iterdir()] if path.is_dir() else []
    has_st = any(f.endswith(".safetensors") for f in files)
    pickles = [f for f in files if f.endswith(PICKLE_SUFFIXES)]
    if not has_st and pickles and not allow_pickle:
        raise RunError(
            f"{path} holds only pickle weights ({', '.join(sorted(pickles))}). Loading pickle "
            f"can run arbitrary code from whoever made the checkpoint. Convert it to "
            f"safetensors, or set `allow_pickle: true` on this model in the spec if you trust it."
        )


def custom_code(path: Path) -> list[str]:
    """What in a checkpoint directory asks to run its own Python code: `auto_map` entries in
    config.json / tokenizer_config.json (`"AutoModelForCausalLM": "modeling_x.MyModel"`)."""
    found: list[str] = []
    for name in ("config.json", "tokenizer_config.json"):
        try:
            data = json.loads((path / name).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        auto_map = data.get("auto_map") if isinstance(data, dict) else None
        if isinstance(auto_map, dict):
            for cls, ref in sorted(auto_map.items()):
                found.append(f"{name}: {cls} -> {ref}")
    return found


def check_remote_code(path: Path, *, trust_remote_code: bool) -> None:
    """Refuse a checkpoint that ships its own modeling code, unless the spec trusts it.

    transformers would either run that code (trust_remote_code=True) or silently load its
    built-in class for the model type instead, which measures a different model than its
    author meant. Both are wrong for a gate that did not opt in, so this is an error."""
    if trust_remote_code or not path.is_dir():
        return
    found = custom_code(path)
    if found:
        raise RunError(
            f"{path} ships its own Python code ({'; '.join(found)}). Running it means running "
            f"whatever its author wrote, with your permissions. Read the code, then set "
            f"`trust_remote_code: true` on this model in the spec if you trust it."
        )


@contextlib.contextmanager
def transformers_bars(enabled: bool) -> Iterator[None]:
    """With `enabled` False, silence transformers' own per-checkpoint loading / saving bars
    for the duration (the caller shows its own progress, or none), then restore the
    caller's setting."""
    from transformers.utils import logging as hf_logging

    was_disabled = not hf_logging.is_progress_bar_enabled()
    if not enabled:
        hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        if not enabled and not was_disabled:
            hf_logging.enable_progress_bar()


GENERIC_TOKENIZERS = ("TokenizersBackend", "PreTrainedTokenizerFast")


def as_saved(tokenizer: Any, path: str | Path, **common: Any) -> Any:
    """The tokenizer its checkpoint saved, when AutoTokenizer substituted another class.

    transformers 5 keeps a list of model types whose hub tokenizer_config.json it distrusts
    (`qwen2` among them) and builds the model type's own class for them: for `qwen2` that is
    Qwen2Tokenizer, which rebuilds its pipeline from the vocabulary with Qwen's byte-level
    rules and ignores the saved tokenizer.json. A checkpoint saved with the generic class
    (`TokenizersBackend`, `PreTrainedTokenizerFast`, what `save_pretrained` writes for any
    `tokenizers` tokenizer) then encodes differently from how it was trained -- a Metaspace
    tokenizer even gets ids beyond the embedding. Its tokenizer.json is the complete
    definition, so load exactly that."""
    from transformers import PreTrainedTokenizerFast
    from transformers.models.auto.tokenization_auto import get_tokenizer_config

    if type(tokenizer).__name__ in GENERIC_TOKENIZERS:
        return tokenizer
    try:
        declared = get_tokenizer_config(str(path), **common).get("tokenizer_class")
    except (OSError, ValueError):
        return tokenizer
    if declared not in GENERIC_TOKENIZERS:
        return tokenizer
    return PreTrainedTokenizerFast.from_pretrained(str(path), **common)


def load_causal_lm(
    path: str | Path,
    *,
    device: str = "cpu",
    dtype: Any = None,
    revision: str | None = None,
    allow_pickle: bool = False,
    trust_remote_code: bool = False,
    **kwargs: Any,
) -> tuple[Any, Any]:
    """(model in eval mode, tokenizer). `path` is a local directory or a hub id."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    local = Path(path)
    if local.exists():
        check_weights_format(local, allow_pickle=allow_pickle)
        check_remote_code(local, trust_remote_code=trust_remote_code)
    common = dict(revision=revision, trust_remote_code=trust_remote_code)
    try:
        with transformers_bars(False):  # per-load bars would bury pytest's own output
            tokenizer = as_saved(AutoTokenizer.from_pretrained(str(path), **common), path,
                                 **common)
            model = AutoModelForCausalLM.from_pretrained(
                str(path),
                dtype=dtype if dtype is not None else torch.float32,
                use_safetensors=None if allow_pickle else True,
                **common,
                **kwargs,
            )
    except (OSError, ValueError) as exc:
        raise RunError(f"could not load model from {path}: {exc}") from exc
    if "device_map" not in kwargs and "quantization_config" not in kwargs:
        model.to(device)
    model.eval()
    return model, tokenizer
