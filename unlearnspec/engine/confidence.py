"""A claim's verdict on a paired-bootstrap interval (`confidence:`), from the run's cached
per-sample scores: nothing is measured again, and no cache key changes.

Each term's metric is resampled over its *sample space*: the evaluation samples it is an
average (or an AUC) of. Terms over the same space — the same metric on the subject and on
its reference, or PrivLeak and a membership AUC over the same documents — get the same
resample indices in every replicate (paired); terms over different spaces (forget and retain
questions) are resampled independently, as independent sets are.
"""
from __future__ import annotations

import math
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from ..errors import RunError
from ..metrics import resample
from ..metrics.registry import METRICS
from ..spec.confidence import Interval, decide, margins, percentile_interval, replicate_sides
from ..spec.evaluate import EQ_TOLERANCE, ClaimNotComputable, Verdict
from ..spec.tree import ClaimSpec, MetricRef
from .cache import content_key
from .measurement import Measurement

if TYPE_CHECKING:
    from .claim_run import ClaimRun


class Bootstrap:
    """Resample indices per sample space, drawn once per run (seeded by the spec's seed)."""

    def __init__(self, run: "ClaimRun") -> None:
        self.run = run
        self.replicates = run.spec.settings.bootstrap_samples
        self._indices: dict[str, tuple[tuple[int, ...], list[Any]]] = {}
        self.described: dict[str, str] = {}  # space -> "60 samples of knowmem_retain"

    def indices(self, space: str, sizes: tuple[int, ...], what: str, label: str) -> list[Any]:
        if space in self._indices:
            known, idx = self._indices[space]
            if known != sizes:
                raise RunError(f"{label} has {what} but another measurement over the same "
                               f"samples had {known}: the two cannot be paired")
            return idx
        idx = resample.draw_indices(self.run.spec.seed, space, sizes, self.replicates)
        self._indices[space] = (sizes, idx)
        self.described[space] = what
        return idx

    def term(self, ref: MetricRef, subject: str, exclude: tuple[str, ...] = ()) -> Any:
        """The replicate values of one concrete term (an array of `replicates`); `exclude`:
        the claim's relearning transforms whose held-out samples its terms leave out."""
        run = self.run
        m = run.measurement_of(ref, subject, exclude)
        ms = run.spec.metrics[m.metric]
        stat = resample.statistic(ms.kind, METRICS.get(ms.kind).tags)
        if stat is None:  # the loader refuses these; a plug-in could still change its tags
            raise RunError(f"{m.label()} ({ms.kind}) has no evaluation samples to resample")
        result = run.measure(m)
        if stat == "mean":
            return self._replicates("mean", m, result, self._mean_space(m), result.value)
        space = self._documents_space(m)
        if stat == "auc":
            return self._replicates("auc", m, result, space, result.value)
        from ..metrics.privleak import privleak_score

        auc_ref = ms.config.auc_retrain
        aucs = self._replicates("auc", m, result, space, result.details.get("auc"))
        if auc_ref is not None:
            ref_reps, ref_point = float(auc_ref), float(auc_ref)
        else:
            ref_m = Measurement(m.metric, ms.config.reference, exclude=m.exclude)
            ref_raw = run.measurer.raw(ref_m)
            ref_reps = self._replicates("auc", ref_m, ref_raw, space, ref_raw.value)
            ref_point = ref_raw.value
        import numpy as np

        if not math.isclose(privleak_score(float(result.details.get("auc")), ref_point),
                            result.value, rel_tol=1e-9, abs_tol=1e-9):
            raise RunError(f"{m.label()} = {result.value} is not the PrivLeak of its AUC "
                           f"against the reference's, so it cannot be resampled")
        with np.errstate(all="ignore"):
            return (aucs - ref_reps) / ref_reps * 100.0

    def _mean_space(self, m: "Measurement") -> str:
        # without a relearning holdout the samples are another set (fewer of them)
        return content_key("samples", self.run.metric_identity(m.metric),
                           *([self.run.transforms.exclusion_key(m.exclude)] if m.exclude else []))

    def _documents_space(self, m: "Measurement") -> str:
        data = self.run.measurer.metric_data(m.metric)
        return content_key("documents", self.run.data_key(data) if data else None,
                           *([self.run.transforms.exclusion_key(m.exclude)] if m.exclude else []))

    def _replicates(self, stat: str, m: "Measurement", result: Any, space: str,
                    point: Any) -> Any:
        label = m.label()
        try:
            sizes = resample.sizes_of(stat, result.n, result.per_sample, dict(result.details))
        except RunError as exc:
            raise RunError(f"{label} cannot be resampled: {exc}") from None
        what = f"{sizes[0]} samples of {m.metric}" if stat == "mean" else \
            f"{sizes[0]} forget + {sizes[1]} holdout documents"
        # the statistic of the original samples must be the measured value: a value that is
        # something else (noise draws' mean of AUCs) would give an interval around another
        # number
        original = float(resample.replicates_of(stat, result.per_sample, sizes,
                                                resample.identity_indices(sizes))[0])
        if point is None or not math.isclose(original, float(point), rel_tol=1e-9,
                                             abs_tol=1e-9):
            raise RunError(f"{label} = {point} is not the {stat} of its per-sample scores "
                           f"({original}), so a bootstrap over them would not be an interval "
                           f"around it")
        idx = self.indices(space, sizes, what, label)
        return resample.replicates_of(stat, result.per_sample, sizes, idx)


def with_interval(run: "ClaimRun", boot: Bootstrap, claim: ClaimSpec, subject: str,
                  verdict: Verdict, term: Any = None) -> Verdict:
    """`verdict` decided on the claim's confidence interval instead of its point estimate.
    `term` gives a reference's replicates (default: `boot.term`; over seeds: their mean)."""
    import numpy as np

    assert claim.confidence is not None
    exclude = run.claim_exclusions(claim)
    lhs, rhs = replicate_sides(claim.expr, subject,
                               term or (lambda ref: boot.term(ref, subject, exclude)))
    values = margins(claim.expr.op, np.broadcast_to(lhs, (boot.replicates,)),
                     np.broadcast_to(rhs, (boot.replicates,)))
    bad = int((~np.isfinite(values)).sum())
    if bad:
        raise ClaimNotComputable(
            f"claim '{claim.name}' for subject '{subject}' cannot be decided: {bad} of "
            f"{boot.replicates} bootstrap resamples give no finite margin (a division by a "
            f"term that is 0 on some resamples); rewrite the claim without that division")
    low, high = percentile_interval(values, claim.confidence)
    used = _spaces_of(run, boot, claim, subject)
    parts = [boot.described[s] + (f", paired over {n} terms" if n > 1 else "")
             for s, n in sorted(used.items())]
    samples = "; ".join(parts) + ("  (independent sets, resampled independently)"
                                  if len(parts) > 1 else "")
    interval = Interval(low, high, claim.confidence, boot.replicates, samples)
    outcome = decide(claim.expr.op, low, high, EQ_TOLERANCE)
    return replace(verdict, interval=interval, decided=outcome, passed=outcome == "pass")


def _spaces_of(run: "ClaimRun", boot: Bootstrap, claim: ClaimSpec, subject: str
               ) -> dict[str, int]:
    """The sample spaces the claim's terms were resampled over, each with how many distinct
    measurements shared its resamples (for the explanation)."""
    out: dict[str, int] = {}
    for m in sorted(set(run.measurements_of(claim, subject))):
        stat = resample.statistic(run.spec.metrics[m.metric].kind,
                                  METRICS.get(run.spec.metrics[m.metric].kind).tags)
        space = boot._mean_space(m) if stat == "mean" else boot._documents_space(m)
        if space in boot.described:
            out[space] = out.get(space, 0) + 1
    return out
