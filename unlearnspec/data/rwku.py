"""RWKU (Jin et al., 2024) for one unlearning target, converted once into a corpus directory.

Sources, as a spec's `data: {path: ...}`:

* RWKU's processed per-target directory (`LLaMA-Factory/data/RWKU/Target/1_Stephen_King/`,
  what `process/data_process.py` writes and RWKU's scripts read): `forget_level{1,2,3}.json`,
  `neighbor_level{1,2}.json`, `positive.json` (GA/NPO's training texts), `reject.json` (RT's
  refusal pairs), `retain_mmlu.json`, `truthful.json`, `triviaqa.json`, `fluency.json`, …
* The hub dataset, or a local copy in its layout (`forget_level1/test-*.parquet`, …), with the
  target after `#`: `jinzhuoran/RWKU#Stephen King`. Rows are kept where `subject` is the target.

The corpus directory holds `raw/forget.json` (the texts of `positive.json`: what RWKU's GA and
NPO train on), `knowmem/forget_qa.json` (the questions of `reject.json`, RWKU's refusal set,
which the `rt` method trains to refuse) and every RWKU file under `rwku/`. Probes are read
with `probes()`.
"""
from __future__ import annotations

import json
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import RunError
from .files import build_dir_once, read_records, split_files, tree_digest

PROBE_FILES = ("forget_level1", "forget_level2", "forget_level3", "neighbor_level1",
               "neighbor_level2")
# hub subset -> (split, file in RWKU's per-target layout), as data_process.py maps them
HUB_SUBSETS = {
    **{name: ("test", name) for name in PROBE_FILES},
    "train_positive_llama3": ("train", "positive"),
    "train_refusal_llama3": ("train", "reject"),
    "train_original_passage": ("train", "passage"),
    "utility_general": ("test", "retain_mmlu"),
    "utility_truthfulness": ("test", "truthful"),
    "utility_factuality": ("test", "triviaqa"),
    "utility_fluency": ("test", "fluency"),
}


@dataclass(frozen=True)
class Probe:
    query: str
    answer: str
    level: str
    type: str = ""


def is_rwku_target_dir(path: Path) -> bool:
    return (path / "forget_level1.json").is_file()


def _write_corpus(target_dir: Path, out: Path) -> None:
    (out / "rwku").mkdir(parents=True)
    for f in sorted(target_dir.glob("*.json")):
        shutil.copyfile(f, out / "rwku" / f.name)
    positive = target_dir / "positive.json"
    if positive.is_file():
        texts = []
        for i, rec in enumerate(read_records(positive)):
            text = rec.get("text") if isinstance(rec, dict) else rec
            if not isinstance(text, str):
                raise RunError(f"{positive}: record {i} has no string 'text' (RWKU's "
                               f"train_positive records: subject, intro, text)")
            texts.append(text)
        (out / "raw").mkdir()
        (out / "raw" / "forget.json").write_text(json.dumps(texts, ensure_ascii=False),
                                                 encoding="utf-8")
    reject = target_dir / "reject.json"
    if reject.is_file():  # RT's questions (the engine hands RT the KnowMem-forget questions)
        qa = []
        for i, rec in enumerate(read_records(reject)):
            if not isinstance(rec, dict) or not isinstance(rec.get("instruction"), str):
                raise RunError(f"{reject}: record {i} has no string 'instruction' (RWKU's "
                               f"train_refusal records: instruction, input, output)")
            qa.append({"question": rec["instruction"], "answer": str(rec.get("output", ""))})
        (out / "knowmem").mkdir()
        (out / "knowmem" / "forget_qa.json").write_text(json.dumps(qa, ensure_ascii=False),
                                                        encoding="utf-8")


def corpus_from_rwku(target_dir: str | Path, cache_dir: str | Path) -> Path:
    """The corpus directory for an RWKU per-target directory (built once per content,
    atomically)."""
    target_dir = Path(target_dir)
    missing = [f"{n}.json" for n in PROBE_FILES[:3] if not (target_dir / f"{n}.json").is_file()]
    if missing:
        raise RunError(f"{target_dir} is not an RWKU target directory: no {', '.join(missing)}")
    out = Path(cache_dir) / f"rwku-{tree_digest(target_dir)}"
    return build_dir_once(out, lambda d: _write_corpus(target_dir, d))


def corpus_from_rwku_snapshot(snapshot: str | Path, target: str, cache_dir: str | Path) -> Path:
    """A hub-layout RWKU copy, cut to rows whose `subject` is `target`, as a corpus dir."""
    snapshot = Path(snapshot)
    with tempfile.TemporaryDirectory(prefix="unlearnspec-rwku-") as tmp:
        tdir = Path(tmp) / "target"
        tdir.mkdir()
        subjects: set[str] = set()
        for subset, (split, name) in HUB_SUBSETS.items():
            files = split_files(snapshot, subset, split)
            rows = [r for f in files for r in read_records(f)]
            subjects |= {r.get("subject") for r in rows if isinstance(r, dict)}
            keep = [r for r in rows if isinstance(r, dict) and r.get("subject") == target]
            if files:
                (tdir / f"{name}.json").write_text(json.dumps(keep, ensure_ascii=False),
                                                   encoding="utf-8")
        if not (tdir / "forget_level1.json").is_file():
            raise RunError(f"{snapshot} is not an RWKU dataset: no forget_level1/test-* files")
        if not json.loads((tdir / "forget_level1.json").read_text(encoding="utf-8")):
            known = sorted(s for s in subjects if isinstance(s, str))[:8]
            raise RunError(f"RWKU has no target '{target}' in {snapshot} (targets are "
                           f"subjects such as {', '.join(known)}): write it after '#' as the "
                           f"dataset spells it")
        return corpus_from_rwku(tdir, cache_dir)


def rwku_from_hub(repo_id: str, target: str, cache_dir: str | Path, *,
                  revision: str | None = None) -> Path:
    from .hub_datasets import snapshot_dataset

    snapshot = snapshot_dataset(repo_id, [f"{s}/*" for s in HUB_SUBSETS], revision=revision)
    return corpus_from_rwku_snapshot(snapshot, target, cache_dir)


def probes(root: str | Path, split: str, level: int) -> list[Probe]:
    """RWKU's probes of one level for the forget set or the neighbour set."""
    path = Path(root) / "rwku" / f"{split}_level{level}.json"
    if not path.is_file():
        raise RunError(f"missing RWKU probe file {path}: the data entry must be an RWKU "
                       f"target (see unlearnspec.data.rwku)")
    out = []
    for i, rec in enumerate(read_records(path)):
        if not isinstance(rec, dict) or not isinstance(rec.get("query"), str) \
                or not isinstance(rec.get("answer"), str):
            raise RunError(f"{path}: record {i} must be an object with string 'query' and "
                           f"'answer' (RWKU's probe format), got {str(rec)[:80]}")
        out.append(Probe(rec["query"], rec["answer"], str(rec.get("level", level)),
                         str(rec.get("type", ""))))
    return out


def rwku_root(corpus: Any) -> Path:
    root = Path(getattr(corpus, "root", corpus))
    if not (root / "rwku").is_dir():
        raise RunError(f"{root} is not an RWKU corpus: point the metric's data at an RWKU "
                       f"target directory or 'jinzhuoran/RWKU#<target>'")
    return root
