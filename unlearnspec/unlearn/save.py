"""Writing the unlearned checkpoint: complete or absent, never half-written."""
from __future__ import annotations

import inspect
from pathlib import Path
from typing import Any

from ..data.files import write_dir_atomic
from ..errors import RunError


def save_checkpoint(model: Any, tokenizer: Any, out: Path) -> None:
    """`out` is either complete or absent (write_dir_atomic: a hidden sibling named after
    `out`, so a build killed while saving leaves a directory the cache removes under its lock
    when it next builds that key)."""
    kwargs = {}
    if "safe_serialization" in inspect.signature(model.save_pretrained).parameters:
        kwargs["safe_serialization"] = True  # transformers < 5; 5 always writes safetensors

    def write(tmp: Path) -> None:
        model.save_pretrained(tmp, **kwargs)
        tokenizer.save_pretrained(tmp)
        if not any(tmp.glob("*.safetensors")):
            raise RunError(f"saving the unlearned model to {out} wrote no .safetensors file")

    if out.exists():
        out.rmdir()  # checked empty before training
    write_dir_atomic(out, write)
