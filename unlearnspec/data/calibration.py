"""Calibration sets for GPTQ / AWQ: which texts, and how they become token sequences.

`windows` (the default) is how the GPTQ paper's code samples WikiText-2 / C4
(`gptq/datautils.py`): all texts joined with "\\n\\n", tokenized once, and `n_samples` windows
of exactly `seq_len` tokens starting at `random.randint(0, n - seq_len - 1)` under
`random.seed(seed)`. Packing is what makes the nominal `seq_len` real: the first 128 news
articles, each cut on its own, are mostly shorter than 2048 tokens. `first` keeps the earlier
behaviour: the first `n_samples` non-empty texts, each encoded with BOS and cut to `seq_len`.
"""
from __future__ import annotations

import hashlib
import random
from pathlib import Path
from typing import Any, Literal, Sequence

from ..errors import RunError
from .files import read_texts

Sampling = Literal["windows", "first"]


def read_calibration_file(path: str | Path) -> list[str]:
    """The texts of a general calibration file (.txt: the whole file; .json/.jsonl/.parquet:
    strings or records' `text`)."""
    p = Path(path)
    if not p.exists():
        raise RunError(f"calibration file {p} does not exist: put a general text corpus there "
                       f"(e.g. WikiText-2's train split as one .txt, see docs/transforms.md) "
                       f"or point calibration_path at one")
    texts = [t for t in read_texts(p) if t.strip()]
    if not texts:
        raise RunError(f"calibration file {p} holds no text")
    return texts


def calibration_fingerprint(texts: Sequence[str]) -> str:
    """A content hash of the calibration texts (order matters: it changes the windows)."""
    h = hashlib.sha256()
    for t in texts:
        h.update(hashlib.sha256(t.encode("utf-8")).digest())
    return h.hexdigest()


def calibration_sequences(texts: Sequence[str] | None, tokenizer: Any, *, n_samples: int,
                          seq_len: int, sampling: Sampling = "windows", seed: int = 0,
                          kind: str = "gptq") -> list[list[int]]:
    """Token id sequences to calibrate on (see the module docstring)."""
    texts = [t for t in (texts or []) if t.strip()]
    if not texts:
        raise RunError(
            f"the {kind} transform needs calibration texts, and none were given: set "
            f"`calibration_path: <general text file>` on the transform in the spec, or "
            f"`calibration: <data name>` to calibrate on that corpus's retain texts")
    if sampling == "first":
        return [list(tokenizer(t, add_special_tokens=True)["input_ids"])[:seq_len]
                for t in texts[:n_samples]]
    ids = list(tokenizer("\n\n".join(texts))["input_ids"])
    if len(ids) < seq_len + 2:
        raise RunError(f"the {kind} calibration texts are {len(ids)} tokens long, too short "
                       f"for windows of seq_len={seq_len}: give more text or a smaller seq_len")
    rng = random.Random(seed)
    starts = [rng.randint(0, len(ids) - seq_len - 1) for _ in range(n_samples)]
    return [ids[i:i + seq_len] for i in starts]
