"""Which texts an unlearning run trains on, and how they are packed: as MUSE builds them.

MUSE's `load_data.py` writes each raw split twice, `raw/SPLIT.json` (the documents) and
`raw/SPLIT.txt` (the documents joined by blank lines), for SPLIT in forget, holdout, retain1
and retain2, and its `scripts/unlearn_*.sh` train on `raw/forget.txt` and `raw/retain1.txt`.
`baselines/dataset.py` tokenizes a `.txt` file whole (no special tokens) and cuts it into
windows of `max_len − 1` tokens with BOS prepended (`max_len` 2048 in the scripts), the last
window filled up from the start of the text. retain2 is where the retain QA (the utility
metric) comes from, so it is never trained on.

`packing`:
- `auto`: `windows` on a MUSE directory (a `raw/retain1.*` or `raw/retain2.*` file exists),
  `documents` elsewhere (the built-in benchmark, plain `raw/forget.json` corpora).
- `windows`: MUSE's packing. The split's `.txt` file if there is one, else its documents
  joined by "\\n\\n" (what `load_data.py` writes to that `.txt`).
- `documents`: one example per document (`.json` list, or one per `.txt` file), each cut
  into chunks of at most `max_length` tokens.

On a MUSE directory the retain split is retain1; elsewhere `raw/retain.json` or the
`raw/retain*.txt` files, as `Corpus.raw` reads them.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal, Sequence

from ..data.muse import Corpus, is_muse_layout

Packing = Literal["auto", "windows", "documents"]
MUSE_MAX_LENGTH = 2048  # MUSE's scripts: MAX_LEN=2048
DOCUMENT_MAX_LENGTH = 256


@dataclass(frozen=True)
class TrainingTexts:
    """The texts of one split, how to pack them, and the files they came from (relative to
    the corpus root), for the log."""

    texts: list[str]
    packing: Literal["windows", "documents"]
    files: tuple[str, ...] = ()

    def __len__(self) -> int:
        return len(self.texts)


def _split_name(corpus: Corpus, split: str) -> str:
    return "retain1" if split == "retain" and is_muse_layout(corpus.root) else split


def select(corpus: Corpus, split: str, packing: Packing = "auto") -> TrainingTexts:
    """The training texts of `split` ('forget' or 'retain') packed as `packing` says."""
    muse = is_muse_layout(corpus.root)
    mode = ("windows" if muse else "documents") if packing == "auto" else packing
    name = _split_name(corpus, split)
    raw = corpus.root / "raw"
    if mode == "windows":
        txt = raw / f"{name}.txt"
        if txt.is_file():
            return TrainingTexts([txt.read_text(encoding="utf-8")], "windows",
                                 (_rel(corpus, txt),))
        docs, files = corpus.raw_with_files(split)
        return TrainingTexts(["\n\n".join(docs)], "windows", files)
    docs, files = corpus.raw_with_files(split)
    return TrainingTexts(docs, "documents", files)


def default_max_length(packing: str) -> int:
    return MUSE_MAX_LENGTH if packing == "windows" else DOCUMENT_MAX_LENGTH


def _rel(corpus: Corpus, path: Path) -> str:
    return str(path.relative_to(corpus.root))


def pack_windows(ids: Sequence[int], max_length: int, bos_id: int | None) -> list[list[int]]:
    """MUSE's `DefaultDataset` on a `.txt` file: windows of `max_length − 1` tokens with BOS
    prepended (of `max_length` without a BOS), and a last window shorter than `max_length`
    filled up with the *first window* (its BOS included) and cut to `max_length`."""
    ids = list(ids)
    if not ids:
        return []
    if bos_id is not None:
        step = max_length - 1
        windows = [[bos_id, *ids[i:i + step]] for i in range(0, len(ids), step)]
    else:
        windows = [ids[i:i + max_length] for i in range(0, len(ids), max_length)]
    if len(windows[-1]) < max_length:
        windows[-1] = (windows[-1] + windows[0])[:max_length]
    return windows
