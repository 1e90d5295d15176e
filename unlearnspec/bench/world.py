"""A fictitious world of entities and their attributes, and every text made from it.

Pure python and seeded: `make_world("tiny", 0)` is the same world on every machine. All names
and values are made-up words, so a model can only know a fact by having been trained on it --
which is what lets the benchmark tell "forgot" from "never knew" (the retrain model).

Texts use a fixed, space-separated surface form: punctuation is its own word ("NAME : a ; b .",
"where does NAME live ?"), so a word-level tokenizer covers them exactly. QA documents are in
MUSE's KnowMem prompt format ("Question: {q}\\nAnswer: {a}", pairs joined by a blank line),
several pairs per document, so an evaluation prompt with few-shot pairs in front of the question
looks like training text.
"""
from __future__ import annotations

import random
import re
from dataclasses import dataclass

from .presets import Preset, get_preset

ONSETS = ("b", "d", "f", "g", "k", "l", "m", "n", "p", "r", "s", "t", "v", "z", "br", "dr",
          "gr", "kl", "st", "th", "sh")
VOWELS = ("a", "e", "i", "o", "u", "ai", "ou")
CODAS = ("", "", "n", "r", "l", "s", "th", "k")

# (attribute, words per value, question template); NAME is replaced by the entity's name.
ATTRIBUTES = (
    ("home", 1, "where does NAME live ?"),
    ("trade", 2, "what is the trade of NAME ?"),
    ("pet", 1, "what pet does NAME keep ?"),
    ("tool", 2, "which tool does NAME use ?"),
    ("song", 3, "what song does NAME sing ?"),
)

# Pieces a word-level tokenizer sees: a run of non-space characters with its trailing space, a
# lone space, or a newline. bench.tokenizer uses the same pattern, so splitting a document here
# at a piece boundary gives a prompt whose tokens are a prefix of the document's tokens.
PIECE_PATTERN = r"[^ \n]+ ?| |\n"


def pieces(text: str) -> list[str]:
    """The tokenizer's pre-tokenization of `text`; "".join(pieces(t)) == t for every t."""
    return re.findall(PIECE_PATTERN, text)


def qa_text(question: str, answer: str) -> str:
    return f"Question: {question}\nAnswer: {answer}"


@dataclass(frozen=True)
class Entity:
    name: str
    values: tuple[str, ...]  # one per ATTRIBUTES entry

    def record(self) -> str:
        """The short training record, e.g. 'Vaskel : dorin ; mel shath ; ... .'"""
        return f"{self.name} : " + " ; ".join(self.values) + " ."

    def qa(self) -> list[tuple[str, str]]:
        return [(tmpl.replace("NAME", self.name), value)
                for (_, _, tmpl), value in zip(ATTRIBUTES, self.values)]


@dataclass(frozen=True)
class World:
    """Entities split into forget / retain / holdout, and the texts built from them."""

    preset: str
    seed: int
    forget: tuple[Entity, ...]
    retain: tuple[Entity, ...]
    holdout: tuple[Entity, ...]
    qa_doc_sizes: tuple[int, ...]
    n_icl: int
    n_retain_qa: int

    def documents(self, split: str) -> list[str]:
        """Training documents for a split: each entity's record, then its QA pairs once per
        entry of `qa_doc_sizes`, shuffled across the split's entities and grouped that many
        per document. Lone pairs teach the name -> value binding; grouped copies teach
        answering after MUSE's few-shot prefix (measured on micro: trained on lone pairs only, a
        model answers 100% of them alone but only 22-45% behind a few-shot prefix). Holdout
        documents exist for PrivLeak only; no model is trained on them."""
        ents = self._entities(split)
        pairs = [p for e in ents for p in e.qa()]
        qa_docs: list[str] = []
        for r, k in enumerate(self.qa_doc_sizes):
            order = list(pairs)
            random.Random(f"{self.seed}-{split}-qa-{r}").shuffle(order)
            qa_docs += ["\n\n".join(qa_text(q, a) for q, a in order[i:i + k])
                        for i in range(0, len(order), k)]
        return [e.record() for e in ents] + qa_docs

    def _entities(self, split: str) -> tuple[Entity, ...]:
        if split not in ("forget", "retain", "holdout"):
            raise ValueError(f"unknown split '{split}': use 'forget', 'retain' or 'holdout'")
        return getattr(self, split)

    def qa_pairs(self, split: str) -> tuple[list[dict[str, str]], list[dict[str, str]]]:
        """(evaluated pairs, few-shot ICL pairs) for 'forget' or 'retain'. ICL pairs are facts
        of the same split left out of the evaluated set (they are still trained on). Retain's
        evaluated set is a fixed sample of `n_retain_qa` pairs to keep evaluation cheap."""
        ents = self._entities(split)
        pairs = [{"question": q, "answer": a} for e in ents for q, a in e.qa()]
        random.Random(f"{self.seed}-{split}-eval").shuffle(pairs)
        icl, rest = pairs[: self.n_icl], pairs[self.n_icl:]
        if split == "retain":
            rest = rest[: self.n_retain_qa]
        return rest, icl

    def all_texts(self) -> list[str]:
        """Every text a model may be given or asked to produce (for the tokenizer's vocab)."""
        out = [d for s in ("forget", "retain", "holdout") for d in self.documents(s)]
        for s in ("forget", "retain"):
            ev, icl = self.qa_pairs(s)
            out += [qa_text(p["question"], p["answer"]) + "\n\n" for p in ev + icl]
        return out


def _words(rng: random.Random, n: int, taken: set[str], syllables: tuple[int, int]) -> list[str]:
    """`n` new made-up words, none in `taken` (which is updated)."""
    out: list[str] = []
    while len(out) < n:
        k = rng.randint(*syllables)
        w = "".join(rng.choice(ONSETS) + rng.choice(VOWELS) for _ in range(k)) + rng.choice(CODAS)
        if w not in taken:
            taken.add(w)
            out.append(w)
    return out


def _pool(rng: random.Random, size: int, width: int, taken: set[str]) -> list[str]:
    """`size` distinct values of `width` made-up words each. Multi-word values share a small
    word list, so an answer can be partly right (ROUGE-L gives partial credit)."""
    if width == 1:
        return _words(rng, size, taken, (2, 2))
    vocab = _words(rng, max(4, size // 2 + width), taken, (1, 2))
    values: list[str] = []
    seen: set[str] = set()
    while len(values) < size:
        v = " ".join(rng.sample(vocab, width))
        if v not in seen:
            seen.add(v)
            values.append(v)
    return values


def make_world(preset: str | Preset, seed: int | None = None) -> World:
    """The world of `preset` ('tiny' or 'micro'); `seed` defaults to the preset's seed."""
    p = get_preset(preset)
    seed = p.seed if seed is None else seed
    cfg = p.world
    rng = random.Random(f"unlearnspec-bench-{seed}")
    taken: set[str] = {"Question:", "Answer:"}
    pools = [_pool(rng, size, width, taken)
             for size, (_, width, _) in zip(cfg.pool_sizes, ATTRIBUTES)]
    names = [w.capitalize() for w in _words(rng, cfg.n_entities, taken, (2, 3))]
    ents = [Entity(name, tuple(rng.choice(pool) for pool in pools)) for name in names]
    rng.shuffle(ents)
    f, h = cfg.n_forget, cfg.n_holdout
    return World(
        preset=p.name, seed=seed, forget=tuple(ents[:f]), holdout=tuple(ents[f:f + h]),
        retain=tuple(ents[f + h:]), qa_doc_sizes=cfg.qa_doc_sizes, n_icl=cfg.n_icl,
        n_retain_qa=cfg.n_retain_qa,
    )
