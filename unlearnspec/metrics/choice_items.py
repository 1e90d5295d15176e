"""Multiple-choice items (MMLU, TruthfulQA) and few-shot splits read from a local file, for
the utility metrics (metrics/utility.py)."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..data.files import read_records
from ..errors import RunError
from .scores import require_samples

LETTERS = "ABCDEFGHIJ"


@dataclass(frozen=True)
class ChoiceItem:
    question: str
    choices: tuple[str, ...]
    answer: int
    subject: str | None = None
    examples: tuple["ChoiceItem", ...] | None = None


def choice_item(rec: Any, path: Path, i: int) -> ChoiceItem:
    """One MC item from MMLU (hub: question/choices/answer; CSV: q, A..D, letter) or
    TruthfulQA (mc1_targets as {choices, labels} or {choice: label})."""
    try:
        if isinstance(rec, list):  # MMLU's original CSV row
            *opts, letter = rec[1:]
            return ChoiceItem(rec[0], tuple(opts), LETTERS.index(letter.strip()))
        if "mc1_targets" in rec:
            t = rec["mc1_targets"]
            choices, labels = ((t["choices"], t["labels"]) if "choices" in t
                               else (list(t), list(t.values())))
            return ChoiceItem(rec["question"], tuple(choices), list(labels).index(1))
        ans = rec["answer"]
        idx = LETTERS.index(ans) if isinstance(ans, str) else int(ans)
        examples = rec.get("examples")
        return ChoiceItem(rec["question"], tuple(rec["choices"]), idx,
                          rec.get("subject", rec.get("task")),
                          None if examples is None
                          else tuple(choice_item(e, path, i) for e in examples))
    except (KeyError, ValueError, TypeError, IndexError) as exc:
        raise RunError(f"{path}: record {i} is not a multiple-choice item in MMLU or "
                       f"TruthfulQA format ({type(exc).__name__}: {exc})") from exc


def split_shots(cfg: Any, parse: Any) -> tuple[list[Any], list[Any]]:
    path = Path(cfg.path)
    items = [parse(r, path, i) for i, r in enumerate(read_records(path))]
    if cfg.fewshot_path:
        fpath = Path(cfg.fewshot_path)
        shots = [parse(r, fpath, i) for i, r in enumerate(read_records(fpath))][:cfg.shots]
    else:
        shots, items = items[:cfg.shots], items[cfg.shots:]
    if cfg.limit:
        items = items[:cfg.limit]
    require_samples(items, f"{path} (after taking {len(shots)} few-shot examples)")
    return shots, items


def subject_of(item: ChoiceItem, path: Path) -> str:
    """RWKU's header names the item's subject (`task`); MMLU's CSVs are one subject per file
    (`astronomy_test.csv`), so the file name stands in when the record has none."""
    if item.subject:
        return item.subject
    stem = path.stem
    for tail in ("_test", "_dev", "_val"):
        stem = stem.removesuffix(tail)
    return stem


def own_examples(config: Any) -> list[ChoiceItem] | None:
    """Every record of `path` when each carries its own `examples` (RWKU's layout), else None."""
    path = Path(config.path)
    items = [choice_item(r, path, i) for i, r in enumerate(read_records(path))]
    if not items or any(it.examples is None for it in items):
        return None
    items = items[:config.limit] if config.limit else items
    return items
