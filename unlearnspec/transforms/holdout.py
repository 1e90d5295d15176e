"""The forget set's held-out part a relearning attack trains on, and the corpus view that keeps
it out of every metric of a claim that uses that attack. Torch-free.

Relearning on facts and then asking for the same facts measures re-memorisation, not recovery.
So `data: forget_holdout` draws a seeded part of the forget set's KnowMem QA pairs
(`knowmem/forget_qa.json`), relearns on them, and every metric of a claim that names the
attack — the subject's own fp number, `retrain`, `target` included — is measured on the
remaining pairs only: the comparison stays like for like.

The unit is the QA pair, not the raw forget document, because the exclusion must be exact: a
MUSE corpus (and the embedded benchmark, whose QA documents mix facts of every forget entity)
has no map from a forget document to the questions about it. A metric that reads any other
forget-split data (VerbMem's passages, PrivLeak's forget documents, the raw forget texts)
cannot honour the exclusion and is an error under such a claim, never a full-set number.
"""
from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Any, Sequence

from ..data.muse import Corpus
from ..errors import RunError


def holdout_count(n: int, holdout: float) -> int:
    """How many of `n` pairs to hold out: a fraction (rounded, at least 1) or a count."""
    k = round(n * holdout) if holdout < 1 else int(holdout)
    return max(1, k)


def holdout_indices(n: int, holdout: float, seed: int) -> list[int]:
    """Sorted indices of the held-out pairs among `n`, drawn under `seed` (stable across
    machines and Python versions: `random.Random` with a string seed)."""
    k = holdout_count(n, holdout)
    if k >= n:
        raise RunError(f"holdout {holdout:g} takes {k} of the forget set's {n} QA pairs, "
                       f"leaving none to measure: hold out fewer (e.g. holdout: 0.5)")
    order = list(range(n))
    random.Random(f"forget-holdout-{seed}").shuffle(order)
    return sorted(order[:k])


def held_out_pairs(corpus: Corpus, holdout: float, seed: int) -> list[dict[str, str]]:
    """The forget QA pairs a `forget_holdout` relearning trains on."""
    records = corpus.knowmem("forget")
    if not records:
        raise RunError(f"{corpus.root / 'knowmem' / 'forget_qa.json'} holds no QA pairs, so "
                       f"relearning has no forget_holdout to train on")
    return [records[i] for i in holdout_indices(len(records), holdout, seed)]


def relearn_texts(pairs: Sequence[dict[str, str]]) -> list[str]:
    """The training texts of held-out pairs, in KnowMem's (and the benchmark's) QA format."""
    return [f"Question: {p['question']}\nAnswer: {p['answer']}" for p in pairs]


def pair_key(record: dict[str, str]) -> tuple[str, str]:
    return record["question"], record["answer"]


@dataclass(frozen=True)
class HeldOutCorpus(Corpus):
    """`corpus` without the held-out forget QA pairs of the relearning transforms `owners`.
    Reading any other forget-split data is an error: it would include what was relearned."""

    excluded: frozenset[tuple[str, str]] = frozenset()
    owners: tuple[str, ...] = ()

    def _refuse(self, what: str) -> Any:
        names = ", ".join(f"'{o}'" for o in self.owners)
        raise RunError(f"this claim uses the relearning transform {names} (data: "
                       f"forget_holdout), whose held-out forget QA pairs must be excluded from "
                       f"every metric of the claim; a metric reading {what} cannot exclude "
                       f"them. Measure knowmem on the forget split (or a retain metric) in "
                       f"this claim, or relearn on data: retain / {{path: FILE}}")

    def knowmem(self, split: str = "forget") -> list[dict[str, str]]:
        records = super().knowmem(split)
        if split != "forget":
            return records
        kept = [r for r in records if pair_key(r) not in self.excluded]
        if not kept:
            raise RunError(f"excluding the held-out pairs of {', '.join(self.owners)} leaves "
                           f"no forget QA pair to measure")
        return kept

    def verbmem(self, split: str = "forget") -> list[dict[str, str]]:
        return self._refuse(f"the {split} VerbMem passages") if split == "forget" \
            else super().verbmem(split)

    def privleak(self, split: str) -> list[str]:
        return self._refuse("PrivLeak's forget documents") if split == "forget" \
            else super().privleak(split)

    def raw_with_files(self, split: str) -> tuple[list[str], tuple[str, ...]]:
        return self._refuse("the raw forget texts") if split == "forget" \
            else super().raw_with_files(split)
