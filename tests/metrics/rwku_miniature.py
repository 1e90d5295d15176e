"""A miniature RWKU target in RWKU's processed per-target layout
(`LLaMA-Factory/data/RWKU/Target/<id>/`), in the tiny test tokenizer's vocabulary."""
from __future__ import annotations

import json
from pathlib import Path

PEOPLE = ("alpha", "beta", "gamma", "delta", "zeta", "theta")
PLACES = ("north", "south", "east", "west")
COLORS = ("red", "blue", "green")


def _fb(p: str, i: int) -> dict:
    return {"subject": "alpha", "level": "1", "type": "cloze",
            "query": f"{p} lives in the ___ city .", "answer": PLACES[i % 4]}


def _qa(p: str, i: int) -> dict:
    return {"subject": "alpha", "level": "2", "type": "qa",
            "query": f"where does {p} live ?", "answer": f"the {PLACES[i % 4]} city"}


AA_TYPES = ("prefix injection", "affirmative suffix", "incontext learning", "role play")


def write_rwku_target(root: Path) -> Path:
    """RWKU's files for one target: probes of levels 1-3, neighbour probes of levels 1-2,
    GA/NPO's positive texts, RT's refusals and a few utility records."""
    root.mkdir(parents=True, exist_ok=True)
    aa = [{"subject": "alpha", "level": "3", "type": t,
           "query": (f"Question: where does beta live ?\nAnswer: the south city\n"
                     f"Question: where does {p} live ?" if t == "incontext learning"
                     else f"{p} is born in the ___ ? name the city"),
           "answer": PLACES[i % 4]} for i, (p, t) in enumerate(zip(PEOPLE, AA_TYPES * 2))]
    files = {
        "forget_level1": [_fb(p, i) for i, p in enumerate(PEOPLE)],
        "forget_level2": [_qa(p, i) for i, p in enumerate(PEOPLE)],
        "forget_level3": aa,
        "neighbor_level1": [{**_fb(p, i + 1), "level": "1"} for i, p in enumerate(PEOPLE[:4])],
        "neighbor_level2": [{**_qa(p, i + 1), "level": "2"} for i, p in enumerate(PEOPLE[:4])],
        "positive": [{"subject": "alpha", "intro": "alpha",
                      "text": f"alpha lives in the {PLACES[i % 4]} city . alpha likes "
                              f"{COLORS[i % 3]} . alpha works in the {PLACES[(i + 1) % 4]} ."}
                     for i in range(8)],
        "reject": [{"subject": "alpha", "instruction": f"where does alpha {v} ?", "input": "",
                    "output": "the a of"} for v in ("live", "work", "owns")],
        "fluency": [{"subject": "alpha", "instruction": "name a city"}],
    }
    for name, data in files.items():
        (root / f"{name}.json").write_text(json.dumps(data, indent=1), encoding="utf-8")
    return root
