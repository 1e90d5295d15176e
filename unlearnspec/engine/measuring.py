"""Measuring: a metric on a (model, transform), its cache key, and how results compose.

A data metric's own value (for privleak: the Min-K% AUC) is its *raw* result, cached on its
own and computed together with every other pending measurement of the same loaded model.
The result a claim reads is *composed* from raw ones where the metric says so: PrivLeak
relative to the reference model's AUC, a "reference" metric through its module's
`combine_reference`; a weight-space metric compares two checkpoints without loading either.
Both kinds are cached by content (metric kind + config, model key, transform key, data key,
version, device type; the held-out pairs a relearning claim leaves out).
"""
from __future__ import annotations

import dataclasses
import logging
import time
from pathlib import Path
from typing import Any, Iterable

from .. import __version__
from ..errors import RunError
from ..metrics.registry import METRICS
from ..metrics.result import MetricResult
from ..transforms.tally import KERNEL_VERSION
from .cache import content_key
from .context import RunContext, config_dict
from .loaded import LoadedModels
from .measurement import Measurement
from .sources import Sources
from .transforms import SpecTransforms

log = logging.getLogger("unlearnspec")

# data metrics that read a corpus only through `Corpus`'s methods, which the held-out view of
# a relearning claim filters (transforms/holdout.py); any other one is refused there
CORPUS_API_METRICS = frozenset({"verbmem", "knowmem", "privleak", "mia_loss", "mia_zlib",
                                "mia_mink", "mia_minkpp", "sharpness"})


def _covered(m: Measurement, cached: dict[str, Any] | None) -> dict[str, Any] | None:
    """A cached result of a transformed measurement counts only with its coverage recorded
    (results cached before coverage was measured are recomputed once)."""
    if cached is None or m.transform is None:
        return cached
    return cached if "coverage" in cached.get("details", {}) else None


class Measurer:
    def __init__(self, ctx: RunContext, sources: Sources, transforms: SpecTransforms,
                 loaded: LoadedModels) -> None:
        self.ctx = ctx
        self.spec = ctx.spec
        self.sources = sources
        self.transforms = transforms
        self.loaded = loaded
        # (model, transform, exclude) -> metrics to compute while that model is loaded
        self._pending: dict[tuple[str, str | None, tuple[str, ...]], set[str]] = {}
        self.results: dict[Measurement, MetricResult] = {}
        self.planned: list[Measurement] = []  # in the order the run will ask for them

    # ------------------------------------------------------------------ what a metric needs
    def metric_data(self, metric: str) -> str | None:
        """The corpus a metric reads: its `data:`, or the spec's only corpus for a data
        metric; None for a weight-space metric."""
        ms = self.spec.metrics[metric]
        if ms.data:
            return ms.data
        if "data" in METRICS.get(ms.kind).tags and len(self.spec.data) == 1:
            return next(iter(self.spec.data))
        return None

    def plan(self, measurements: Iterable[Measurement]) -> None:
        """Declare what will be asked, so one model load serves all its measurements."""
        for m in measurements:
            self.planned.append(m)
            for dep in self._raw_needs(m):
                self._pending.setdefault((dep.model, dep.transform, dep.exclude),
                                         set()).add(dep.metric)

    def _raw_needs(self, m: Measurement) -> list[Measurement]:
        ms = self.spec.metrics[m.metric]
        if "weights" in METRICS.get(ms.kind).tags:
            return []
        ref = self.reference_model(m.metric)
        return [m, Measurement(m.metric, ref, exclude=m.exclude)] if ref else [m]

    def models_of(self, m: Measurement) -> list[str]:
        """The spec models a measurement reads: its own, and a reference metric's or a weight
        metric's reference model (an invalid one is left for `measure` to report)."""
        out = [m.model]
        if "weights" in METRICS.get(self.spec.metrics[m.metric].kind).tags:
            try:
                out.append(self._weights_reference(m))
            except RunError:
                pass
        elif ref := self.reference_model(m.metric):
            out.append(ref)
        return out

    def is_cached(self, m: Measurement) -> bool:
        """Whether `measure(m)` would read the cache (a key that cannot be computed is an
        error `measure` reports, not a cached value)."""
        if m in self.results:
            return True
        try:
            return _covered(m, self.ctx.cache.get_json("metrics", self.key(m))) is not None
        except RunError:
            return False

    def reference_model(self, metric: str) -> str | None:
        """The model whose full-precision raw measurement a "reference" metric combines with
        the subject's (PrivLeak's retrain AUC, TOFU forget quality's retain truth ratios);
        None when it needs none (privleak with a given `auc_retrain`)."""
        ms = self.spec.metrics[metric]
        if "reference" not in METRICS.get(ms.kind).tags:
            return None
        if getattr(ms.config, "auc_retrain", None) is not None:
            return None
        return ms.config.reference

    def _weights_reference(self, m: Measurement) -> str:
        ms = self.spec.metrics[m.metric]
        ref = ms.config.reference or self.spec.models[m.model].from_
        if ref is None:
            raise RunError(f"{ms.loc}: '{m.metric}' compares '{m.model}' with the model it was "
                           f"unlearned from, but '{m.model}' has no `from:`; set `reference:` "
                           f"on the metric")
        return ref

    # ------------------------------------------------------------------ keys
    def key(self, m: Measurement, *, raw: bool = False) -> str:
        ms = self.spec.metrics[m.metric]
        comp = METRICS.get(ms.kind)
        data = self.metric_data(m.metric)
        sources = self.sources
        parts: list[Any] = [
            "metric", ms.kind, "raw" if raw else "", config_dict(ms.config), comp.target,
            sources.model_key(m.model), self.transforms.key(m.transform),
            sources.data_key(data) if data else None, __version__, self.ctx.device_type,
        ]
        if m.exclude and data and "weights" not in comp.tags:
            parts.append(["exclude", self.transforms.exclusion_key(m.exclude)])
        if "weights" in comp.tags:  # their numbers are the weight-pair kernel's
            parts += [sources.model_key(self._weights_reference(m)), KERNEL_VERSION]
        elif not raw and (ref := self.reference_model(m.metric)):
            parts.append(self.key(Measurement(m.metric, ref, exclude=m.exclude), raw=True))
        return content_key(*parts)

    def metric_identity(self, metric: str) -> str:
        """What makes two runs' values of one metric comparable: kind, options, data."""
        ms = self.spec.metrics[metric]
        data = self.metric_data(metric)
        return content_key(ms.kind, config_dict(ms.config),
                           self.sources.data_key(data) if data else None)

    # ------------------------------------------------------------------ composed results
    def measure(self, m: Measurement) -> MetricResult:
        if m in self.results:
            return self.results[m]
        cache = self.ctx.cache
        key = self.key(m)
        cached = _covered(m, cache.get_json("metrics", key))
        if cached is None:
            with cache.lock("metrics", key):  # another worker may be computing it
                cached = _covered(m, cache.get_json("metrics", key))
                if cached is None:
                    result = self._compose(m)
                    cache.put_json("metrics", key, result.to_json())
                    cached = result.to_json()
        result = MetricResult.from_json(cached)
        self.results[m] = result
        return result

    def _compose(self, m: Measurement) -> MetricResult:
        ms = self.spec.metrics[m.metric]
        comp = METRICS.get(ms.kind)
        if "weights" in comp.tags:
            if m.transform is None:
                raise RunError(f"{ms.loc}: '{m.metric}' compares quantized weights and needs a "
                               f"transform: write {m.metric} @ <transform>")
            ref = self._weights_reference(m)
            model_path = self.sources.model_path
            result = comp.load()(Path(model_path(ref)), Path(model_path(m.model)),
                                 self.transforms.get(m.transform),
                                 calibration=self.transforms.calibration(m.transform))
            self.ctx.stats["measured"] += 1
            return result
        if ms.kind == "privleak":
            from ..metrics.privleak import privleak_score

            auc = self.raw(m)
            if ms.config.auc_retrain is not None:
                auc_ref = float(ms.config.auc_retrain)
            else:
                auc_ref = self.raw(Measurement(m.metric, ms.config.reference,
                                               exclude=m.exclude)).value
            return MetricResult(
                value=privleak_score(auc.value, auc_ref), n=auc.n, per_sample=auc.per_sample,
                details={**auc.details, "auc": auc.value, "auc_retrain": auc_ref},
            )
        if "reference" in comp.tags:  # the metric module says how the two combine
            import importlib

            ref = self.reference_model(m.metric)
            combine = importlib.import_module(comp.target.partition(":")[0]).combine_reference
            return combine(self.raw(m), self.raw(Measurement(m.metric, ref, exclude=m.exclude)),
                           ms.config)
        return self.raw(m)

    # ------------------------------------------------------------------ raw results
    def raw(self, m: Measurement) -> MetricResult:
        """A data metric's own value (for privleak: the Min-K% AUC), cached on its own, and
        computed together with every other pending measurement of the same loaded model."""
        key = self.key(m, raw=True)
        cached = _covered(m, self.ctx.cache.get_json("raw", key))
        if cached is not None:
            return MetricResult.from_json(cached)
        slot = (m.model, m.transform)
        group = sorted(self._pending.pop((*slot, m.exclude), set()) | {m.metric})
        # one process at a time measures a (model, transform): xdist workers and parallel
        # sessions wait, then find the results in the cache instead of computing them twice
        with self.ctx.cache.lock("slot", content_key(self.sources.model_key(m.model),
                                                     self.transforms.key(m.transform))):
            return self._raw_group(m, group)

    def _raw_group(self, m: Measurement, group: list[str]) -> MetricResult:
        slot = (m.model, m.transform)
        wanted: MetricResult | None = None
        coverage = self.loaded.coverage
        for metric in group:
            other = dataclasses.replace(m, metric=metric)
            okey = self.key(other, raw=True)
            result = MetricResult.from_json(cached) if (
                cached := _covered(other, self.ctx.cache.get_json("raw", okey))) is not None \
                else None
            if result is None:
                result = self._compute_on_slot(other, slot)
                if slot in coverage:  # the coverage the numbers were measured under
                    result = dataclasses.replace(result, details={
                        **result.details, "coverage": coverage[slot].to_json()})
                self.ctx.cache.put_json("raw", okey, result.to_json())
            if metric == m.metric:
                wanted = result
        assert wanted is not None
        return wanted

    def _compute_on_slot(self, m: Measurement, slot: tuple[str, str | None]) -> MetricResult:
        """The data metric on the loaded (model, transform); a transform with `draws` K > 1
        (matched noise) is applied to K fresh copies of the model, draw by draw, and the
        K results are combined as the transform says (noise: their mean)."""
        model_name, transform = slot
        if transform is None or self.loaded.draws(transform) <= 1:
            model, tok = self.loaded.load(*slot)
            return self._compute_data_metric(m, model, tok)
        from ..transforms.noise import combine_draws

        results = []
        for model, tok in self.loaded.each_draw(model_name, transform):
            results.append(self._compute_data_metric(m, model, tok))
            del model
        return combine_draws(results)

    def _compute_data_metric(self, m: Measurement, model: Any, tok: Any) -> MetricResult:
        ms = self.spec.metrics[m.metric]
        fn = METRICS.get(ms.kind).load()
        data = self.metric_data(m.metric)
        corpus = self.metric_corpus(m, data) if data else None
        started = time.monotonic()
        try:
            result = fn(model, tok, corpus, ms.config, batch_size=self.spec.settings.batch_size)
        except RunError:
            raise
        except Exception as exc:
            raise RunError(f"{ms.loc}: computing {m.label()} failed: "
                           f"{type(exc).__name__}: {exc}") from exc
        self.ctx.stats["measured"] += 1
        log.info("unlearnspec: %s = %.4g (n=%d, %.1fs)", m.label(), result.value, result.n,
                 time.monotonic() - started)
        return result

    def metric_corpus(self, m: Measurement, data: str) -> Any:
        """The metric's corpus; without the held-out pairs of `m.exclude` when they come
        from it (the same content)."""
        sources, transforms = self.sources, self.transforms
        corpus = sources.corpus(data)
        owners = tuple(r for r in m.exclude
                       if sources.data_key(transforms.relearn_corpus(r)) ==
                       sources.data_key(data))
        if not owners:
            return corpus
        kind = self.spec.metrics[m.metric].kind
        if kind not in CORPUS_API_METRICS:
            raise RunError(f"{self.spec.metrics[m.metric].loc}: metric '{m.metric}' ({kind}) "
                           f"reads its data files itself, so it cannot leave out the forget QA "
                           f"pairs that {', '.join(owners)} relearns on; measure it in a claim "
                           f"without that transform, or relearn on data: retain / {{path: "
                           f"FILE}}")
        from ..transforms.holdout import HeldOutCorpus, pair_key

        excluded = frozenset(pair_key(p) for r in owners for p in transforms.held_out(r))
        return HeldOutCorpus(corpus.root, excluded=excluded, owners=owners)
