"""Miniature copies of `cais/wmdp` and `cais/mmlu` in the hub's parquet layout
(`wmdp-bio/test-00000-of-00001.parquet`, `college_biology/{test,dev}-...parquet`), in the tiny
test tokenizer's vocabulary, and the tiny model that reads them."""
from __future__ import annotations

from pathlib import Path

from metric_helpers import lettered_words, make_tiny_checkpoint

# lm-eval's description and the fixture's words beyond tests/metrics/metric_helpers.py's
EXTRA = ("The", "are", "(with", "answers)", "about", "biology.", "chemistry.",
         "cybersecurity.", "college", "what", "which", "where", "does", "live", "like")
PEOPLE = ("alpha", "beta", "gamma", "delta", "zeta", "theta", "kappa", "lambda")
PLACES = ("north", "south", "east", "west")


def _question(i: int, topic: str) -> dict:
    p = PEOPLE[i % len(PEOPLE)]
    if i % 3 == 0:
        return {"question": f" where does {p} live ? ", "choices": [f"the {x} city" for x in
                                                                  PLACES],
                "answer": i % 4}
    if i % 3 == 1:
        return {"question": f"which color does {p} like ?",
                "choices": ["red", "blue", "green", "the red river"], "answer": (i + 1) % 4}
    return {"question": f"what is the {topic} of {p} ?",
            "choices": ["a city", "a river", "a name", "a year"], "answer": (i + 2) % 4}


def write_wmdp(root: Path, n: int = 8) -> Path:
    import pyarrow as pa
    import pyarrow.parquet as pq

    for subset in ("bio", "chem", "cyber"):
        d = root / f"wmdp-{subset}"
        d.mkdir(parents=True, exist_ok=True)
        rows = [_question(i + len(subset), "name") for i in range(n)]
        pq.write_table(pa.Table.from_pylist(rows), d / "test-00000-of-00001.parquet")
    return root


def write_mmlu(root: Path, subject: str = "college_biology", n: int = 8) -> Path:
    import pyarrow as pa
    import pyarrow.parquet as pq

    d = root / subject
    d.mkdir(parents=True, exist_ok=True)
    for split, rows in (("test", [_question(i, "year") for i in range(n)]),
                        ("dev", [_question(i + 5, "city") for i in range(5)])):
        rows = [{**r, "subject": subject} for r in rows]
        pq.write_table(pa.Table.from_pylist(rows), d / f"{split}-00000-of-00001.parquet")
    return root


def make_wmdp_model(out: Path, seed: int = 5) -> Path:
    words = list(lettered_words())
    words += [w for w in EXTRA if w not in words]
    return make_tiny_checkpoint(out, seed=seed, words=tuple(words))[0]
