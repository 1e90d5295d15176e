"""The `claims:` section: each claim's keys around its `assert:` text (which `spec.claims`
parses): its subjects, `xfail:`, `confidence:` and `aggregate:`, and the checks that need the
whole spec: a seeded model pairs with seeded subjects, and a claim decided on a bootstrap
interval has only terms with samples to resample.
"""
from __future__ import annotations

from typing import Any

from ..errors import Location, did_you_mean
from .claims import ClaimScope, parse_claim
from .specfile import SpecFile
from .tree import ClaimSpec, Spec, metric_refs, seed_model_name
from .yamlload import LocDict, LocList

CLAIM_KEYS = ("name", "subjects", "assert", "xfail", "confidence", "aggregate")
AGGREGATES = ("every", "mean", "median")


def read_claims(file: SpecFile, root: LocDict, spec: Spec) -> tuple[ClaimSpec, ...]:
    items = root.get("claims")
    if items is None:
        return ()
    if not isinstance(items, LocList):
        file.fail_value(root, "claims", "'claims' must be a list of "
                        "{name, subjects, assert} entries", "start each claim with '- name:'")
    scope = ClaimScope.from_spec(spec)
    out: list[ClaimSpec] = []
    names: dict[str, Location] = {}
    for i, item in enumerate(items):
        claim = _claim(file, item, items.item_locs[i], i + 1, spec, scope)
        if claim.name in names:
            file.fail_value(item, "name", f"duplicate claim name '{claim.name}' (first "
                            f"used on line {names[claim.name].line})",
                            "claim names must be unique; rename one")
        names[claim.name] = claim.loc
        out.append(claim)
    return tuple(out)


def _claim(file: SpecFile, item: Any, loc: Location, number: int, spec: Spec, scope: ClaimScope
          ) -> ClaimSpec:
    if not isinstance(item, LocDict):
        file.fail(loc, f"claim {number} must be a mapping with name, subjects and assert",
                  "write - {name: ..., subjects: [...], assert: ...}")
    file.check_keys(item, CLAIM_KEYS, f"claim {number}")
    for key in ("name", "subjects", "assert"):
        if key not in item:
            file.fail(item.loc, f"claim {number} has no '{key}'",
                      f"add {key}: ..." if key != "subjects" else "add subjects: [MODEL]")
    name = file.string(item, "name", f"claim {number}")
    where = f"claim '{name}'"
    subjects = _subjects(file, item, spec, where)
    text = file.string(item, "assert", where)
    xfail = file.string(item, "xfail", where) if "xfail" in item else None
    assert_loc = item.text_locs.get("assert", item.value_locs["assert"])
    expr = parse_claim(text, scope, loc=assert_loc)
    confidence = spec.settings.confidence
    if "confidence" in item:  # `confidence: false` (or null): this claim on the point
        value = item["confidence"]
        confidence = None if value is None or value is False else \
            file.confidence(item, where)
    if confidence is not None:
        _bootstrappable(file, item, expr, spec, where, confidence)
    aggregate = "every"
    if "aggregate" in item:
        aggregate = item["aggregate"]
        if aggregate not in AGGREGATES:
            file.fail_value(item, "aggregate", f"{where}: 'aggregate' must be one of "
                            f"{', '.join(AGGREGATES)}, got {aggregate!r}",
                            did_you_mean(str(aggregate), AGGREGATES) or
                            "every: each seed must hold; mean/median: the claim on the "
                            "seeds' mean/median of each term")
    _seeded_refs(file, item, expr, spec, subjects, where, aggregate)
    return ClaimSpec(name, loc, assert_loc, text, expr, subjects, xfail, confidence,
                     aggregate)


def _seeded_refs(file: SpecFile, item: LocDict, expr: Any, spec: Spec, subjects: tuple[str, ...],
                where: str, aggregate: str) -> None:
    """A seeded model in a claim pairs with its subject's seeds: the subject must be
    seeded with the same seeds. `aggregate:` needs a seeded subject."""
    seeded = [s for s in subjects if spec.models[s].seeds]
    if "aggregate" in item and not seeded:
        file.fail_value(item, "aggregate", f"{where} has 'aggregate' but none of its "
                        f"subjects has seeds", "remove 'aggregate:', or give a subject "
                        "seeds: [...]")
    for ref in metric_refs(expr):
        if ref.model is None or not spec.models.get(ref.model, None) or \
                not spec.models[ref.model].seeds:
            continue
        seeds = spec.models[ref.model].seeds
        for subject in subjects:
            if spec.models[subject].seeds != seeds:
                file.fail_value(item, "assert", f"{where} names '{ref.model}', a group "
                                f"of seeds {list(seeds)}, but its subject '{subject}' "
                                f"does not have the same seeds to pair them with",
                                f"name one seed, e.g. "
                                f"{seed_model_name(ref.model, seeds[0])}, or give "
                                f"'{subject}' seeds: {list(seeds)}")


def _bootstrappable(file: SpecFile, item: LocDict, expr: Any, spec: Spec, where: str,
                   confidence: float) -> None:
    """Under confidence every term must be a metric with evaluation samples to resample:
    a weight-space metric (gamma, code flips) or a stored baseline has none, and a point
    estimate in its place would be a silent lie about the interval."""
    from ..metrics.registry import METRICS
    from ..metrics.resample import statistic
    from .claims import BASELINE

    for ref in metric_refs(expr):
        kind = spec.metrics[ref.metric].kind
        if ref.model == BASELINE:
            why = "a 'baseline' term is read from a stored run, whose resamples are not " \
                  "paired with this run's"
        elif statistic(kind, METRICS.get(kind).tags) is None:
            why = f"metric '{ref.metric}' ({kind}) has no evaluation samples to resample"
        else:
            continue
        key = "confidence" if "confidence" in item else "assert"
        fix = "write confidence: false on this claim to decide it on the point estimate" \
            if spec.settings.confidence is not None and "confidence" not in item else \
            "remove 'confidence:' from this claim to decide it on the point estimate"
        file.fail_value(item, key, f"{where} is decided on a {confidence:.0%} bootstrap "
                        f"interval, but {why}", fix)


def _subjects(file: SpecFile, item: LocDict, spec: Spec, where: str) -> tuple[str, ...]:
    value = item["subjects"]
    if not isinstance(value, LocList):
        file.fail_value(item, "subjects", f"{where}: 'subjects' must be a list of models, "
                        f"got {value!r}", f"write subjects: [{value}]")
    if not value:
        file.fail_value(item, "subjects", f"{where} has no subjects",
                        f"list the models it tests, e.g. subjects: "
                        f"[{next(iter(spec.models), 'MODEL')}]")
    models = sorted(spec.models)
    for i, subject in enumerate(value):
        if not isinstance(subject, str) or subject not in spec.models:
            file.fail(value.item_locs[i], f"{where}: subject '{subject}' is not a model "
                      "in this spec", did_you_mean(str(subject), models) or
                      f"models: {', '.join(models) or 'none defined'}")
        if subject in value[:i]:
            file.fail(value.item_locs[i], f"{where}: subject '{subject}' is listed twice")
    return tuple(value)
