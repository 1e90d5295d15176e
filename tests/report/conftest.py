"""Hand-built plugin records for the report tests: the paper's Table 1 picture in miniature.

target and retrain (references) and three unlearned subjects, each measured at full
precision, rtn8 and rtn4; a weight-space metric with per-layer numbers; claims that pass,
fail, xfail, and one that could not be evaluated. Built by hand so the report tests run in
milliseconds; the values are shaped like the paper's (recovery under 4-bit, not 8-bit).
"""
from __future__ import annotations

import copy
import hashlib
from typing import Any

import pytest
from report_helpers import coverage

SUBJECTS = ("ga_klr", "npo_klr", "npo_klr_sure")
TRANSFORMS = {
    "rtn8": {"kind": "rtn", "config": {"bits": 8, "group_size": None, "grid": "symmetric",
                                       "zero_point": False, "modules": "decoder"},
             "settings": None},
    "rtn4": {"kind": "rtn", "config": {"bits": 4, "group_size": None, "grid": "symmetric",
                                       "zero_point": False, "modules": "decoder"},
             "settings": None},
}
KNOWMEM = {  # (model, transform) -> knowmem_forget
    ("target", "fp"): 60.2, ("target", "rtn8"): 58.9, ("target", "rtn4"): 52.0,
    ("retrain", "fp"): 4.1,
    ("ga_klr", "fp"): 3.0, ("ga_klr", "rtn8"): 3.4, ("ga_klr", "rtn4"): 100.0,
    ("npo_klr", "fp"): 2.5, ("npo_klr", "rtn8"): 2.9, ("npo_klr", "rtn4"): 55.5,
    ("npo_klr_sure", "fp"): 1.0, ("npo_klr_sure", "rtn8"): 1.2, ("npo_klr_sure", "rtn4"): 2.0,
}
VERBMEM = {k: round(v * 0.8 + 1, 3) for k, v in KNOWMEM.items()}
FLIPS = {("ga_klr", "rtn4"): 0.004, ("npo_klr", "rtn4"): 0.006, ("npo_klr_sure", "rtn4"): 0.21}
LAYERS = ("model.layers.0.self_attn.q_proj.weight", "model.layers.1.mlp.up_proj.weight",
          "model.layers.10.mlp.down_proj.weight")


def key(*parts: str) -> str:
    return hashlib.sha256("/".join(parts).encode()).hexdigest()[:32]


def label(metric: str, model: str, transform: str) -> str:
    return f"{metric}[{model}]" if transform == "fp" else f"{metric}[{model} @ {transform}]"


def measurement(metric: str, model: str, transform: str) -> dict[str, Any]:
    kind = {"knowmem_forget": "knowmem", "verbmem_forget": "verbmem",
            "code_flip_rate": "code_flip_rate"}[metric]
    if metric == "code_flip_rate":
        value = FLIPS[(model, transform)]
        per_layer = {name: {"flip_rate": round(value * (i + 1) / 2, 6), "n": 4096}
                     for i, name in enumerate(LAYERS)}
        result = {"value": value, "n": 3 * 4096, "per_sample": [],
                  "details": {"per_layer": per_layer, "reference": "target"}}
    else:
        value = (KNOWMEM if metric == "knowmem_forget" else VERBMEM)[(model, transform)]
        per_sample = [round(value + d, 3) for d in (-1.0, 0.0, 1.0)]
        result = {"value": value, "n": 3, "per_sample": per_sample, "details": {}}
    return {"metric": metric, "kind": kind, "model": model, "transform": transform,
            "key": key(metric, model, transform), "result": result,
            "coverage": None if transform == "fp" else coverage(
                "stream" if metric == "code_flip_rate" else "model")}


def models() -> dict[str, Any]:
    out = {name: {"key": key(name), "source": "builtin", "builtin": f"tiny/{name}-qat",
                  "path": None, "revision": None, "method": None, "from": None,
                  "config": {}, "log": None} for name in ("target", "retrain")}
    for s in SUBJECTS:
        out[s] = {"key": key(s), "source": "unlearn", "builtin": None, "path": None,
                  "revision": None, "method": s, "from": "target",
                  "config": {"lr": 1e-5, "epochs": 2}, "log": {"steps": 10}}
    return out


def record(claim: str, subject: str, assert_: str, cells: list[tuple[str, str, str]], *,
           outcome: str, lhs: float | None, rhs: float | None, line: int,
           xfail: str | None = None) -> dict[str, Any]:
    meas = {label(*c): measurement(*c) for c in cells}
    verdict = None
    if lhs is not None and rhs is not None:
        passed = lhs <= rhs if "<=" in assert_ else lhs >= rhs
        margin = rhs - lhs if "<=" in assert_ else lhs - rhs
        used = [label(*c) for c in cells[:2]]
        op = "<=" if "<=" in assert_ else ">="
        shown = op if passed else {"<=": ">", ">=": "<"}[op]
        explanation = (f"{used[0]} = {lhs:.1f}  {shown}  {used[1]} + 5 = {rhs:.1f}  "
                       f"(margin {margin:.1f})\n" + "\n".join(
                           f"  {lab} = {m['result']['value']}" for lab, m in meas.items()))
        verdict = {"passed": passed, "lhs": lhs, "rhs": rhs, "margin": margin,
                   "explanation": explanation}
    return {"nodeid": f"specs/tiny.yaml::{claim}[{subject}]", "outcome": outcome,
            "claim": claim, "subject": subject, "assert": assert_,
            "spec": "/abs/specs/tiny.yaml", "line": line, "xfail": xfail, "verdict": verdict,
            "measurements": meas, "models": models(), "transforms": copy.deepcopy(TRANSFORMS),
            "counts": {"measured": len(cells), "unlearned": 1}}


def build_records() -> list[dict[str, Any]]:
    out = []
    for s in SUBJECTS:
        lhs, rhs = KNOWMEM[(s, "rtn4")], KNOWMEM[("retrain", "fp")] + 5
        out.append(record(
            "no-recovery-rtn4", s, "knowmem_forget @ rtn4 <= retrain + 5",
            [("knowmem_forget", s, "rtn4"), ("knowmem_forget", "retrain", "fp"),
             ("knowmem_forget", s, "fp")],
            outcome="passed" if lhs <= rhs else "failed", lhs=lhs, rhs=rhs, line=31))
        lhs8 = KNOWMEM[(s, "rtn8")]
        out.append(record(
            "no-recovery-rtn8", s, "knowmem_forget @ rtn8 <= retrain + 5",
            [("knowmem_forget", s, "rtn8"), ("knowmem_forget", "retrain", "fp"),
             ("knowmem_forget", s, "fp")],
            outcome="passed", lhs=lhs8, rhs=rhs, line=35))
        out.append(record(
            "verbmem-rtn4", s, "verbmem_forget @ rtn4 <= retrain + 5",
            [("verbmem_forget", s, "rtn4"), ("verbmem_forget", "retrain", "fp"),
             ("verbmem_forget", s, "fp"), ("verbmem_forget", s, "rtn8"),
             ("verbmem_forget", "target", "fp"), ("verbmem_forget", "target", "rtn8"),
             ("verbmem_forget", "target", "rtn4"), ("knowmem_forget", "target", "fp"),
             ("knowmem_forget", "target", "rtn8"), ("knowmem_forget", "target", "rtn4")],
            outcome="passed" if VERBMEM[(s, "rtn4")] <= VERBMEM[("retrain", "fp")] + 5
            else "failed", lhs=VERBMEM[(s, "rtn4")], rhs=VERBMEM[("retrain", "fp")] + 5,
            line=40))
    out.append(record(  # expected to fail: the paper's flip rate is tiny for GA_KLR
        "many-flips", "ga_klr", "code_flip_rate @ rtn4 >= 0.01",
        [("code_flip_rate", "ga_klr", "rtn4"), ("code_flip_rate", "npo_klr_sure", "rtn4")],
        outcome="xfailed", lhs=0.004, rhs=0.01, line=44, xfail="GA moves weights too little"))
    out.append(record(
        "many-flips", "npo_klr_sure", "code_flip_rate @ rtn4 >= 0.01",
        [("code_flip_rate", "npo_klr_sure", "rtn4"), ("code_flip_rate", "npo_klr", "rtn4")],
        outcome="passed", lhs=0.21, rhs=0.01, line=44))
    # could not be evaluated: a metric came back NaN, so no verdict
    err = record("many-flips", "npo_klr", "code_flip_rate @ rtn4 >= 0.01",
                 [("code_flip_rate", "npo_klr", "rtn4")], outcome="failed", lhs=None,
                 rhs=None, line=44)
    out.append(err)
    return out


@pytest.fixture
def records() -> list[dict[str, Any]]:
    return build_records()


@pytest.fixture(scope="session")
def make_records():
    """A fresh copy each call (tests and hypothesis examples mutate them)."""
    return build_records
