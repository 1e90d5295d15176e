"""Writing the unlearned checkpoint: complete or absent, never half-written."""
from __future__ import annotations

import inspect
import os
import shutil
from pathlib import Path
from typing import Any

from ..errors import RunError


def save_checkpoint(model: Any, tokenizer: Any, out: Path) -> None:
    """Write to a sibling temp dir, then rename: `out` is either complete or absent."""
    out.parent.mkdir(parents=True, exist_ok=True)
    # hidden, and inside the cache named after `out` (.tmp-KEY-...), so a build killed while
    # saving leaves a directory the next build of that key removes under its lock
    hidden = out.name if out.name.startswith(".") else f".{out.name}"
    tmp = out.parent / f"{hidden}.partial-{os.getpid()}"
    if tmp.exists():
        shutil.rmtree(tmp)
    kwargs = {}
    if "safe_serialization" in inspect.signature(model.save_pretrained).parameters:
        kwargs["safe_serialization"] = True  # transformers < 5; 5 always writes safetensors
    try:
        model.save_pretrained(tmp, **kwargs)
        tokenizer.save_pretrained(tmp)
        if not any(tmp.glob("*.safetensors")):
            raise RunError(f"saving the unlearned model to {out} wrote no .safetensors file")
        if out.exists():
            out.rmdir()  # checked empty before training
        os.replace(tmp, out)
    except BaseException:  # a full disk, Ctrl-C: nothing half-written stays beside `out`
        shutil.rmtree(tmp, ignore_errors=True)
        raise
