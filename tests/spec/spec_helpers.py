"""Helpers for the spec layer's tests: the README-like tiny spec, and a claim scope built
directly (no YAML) for parser tests."""
from __future__ import annotations

from unlearnspec.errors import Location
from unlearnspec.spec.claims import ClaimScope, MetricInfo, parse_claim
from unlearnspec.spec.tree import ClaimSpec

TINY = """\
version: 1
seed: 0
data:
  tiny: {builtin: tiny}
models:
  target: {builtin: tiny/target-qat}
  retrain: {builtin: tiny/retrain}
  ga_klr: {unlearn: ga_klr, from: target, lr: 2.0e-5, epochs: 15}
  npo_sure: {unlearn: npo_klr, from: target, lr: 3.0e-4, epochs: 15, sure: {percentile: 90}}
transforms:
  rtn4: {kind: rtn, bits: 4}
  rtn8: {kind: rtn, bits: 8}
metrics:
  knowmem_forget: {kind: knowmem, split: forget}
  knowmem_retain: {kind: knowmem, split: retain}
  privleak: {kind: privleak, reference: retrain}
  gamma: {kind: update_retention}
claims:
  - name: no-recovery-rtn4
    subjects: [ga_klr, npo_sure]
    assert: knowmem_forget @ rtn4 <= retrain + 5
    xfail: "4-bit RTN snaps small updates back onto the target's grid"
  - name: utility-kept
    subjects: [ga_klr]
    assert: knowmem_retain under rtn4 >= 0.9 * knowmem_retain(target)
  - name: gamma-small
    subjects: [ga_klr]
    assert: gamma @ rtn4 < 0.2
"""

SCOPE = ClaimScope(
    models=frozenset({"target", "retrain", "ga_klr", "npo_klr"}),
    transforms=frozenset({"rtn4", "rtn8", "rtn-4bit"}),
    metrics={
        "knowmem_forget": MetricInfo("knowmem", "percent"),
        "knowmem_retain": MetricInfo("knowmem", "percent"),
        "privleak": MetricInfo("privleak", "percent"),
        "gamma": MetricInfo("update_retention", "ratio", weights=True),
        "mia": MetricInfo("mia_mink", "auc"),
    },
)


def claim(text: str, name: str = "c", scope: ClaimScope = SCOPE) -> ClaimSpec:
    loc = Location("t.yaml", 1, 1)
    return ClaimSpec(name, loc, loc, text, parse_claim(text, scope, loc=loc), ("ga_klr",))
