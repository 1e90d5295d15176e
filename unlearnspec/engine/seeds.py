"""Claims over a seeded subject (`seeds: [0, 1, 2]` on an unlearned model).

Each seed is its own model (`ga_klr.seed1`, an ordinary cached artifact). A claim over the
group is evaluated once per seed, every seeded model it names taking the same seed (paired
by seed); with `aggregate: every` (the default) it holds only if it holds for every seed and
the deciding verdict is the worst seed's; with `aggregate: mean` / `median` each term is that
aggregate over the seeds (its bootstrap replicates too, over the same resampled samples) and
the claim is decided on it. Either way every seed's verdict is kept, so reports show the
spread.
"""
from __future__ import annotations

import statistics
from dataclasses import replace
from typing import TYPE_CHECKING, Any, Callable

from ..spec.evaluate import OUTCOME_ORDER, Verdict, evaluate_claim
from ..spec.tree import ClaimSpec, MetricRef, map_refs, seed_model_name

if TYPE_CHECKING:
    from .claim_run import ClaimRun


def seeded(run: "ClaimRun", model: str | None) -> bool:
    ms = run.spec.models.get(model) if model else None
    return bool(ms is not None and ms.seeds)


def _substitute(expr: Any, names: Callable[[str], str]) -> Any:
    return map_refs(expr, lambda r: replace(r, model=names(r.model)) if r.model else r)


def seed_views(run: "ClaimRun", claim: ClaimSpec, subject: str) -> list[tuple[int, str, ClaimSpec]]:
    """(seed, that seed's subject model, the claim with every seeded model it names taking
    that seed) for each of the subject's seeds."""
    out = []
    for seed in run.spec.models[subject].seeds:
        def names(model: str, seed: int = seed) -> str:
            return seed_model_name(model, seed) if seeded(run, model) else model

        out.append((seed, seed_model_name(subject, seed),
                    replace(claim, expr=_substitute(claim.expr, names))))
    return out


def evaluate_seeded(run: "ClaimRun", claim: ClaimSpec, subject: str) -> Verdict:
    views = seed_views(run, claim, subject)
    per_seed = tuple((seed, run.evaluate_one(view, child)) for seed, child, view in views)
    if claim.aggregate == "every":
        worst = max(per_seed, key=lambda sv: (OUTCOME_ORDER.index(sv[1].outcome),
                                              -sv[1].margin))[1]
        return replace(worst, per_seed=per_seed, aggregate="every")
    pick: Callable[[list[float]], float] = statistics.fmean if claim.aggregate == "mean" \
        else statistics.median
    seeds = [s for s, _, _ in views]

    def children(ref: MetricRef) -> list[MetricRef]:
        model = ref.model or subject
        if not seeded(run, model):
            return [replace(ref, model=model)]
        return [replace(ref, model=seed_model_name(model, s)) for s in seeds]

    exclude = run.claim_exclusions(claim)

    def lookup(ref: MetricRef) -> float:
        return pick([run.value(c, subject, exclude) for c in children(ref)])

    run.check_same_tokenizer(claim, subject)
    verdict = evaluate_claim(claim, subject, lookup)
    if claim.confidence is not None:
        import numpy as np

        from .confidence import with_interval

        boot = run.bootstrap()
        reduce = np.mean if claim.aggregate == "mean" else np.median

        def term(ref: MetricRef) -> Any:
            return reduce(np.stack([boot.term(c, subject, exclude) for c in children(ref)]),
                          axis=0)

        verdict = with_interval(run, boot, claim, subject, verdict, term=term)
    return replace(verdict, per_seed=per_seed, aggregate=claim.aggregate)


def expand(run: "ClaimRun", claim: ClaimSpec, subject: str) -> list[tuple[ClaimSpec, str]]:
    """The (claim, subject) pairs a claim item really evaluates: one per seed for a seeded
    subject, itself otherwise."""
    if not seeded(run, subject):
        return [(claim, subject)]
    return [(view, child) for _, child, view in seed_views(run, claim, subject)]

