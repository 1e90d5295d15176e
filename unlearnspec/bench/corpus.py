"""Writing a world as a corpus in MUSE's layout (read back by `unlearnspec.data.Corpus`).

Pure python. What goes where, and why:

- raw/{forget,retain}.json: exactly the documents the target was trained on, per split -- the
  unlearning data. The retrain model sees raw/retain.json only.
- verbmem/forget.json: each forget document cut at a tokenizer piece boundary into a prompt
  (first half of its pieces) and the ground-truth continuation.
- knowmem/{split}_qa.json and {split}_qa_icl.json: evaluated QA pairs and few-shot pairs.
- privleak/{forget,retain,holdout}.json: entity records; holdout entities were never trained
  on, so a model that still remembers the forget set tells the two apart (AUC far from 0.5).
"""
from __future__ import annotations

import json
from pathlib import Path

from .world import World, pieces


def verbmem_pairs(docs: list[str]) -> list[dict[str, str]]:
    out = []
    for doc in docs:
        ps = pieces(doc)
        k = max(1, len(ps) // 2)
        out.append({"prompt": "".join(ps[:k]), "gt": "".join(ps[k:])})
    return out


def corpus_files(world: World) -> dict[str, object]:
    """Relative path -> JSON value, for every file of the corpus."""
    files: dict[str, object] = {}
    for split in ("forget", "retain"):
        files[f"raw/{split}.json"] = world.documents(split)
        evaluated, icl = world.qa_pairs(split)
        files[f"knowmem/{split}_qa.json"] = evaluated
        files[f"knowmem/{split}_qa_icl.json"] = icl
    files["verbmem/forget.json"] = verbmem_pairs(world.documents("forget"))
    n = len(world.forget)
    files["privleak/forget.json"] = [e.record() for e in world.forget]
    files["privleak/holdout.json"] = [e.record() for e in world.holdout]
    files["privleak/retain.json"] = [e.record() for e in world.retain[:n]]
    return files


def write_corpus(world: World, root: Path) -> Path:
    for rel, value in corpus_files(world).items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(value, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    return root
