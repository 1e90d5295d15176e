"""A miniature of MUSE for the 7B specs: a corpus directory in MUSE's layout (a few records
per file) and a rewrite of `specs/books.yaml` / `specs/news.yaml` that points their hub ids
at local paths and shrinks training and generation so that a run takes seconds on a CPU.

Why a rewrite and not a second spec: the shipped specs are what users run on GPUs; a test
that ran a hand-written look-alike would not notice when the real files stop loading or
name a method, transform or metric the code no longer accepts. Every hub id in the spec
must be mapped, so a test can never fall through to the network.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Mapping

import yaml

ROOT = Path(__file__).resolve().parents[2]
SPECS = {"books": ROOT / "specs" / "books.yaml", "news": ROOT / "specs" / "news.yaml"}

# words of the tiny checkpoint's word-level vocabulary (tests/conftest.py), so that the
# miniature texts tokenize into real ids rather than <unk>
NAMES = ("alpha", "beta", "gamma", "delta", "zeta", "theta", "kappa", "lambda", "sigma", "omega")
PLACES = ("north", "south", "east", "west")
COLORS = ("red", "blue", "green")
VERBS = ("lives", "works", "likes", "owns")


def _fact(i: int) -> tuple[str, str, str]:
    """(sentence, question, answer) number i, from the tiny vocabulary."""
    name, place = NAMES[i % len(NAMES)], PLACES[i % len(PLACES)]
    color, verb = COLORS[i % len(COLORS)], VERBS[i % len(VERBS)]
    sentence = f"{name} {verb} in the {place} city and likes the color {color} ."
    return sentence, f"{name} {verb} in the ?", f"{place} city"


def write_muse_corpus(root: Path, *, n: int = 4) -> Path:
    """Write a MUSE-layout corpus with `n` records per file (facts 0..n-1 are the forget
    split, n..2n-1 retain, 2n..3n-1 holdout, so the splits share no sentence)."""
    forget = [_fact(i) for i in range(n)]
    retain = [_fact(i) for i in range(n, 2 * n)]
    holdout = [_fact(i) for i in range(2 * n, 3 * n)]

    def doc(facts: list[tuple[str, str, str]], k: int) -> str:
        return " ".join(f[0] for f in facts[k:] + facts[:k])

    files: dict[str, Any] = {
        "raw/forget.json": [doc(forget, k) for k in range(n)],
        "raw/retain.json": [doc(retain, k) for k in range(n)],
        "raw/holdout.json": [doc(holdout, k) for k in range(n)],
        "verbmem/forget.json": [{"prompt": " ".join(s.split()[:4]), "gt": " ".join(s.split()[4:])}
                                for s, _, _ in forget],
        "knowmem/forget_qa.json": [{"question": q, "answer": a} for _, q, a in forget],
        "knowmem/retain_qa.json": [{"question": q, "answer": a} for _, q, a in retain],
        "knowmem/forget_qa_icl.json": [{"question": q, "answer": a} for _, q, a in forget[:2]],
        "knowmem/retain_qa_icl.json": [{"question": q, "answer": a} for _, q, a in retain[:2]],
        "privleak/forget.json": [s for s, _, _ in forget],
        "privleak/retain.json": [s for s, _, _ in retain],
        "privleak/holdout.json": [s for s, _, _ in holdout],
    }
    for rel, data in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(data), encoding="utf-8")
    return root


def hub_ids(spec: Mapping[str, Any]) -> set[str]:
    """Every `path:` of the spec's data and models (the hub ids of the shipped specs)."""
    entries = list((spec.get("data") or {}).values()) + list((spec.get("models") or {}).values())
    return {e["path"] for e in entries if isinstance(e, dict) and "path" in e}


def miniature_spec(source: Path, out: Path, *, paths: Mapping[str, Path], epochs: float = 1,
                   max_length: int = 32, max_new_tokens: int = 8,
                   group_size: int = 16) -> Path:
    """Write to `out` a copy of spec `source` whose `path:` hub ids are replaced by
    `paths[hub_id]` (absolute local paths; `revision:` dropped, it pins hub files only), with
    unlearning cut to `epochs` over `max_length`-token chunks in batches of 2, generation
    cut to `max_new_tokens`, and quantization groups of `group_size` inputs (it must divide
    the miniature model's layer widths). Learning rates, alphas, SURE percentiles and claims
    are kept: those are what the test is about. Raises KeyError naming any unmapped id."""
    spec = yaml.safe_load(source.read_text(encoding="utf-8"))
    missing = sorted(hub_ids(spec) - set(paths))
    if missing:
        raise KeyError(f"no local path given for {', '.join(missing)}")
    for section in ("data", "models"):
        for entry in (spec.get(section) or {}).values():
            if "path" in entry:
                entry["path"] = str(Path(paths[entry["path"]]).resolve())
                entry.pop("revision", None)
            if "unlearn" in entry:
                entry.update(epochs=epochs, batch_size=2, grad_accum=1, max_length=max_length)
    for entry in (spec.get("metrics") or {}).values():
        if entry.get("kind") in ("verbmem", "knowmem"):
            entry["max_new_tokens"] = max_new_tokens
    for entry in (spec.get("transforms") or {}).values():
        # the 7B group of 128 inputs does not divide a tiny model's 32-wide layers
        if entry.get("group_size"):
            entry["group_size"] = group_size
        if entry.get("kind") in ("gptq", "awq"):
            entry.update(n_samples=4, seq_len=max_length)
            if entry.get("calibration_path"):  # the copy lives elsewhere: keep the file
                entry["calibration_path"] = str((source.parent / entry["calibration_path"])
                                                .resolve())
    # a tiny model on a CPU: small fixed batches keep the run quick and deterministic
    spec["settings"] = {**spec.get("settings", {}), "device": "cpu", "batch_size": 8}
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(yaml.safe_dump(spec, sort_keys=False), encoding="utf-8")
    return out
