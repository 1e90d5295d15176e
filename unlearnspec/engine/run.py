"""A run: the evaluation of one spec, as a graph of cached artifacts and measurements.

`Run` is the face the plugin, the CLI and the reports use; the work is done by its parts,
each its own module, built on the ones before it:

- sources.py      where data and models come from, and their content keys
- transforms.py   the spec's transforms: instances, keys, calibration, chains, relearning
- loaded.py       the (model, transform) pairs held in memory, and their coverage
- measuring.py    measurement keys, raw and composed results (PrivLeak's reference AUC)
- tokenizers.py   the same-tokenizer rule
- describe.py     what the reports read of the run
- claims here: a claim's measurements and its verdict (seeds.py, confidence.py,
  stored_run.py for `baseline` terms)

Every artifact and measurement is cached by a key that hashes its inputs' keys, its own
config and its component version. Measurements that share a (model, transform) are computed
together while that model is loaded, so each model is loaded and transformed once per
session; at most `settings.max_models_in_memory` models are held at a time.
"""
from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any, Iterable, Mapping

from ..errors import RunError
from ..metrics.result import MetricResult
from ..spec.claims import BASELINE
from ..spec.tree import ClaimSpec, MetricRef, Spec, metric_refs
from .cache import Cache
from .context import RunContext
from .describe import Descriptions
from .loaded import LoadedModels
from .measurement import Measurement
from .measuring import Measurer
from .sources import Sources
from .tokenizers import Tokenizers
from .transforms import SpecTransforms


class Run:
    def __init__(
        self,
        spec: Spec,
        *,
        cache_dir: Path,
        device: str | None = None,
        progress: bool = True,
        stored_run: Mapping[str, Any] | None = None,
        background: bool = True,
    ) -> None:
        """`background`: unlearn the plan's other models in a second process while this one
        unlearns its first (engine/background.py; where it applies)."""
        self.spec = spec
        self.stored_run = stored_run  # --unlearn-baseline's file, see stored_run.py
        self.ctx = RunContext(spec, Cache(cache_dir), device=device or spec.settings.device,
                              progress=progress)
        self.sources = Sources(self.ctx)
        self.transforms = SpecTransforms(self.ctx, self.sources)
        self.loaded = LoadedModels(self.ctx, self.sources, self.transforms)
        self.measurer = Measurer(self.ctx, self.sources, self.transforms, self.loaded)
        self.tokenizers = Tokenizers(self.ctx, self.sources)
        self.descriptions = Descriptions(self.ctx, self.sources, self.transforms, self.measurer)
        self._bootstrap: Any = None  # engine.confidence.Bootstrap, made on first use
        self.background: Any = None
        if background:
            from .background import BackgroundUnlearning

            self.background = BackgroundUnlearning(self.sources, self.measurer)
            self.sources.before_unlearning = self.background.before_unlearning

    @property
    def device(self) -> str:
        return self.ctx.device

    @property
    def stats(self) -> Any:
        """Work counters: trained, unlearned, relearned, transformed, measured, loaded."""
        return self.ctx.stats

    # ------------------------------------------------------------------ the parts' faces
    def corpus(self, name: str) -> Any:
        return self.sources.corpus(name)

    def data_key(self, name: str) -> str:
        return self.sources.data_key(name)

    def model_path(self, name: str) -> Path | str:
        return self.sources.model_path(name)

    def model_key(self, name: str) -> str:
        return self.sources.model_key(name)

    def resolved_revision(self, name: str) -> str | None:
        return self.sources.resolved_revision(name)

    def transform(self, name: str) -> Any:
        return self.transforms.get(name)

    def transform_key(self, name: str | None) -> str:
        return self.transforms.key(name)

    def held_out(self, name: str) -> list[dict[str, str]]:
        return self.transforms.held_out(name)

    def relearned_path(self, model: str, relearns: list[str]) -> Path:
        return self.transforms.relearned_path(model, relearns)

    def exclusions(self, transforms: Iterable[str | None]) -> tuple[str, ...]:
        return self.transforms.exclusions(transforms)

    def plan(self, measurements: Iterable[Measurement]) -> None:
        self.measurer.plan(measurements)

    def measure(self, m: Measurement) -> MetricResult:
        if self.background is not None:
            self.background.poll()  # a finished second process gives its cores back
        return self.measurer.measure(m)

    def measurement_key(self, m: Measurement, *, raw: bool = False) -> str:
        return self.measurer.key(m, raw=raw)

    def metric_identity(self, metric: str) -> str:
        return self.measurer.metric_identity(metric)

    def results(self) -> dict[Measurement, MetricResult]:
        """Every measurement this run has produced so far (computed or from the cache)."""
        return dict(self.measurer.results)

    def describe(self, measurements: Iterable[Measurement]) -> dict[str, Any]:
        return self.descriptions.of_measurements(measurements)

    def describe_models(self) -> dict[str, Any]:
        return self.descriptions.of_models()

    def describe_transforms(self) -> dict[str, Any]:
        return self.descriptions.of_transforms()

    def tokenizer_fingerprint(self, model: str) -> str:
        return self.tokenizers.fingerprint(model)

    def check_same_tokenizer(self, claim: ClaimSpec, subject: str) -> None:
        self.tokenizers.check_same(claim, self.measurements_of(claim, subject))

    # ------------------------------------------------------------------ claims
    def claim_exclusions(self, claim: ClaimSpec) -> tuple[str, ...]:
        """The claim's relearning transforms whose held-out pairs all its metrics leave out."""
        return self.transforms.exclusions(ref.transform for ref in metric_refs(claim.expr))

    def measurements_of(self, claim: ClaimSpec, subject: str) -> list[Measurement]:
        """Every measurement a claim needs for one subject (for planning); `baseline` terms
        are read from the stored run, not measured. A seeded subject needs each seed's."""
        from .seeds import expand

        pairs = expand(self, claim, subject)
        if len(pairs) > 1 or pairs[0][1] != subject:
            return [m for c, s in pairs for m in self.measurements_of(c, s)]
        exclude = self.claim_exclusions(claim)
        return [Measurement.of(ref, subject, exclude) for ref in metric_refs(claim.expr)
                if ref.model != BASELINE]

    @staticmethod
    def measurement_of(ref: MetricRef, subject: str, exclude: tuple[str, ...] = ()
                       ) -> Measurement:
        return Measurement.of(ref, subject, exclude)

    def value(self, ref: MetricRef, subject: str, exclude: tuple[str, ...] = ()) -> float:
        """The value of one claim term; `exclude`: the claim's relearning transforms whose
        held-out pairs its metrics leave out (`claim_exclusions`)."""
        if ref.model == BASELINE:
            from .stored_run import stored_value

            m = Measurement(ref.metric, subject, ref.transform, exclude)
            return stored_value(self.stored_run, m, self.metric_identity(ref.metric))
        m = Measurement.of(ref, subject, exclude)
        result = self.measure(m)
        if result.n <= 0:
            raise RunError(f"{m.label()} was computed over zero samples: check the metric's "
                           f"data ({self.spec.metrics[m.metric].loc})")
        return result.value

    def evaluate(self, claim: ClaimSpec, subject: str) -> Any:
        """The claim's verdict for `subject`; over a seeded subject, combined over its seeds
        (engine/seeds.py)."""
        from .seeds import evaluate_seeded, seeded

        if seeded(self, subject):
            return evaluate_seeded(self, claim, subject)
        return self.evaluate_one(claim, subject)

    def evaluate_one(self, claim: ClaimSpec, subject: str) -> Any:
        from ..spec import evaluate_claim

        self.check_same_tokenizer(claim, subject)
        exclude = self.claim_exclusions(claim)
        verdict = evaluate_claim(claim, subject, lambda ref: self.value(ref, subject, exclude))
        if exclude:
            # each term is named as measured: without the held-out pairs (reports, explanation)
            verdict = dataclasses.replace(verdict, terms=tuple(
                (label if ref.model == BASELINE else
                 Measurement.of(ref, subject, exclude).label(), value)
                for (label, value), ref in zip(verdict.terms, verdict.refs)))
        if claim.confidence is None:
            return verdict
        from .confidence import with_interval

        return with_interval(self, self.bootstrap(), claim, subject, verdict)

    def bootstrap(self) -> Any:
        """The run's resample indices (engine/confidence.py), drawn on first use."""
        if self._bootstrap is None:
            from .confidence import Bootstrap

            self._bootstrap = Bootstrap(self)
        return self._bootstrap

    def close(self) -> None:
        if self.background is not None:
            self.background.close()
        self.loaded.close()
