"""TOFU (Maini et al., 2024) for one forget split, converted once into a corpus directory.

Sources, as a spec's `data: {path: ...}`, with the forget split (and optionally the question
template) after `#`: `locuslab/TOFU#forget10`, `./tofu#forget05:llama2`.

* The hub dataset `locuslab/TOFU`, or a local directory in its layout: one file per split at
  the top (`forget10.json`, `forget10_perturbed.json`, `retain90.json`, `retain_perturbed.json`,
  `real_authors_perturbed.json`, `world_facts_perturbed.json`, ...; JSON lines, as the hub
  stores them, or a JSON list), or `SPLIT/train-*.parquet` (the layout `datasets` writes).

Splits read: `forgetNN` and its `retainMM` (MM = 100 − NN; the training texts), and the four
evaluation files TOFU's `eval_everything.yaml` reads: `forgetNN_perturbed`, `retain_perturbed`,
`real_authors_perturbed`, `world_facts_perturbed`. Plain `real_authors` / `world_facts` are not
needed (the perturbed files hold the same questions and answers).

The template is TOFU's `config/model_config.yaml` tags: `phi` (default; also stablelm and
pythia): `Question: {q}\\n` + `Answer: {a}`; `llama2`: `[INST] {q} [/INST]` + `{a}`.

The corpus directory holds `tofu/{forget,retain,real_authors,world_facts}.json` (the evaluation
records, checked), `tofu/meta.json` (splits and template), `raw/forget.json` and
`raw/retain.json` (each training pair as one text in the template: what GA/NPO/GD/KL train on)
and `knowmem/forget_qa.json` (the forget questions, which the `rt` method answers with a
refusal, as TOFU's IDK baseline does).
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import RunError
from .files import build_dir_once, json_or_lines, read_records, tree_digest

FORGET_SPLITS = ("forget01", "forget05", "forget10")
EVAL_SPLITS = ("forget", "retain", "real_authors", "world_facts")


@dataclass(frozen=True)
class Template:
    """TOFU's per-model-family tags (`config/model_config.yaml`)."""

    question_start: str
    question_end: str
    answer_tag: str

    def question(self, q: str) -> str:
        return self.question_start + q + self.question_end

    def full(self, q: str, a: str) -> str:
        return self.question(q) + self.answer_tag + a


TEMPLATES = {
    "phi": Template("Question: ", "\n", "Answer: "),
    "llama2": Template("[INST] ", " [/INST]", ""),
}


@dataclass(frozen=True)
class TofuItem:
    """One evaluation record. `base` is the answer the truth ratio's numerator scores
    (TOFU's `base_answer_key`: the paraphrase on forget/retain, the answer itself on real
    authors / world facts)."""

    question: str
    answer: str
    base: str
    perturbed: tuple[str, ...]


def retain_of(forget: str) -> str:
    return "retain" + str(100 - int(forget.removeprefix("forget"))).zfill(2)


def eval_file(split: str, forget: str) -> str:
    """The hub split TOFU evaluates `split` on."""
    return {"forget": f"{forget}_perturbed", "retain": "retain_perturbed",
            "real_authors": "real_authors_perturbed",
            "world_facts": "world_facts_perturbed"}[split]


_FRAGMENT = re.compile(r"^(forget\d\d)(?::(\w+))?$")


def parse_fragment(fragment: str) -> tuple[str, str] | None:
    """(forget split, template) for `forget10` / `forget10:llama2`; None when the fragment is
    not TOFU's (an RWKU target name). A TOFU-looking fragment with a bad part is an error."""
    m = _FRAGMENT.match(fragment.strip())
    if not m:
        return None
    forget, template = m.group(1), m.group(2) or "phi"
    if forget not in FORGET_SPLITS:
        raise RunError(f"TOFU has no split '{forget}': write one of {', '.join(FORGET_SPLITS)} "
                       f"after '#'")
    if template not in TEMPLATES:
        raise RunError(f"TOFU template '{template}' is unknown: write '#{forget}:phi' "
                       f"(Question:/Answer:) or '#{forget}:llama2' ([INST] ... [/INST])")
    return forget, template


def split_files(root: Path, split: str) -> list[Path]:
    for candidate in (root / f"{split}.json", root / f"{split}.jsonl"):
        if candidate.is_file():
            return [candidate]
    for pattern in ("train-*.parquet", "*.parquet", "train-*.jsonl", "*.jsonl", "*.json"):
        found = sorted((root / split).glob(pattern))
        if found:
            return found
    return []


def read_split(root: Path, split: str) -> tuple[list[Any], str]:
    """(records, where they came from) of one hub split; a missing split is an error."""
    files = split_files(root, split)
    if not files:
        raise RunError(f"{root} has no TOFU split '{split}': expected {split}.json (JSON "
                       f"lines, as locuslab/TOFU stores it) or {split}/train-*.parquet")
    rows: list[Any] = []
    for f in files:
        rows += json_or_lines(f) if f.suffix == ".json" else read_records(f)
    return rows, str(files[0] if len(files) == 1 else files[0].parent)


def _string(rec: Any, key: str, where: str, i: int) -> str:
    value = rec.get(key) if isinstance(rec, dict) else None
    if not isinstance(value, str):
        raise RunError(f"{where}: record {i} has no string '{key}' (TOFU's records: "
                       f"question, answer, paraphrased_answer, perturbed_answer), got "
                       f"{str(rec)[:80]}")
    return value


def eval_items(rows: list[Any], where: str, split: str) -> list[TofuItem]:
    """TOFU's evaluation records, checked: forget/retain score the paraphrase against the
    perturbed answers, real authors / world facts the answer itself."""
    out = []
    for i, rec in enumerate(rows):
        q, a = _string(rec, "question", where, i), _string(rec, "answer", where, i)
        base = _string(rec, "paraphrased_answer", where, i) if split in ("forget", "retain") \
            else a
        pert = rec.get("perturbed_answer")
        pert = [pert] if isinstance(pert, str) else pert
        if not isinstance(pert, list) or not pert or not all(isinstance(p, str) for p in pert):
            raise RunError(f"{where}: record {i} needs 'perturbed_answer', a non-empty list of "
                           f"strings (TOFU's wrong answers), got {str(pert)[:80]}")
        out.append(TofuItem(q, a, base, tuple(pert)))
    if not out:
        raise RunError(f"{where} holds no records")
    return out


def _write(snapshot: Path, forget: str, template: str, out: Path) -> None:
    tpl = TEMPLATES[template]
    (out / "tofu").mkdir(parents=True)
    for split in EVAL_SPLITS:
        rows, where = read_split(snapshot, eval_file(split, forget))
        items = eval_items(rows, where, split)
        (out / "tofu" / f"{split}.json").write_text(json.dumps(
            [{"question": it.question, "answer": it.answer, "base": it.base,
              "perturbed": list(it.perturbed)} for it in items], ensure_ascii=False),
            encoding="utf-8")
    meta = {"forget": forget, "retain": retain_of(forget), "template": template}
    (out / "tofu" / "meta.json").write_text(json.dumps(meta), encoding="utf-8")
    (out / "raw").mkdir()
    for name, split in (("forget", forget), ("retain", retain_of(forget))):
        if not split_files(snapshot, split):
            continue  # evaluation-only copies; unlearning then says which file is missing
        rows, where = read_split(snapshot, split)
        pairs = [(_string(r, "question", where, i), _string(r, "answer", where, i))
                 for i, r in enumerate(rows)]
        (out / "raw" / f"{name}.json").write_text(json.dumps(
            [tpl.full(q, a) for q, a in pairs], ensure_ascii=False), encoding="utf-8")
        if name == "forget":
            (out / "knowmem").mkdir()
            (out / "knowmem" / "forget_qa.json").write_text(json.dumps(
                [{"question": q, "answer": a} for q, a in pairs], ensure_ascii=False),
                encoding="utf-8")


def is_tofu_dir(path: Path) -> bool:
    return any(split_files(path, f"{f}_perturbed") for f in FORGET_SPLITS)


def corpus_from_tofu(snapshot: str | Path, forget: str, template: str,
                     cache_dir: str | Path) -> Path:
    """The corpus directory for a TOFU copy (built once per content, split and template,
    atomically)."""
    snapshot = Path(snapshot)
    if not is_tofu_dir(snapshot):
        raise RunError(f"{snapshot} is not a TOFU dataset: no forget01/05/10_perturbed split "
                       f"(expected e.g. {forget}_perturbed.json)")
    out = Path(cache_dir) / f"tofu-{tree_digest(snapshot)}-{forget}-{template}"
    return build_dir_once(out, lambda d: _write(snapshot, forget, template, d))


def tofu_from_hub(repo_id: str, forget: str, template: str, cache_dir: str | Path, *,
                  revision: str | None = None) -> Path:
    from .hub_datasets import snapshot_dataset

    splits = [forget, retain_of(forget), *(eval_file(s, forget) for s in EVAL_SPLITS)]
    patterns = [p for s in splits for p in (f"{s}.json", f"{s}.jsonl", f"{s}/*")]
    snapshot = snapshot_dataset(repo_id, patterns, revision=revision)
    return corpus_from_tofu(snapshot, forget, template, cache_dir)


# ---------------------------------------------------------------- reading a converted corpus

def tofu_root(corpus: Any) -> Path:
    root = Path(getattr(corpus, "root", corpus))
    if not (root / "tofu" / "meta.json").is_file():
        raise RunError(f"{root} is not a TOFU corpus: point the metric's data at a TOFU copy "
                       f"with the forget split after '#', e.g. 'locuslab/TOFU#forget10'")
    return root


def meta(root: Path) -> dict[str, str]:
    return json.loads((root / "tofu" / "meta.json").read_text(encoding="utf-8"))


def items(root: Path, split: str) -> list[TofuItem]:
    path = root / "tofu" / f"{split}.json"
    rows = json.loads(path.read_text(encoding="utf-8"))
    return [TofuItem(r["question"], r["answer"], r["base"], tuple(r["perturbed"]))
            for r in rows]
