"""Helpers the unlearning tests import by name (a test importing `conftest` gets whichever
conftest.py was loaded last under that name, e.g. tests/zoo's under xdist)."""
from __future__ import annotations

from pathlib import Path


def vocabulary_words(checkpoint: Path) -> list[str]:
    """The tiny tokenizer's ordinary words, in id order (specials left out)."""
    import json

    vocab = json.loads((checkpoint / "tokenizer.json").read_text())["model"]["vocab"]
    return [w for w, _ in sorted(vocab.items(), key=lambda kv: kv[1])
            if not w.startswith("<") and w.strip()]
