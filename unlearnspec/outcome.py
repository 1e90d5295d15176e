"""One claim item's outcome, computed once and shown by each face.

`claim_outcome(run, claim, subject)` decides the claim, explains it (the full-precision twin
of every transformed term included) and builds the report record; the pytest item and
`unlearnspec run` both render that frozen `Outcome`, so the two faces cannot disagree about a
verdict or its explanation (the way pytest's `skipping.py` evaluates an `Xfail` once and its
hooks only read it). Torch-free: the engine is imported by the caller that builds the `Run`.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from .errors import UnlearnSpecError

if TYPE_CHECKING:
    from .engine.measurement import Measurement
    from .engine.run import Run
    from .spec.evaluate import Verdict
    from .spec.tree import ClaimSpec, MetricRef

Status = Literal["pass", "fail", "inconclusive", "error", "xfail", "xpass"]
# the work a session reports, in the order of the "computed" line
WORK = ("trained", "unlearned", "relearned", "transformed", "measured")
# what an inconclusive claim does to the run (docs/report.md, "Inconclusive claims and CI")
INCONCLUSIVE_POLICIES = ("fail", "pass", "distinct")
EXIT_INCONCLUSIVE = 6  # `distinct`: the only claims that did not pass are inconclusive


@dataclass(frozen=True)
class Outcome:
    """What one claim × subject came to. `status` is the claim's own (pytest's item outcome
    may still differ: an inconclusive claim passes under --unlearn-inconclusive=pass);
    `explanation` is the verdict's explanation, or for an error the error's message; `record`
    is what the reports keep (docs/report.md); `error` the exception that stopped the claim."""

    claim: "ClaimSpec"
    subject: str
    status: Status
    explanation: str
    record: dict[str, Any]
    verdict: "Verdict | None" = None
    error: Exception | None = None

    @property
    def name(self) -> str:
        return f"{self.claim.name}[{self.subject}]"

    def failure_text(self) -> str:
        """The claim, where it is written and why it did not pass: pytest's failure text."""
        c = self.claim
        if self.error is not None:
            return error_text(c, self.subject, self.error)
        how = "is inconclusive" if self.status == "inconclusive" else "failed"
        return f"claim '{c.name}' ({c.loc}) {how} for {self.subject}:\n    {c.text}\n" \
               f"{self.explanation}"

    def properties(self, prefix: str) -> list[tuple[str, Any]]:
        """JUnit-style properties: each measurement's value, then the margin, the outcome and
        the interval under `prefix` (bookkeeping, not metric values)."""
        props = [(label, m["result"]["value"])
                 for label, m in self.record["measurements"].items()]
        if self.verdict is None:
            return props
        props += [(f"{prefix}margin", self.verdict.margin),
                  (f"{prefix}outcome", self.verdict.outcome)]
        iv = self.record["verdict"]["interval"]
        if iv is not None:
            props.append((f"{prefix}interval", f"[{iv['low']:.6g}, {iv['high']:.6g}] at "
                                               f"{iv['confidence']:g}"))
        return props


def error_text(claim: "ClaimSpec", subject: str, error: BaseException) -> str:
    """Why a claim could not be decided (a metric that could not be computed, a bad file)."""
    return f"claim '{claim.name}' ({claim.loc}) for {subject} could not be evaluated:\n{error}"


def claim_measurements(run: "Run", claim: "ClaimSpec", subject: str) -> list["Measurement"]:
    """What the claim needs for `subject`, and the full-precision twin of each transformed
    measurement (its explanation shows them): plan these so each model loads once."""
    needed = run.measurements_of(claim, subject)
    return needed + [dataclasses.replace(m, transform=None) for m in needed if m.transform]


def claim_record(claim: "ClaimSpec", subject: str) -> dict[str, Any]:
    """What the JSON report keeps of one claim item, before it is decided."""
    return {"claim": claim.name, "subject": subject, "assert": claim.text,
            "spec": claim.loc.path, "line": claim.loc.line, "xfail": claim.xfail,
            "verdict": None, "measurements": {}, "counts": {}}


def claim_outcome(run: "Run", claim: "ClaimSpec", subject: str) -> Outcome:
    """Decide `claim` for `subject` on `run` and explain it. An exception while deciding is
    an `error` outcome carrying it (a claim that cannot be decided never passes; the caller
    re-raises what is not an UnlearnSpecError). The record's counts are the work this call
    did, the explanation's full-precision measurements included."""
    before = dict(run.stats)
    record = claim_record(claim, subject)
    verdict = error = None
    explanation = ""
    try:
        verdict = run.evaluate(claim, subject)
        explanation = verdict.explain(lambda ref: fp_reference(run, claim, subject, ref))
    except Exception as exc:  # noqa: BLE001 - carried in the outcome, re-raised by its face
        error, verdict, explanation = exc, None, str(exc)
    # artifacts and measurements only: how often a process loaded a model depends on how
    # items were spread over xdist workers
    record["counts"] = {k: v - before.get(k, 0) for k, v in run.stats.items()
                        if v - before.get(k, 0) and k != "loaded"}
    record["measurements"] = run.describe(claim_measurements(run, claim, subject))
    record["models"] = run.describe_models()
    record["transforms"] = run.describe_transforms()
    if verdict is None:
        return Outcome(claim, subject, "error", explanation, record, error=error)
    record["verdict"] = verdict_record(verdict, explanation)
    return Outcome(claim, subject, status_of(verdict, claim), explanation, record, verdict)


def status_of(verdict: "Verdict", claim: "ClaimSpec") -> Status:
    """An inconclusive claim is never an expected failure (an `xfail:` cannot hide it)."""
    if verdict.outcome == "inconclusive":
        return "inconclusive"
    if verdict.passed:
        return "xpass" if claim.xfail else "pass"
    return "xfail" if claim.xfail else "fail"


def verdict_record(verdict: "Verdict", explanation: str) -> dict[str, Any]:
    """The record's `verdict` (docs/report.md): the comparison, its interval, each seed's."""
    return {"passed": verdict.passed, "outcome": verdict.outcome,
            "lhs": verdict.lhs, "rhs": verdict.rhs,
            "margin": verdict.margin, "explanation": explanation,
            "terms": verdict.term_labels(),
            "interval": _interval(verdict), "aggregate": verdict.aggregate,
            "seeds": [{"seed": seed, "outcome": v.outcome, "lhs": v.lhs,
                       "rhs": v.rhs, "margin": v.margin, "interval": _interval(v)}
                      for seed, v in verdict.per_seed] or None}


def exit_code(statuses: list[str], policy: str) -> int:
    """The exit status of a run whose claims came to `statuses` under the inconclusive
    `policy`: 1 when a claim failed or could not be decided (or an inconclusive one under
    `fail`), EXIT_INCONCLUSIVE when only inconclusive ones did not pass under `distinct`."""
    undecided = statuses.count("inconclusive")
    if statuses.count("fail") + statuses.count("error") or (undecided and policy == "fail"):
        return 1
    return EXIT_INCONCLUSIVE if undecided and policy == "distinct" else 0


def format_work(counts: dict[str, int]) -> str:
    """'trained 0, unlearned 2, relearned 0, transformed 2, measured 7'."""
    return ", ".join(f"{k} {counts.get(k, 0)}" for k in WORK)


def _interval(verdict: Any) -> dict[str, Any] | None:
    return verdict.interval.to_json() if verdict.interval is not None else None


def fp_reference(run: "Run", claim: "ClaimSpec", subject: str, ref: "MetricRef"
                    ) -> float | None:
    """A transformed term's value at full precision, for the explanation; None (the line is
    left out) for a stored-run term or one that cannot be measured."""
    from .spec.claims import BASELINE

    if ref.model == BASELINE:
        return None
    m = run.measurement_of(dataclasses.replace(ref, transform=None), subject,
                           run.claim_exclusions(claim))
    try:
        return run.measure(m).value
    except UnlearnSpecError:
        return None
