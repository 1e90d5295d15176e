"""A run: the evaluation of one spec, as a graph of cached artifacts and measurements.

Nodes and their keys (a hash of the inputs' keys + own config + component version):
- data       builtin corpus / local dir (content fingerprint) / hub id + revision
- model      builtin (weights digest) / path (its files' xxh3 contents, or hub id + the
             commit its revision resolved to; and the dtype it is loaded in) /
             unlearned (method, config, source model key, data key, seed)
- measurement  metric kind + config, model key, transform key, data key, device type

Measurements that share a (model, transform) are computed together while that model is
loaded, so each model is loaded and transformed once per session; at most
`settings.max_models_in_memory` models are held at a time.
"""
from __future__ import annotations

import dataclasses
import gc
import json
import logging
import time
from collections import OrderedDict
from pathlib import Path
from typing import Any, Iterable, Mapping

from .. import __version__
from ..errors import RunError
from ..metrics.registry import METRICS
from ..metrics.result import MetricResult
from ..spec.tree import ClaimSpec, MetricRef, Spec, metric_refs
from ..transforms.registry import TRANSFORMS
from ..transforms.tally import KERNEL_VERSION
from ..spec.claims import BASELINE
from .cache import Cache, content_key
from .context import RunContext, config_dict
from .measurement import Measurement
from .sources import Sources

log = logging.getLogger("unlearnspec")


# transforms that re-read the checkpoint instead of the model in memory (they quantize while
# loading); in a chain after another member, they get the model as it is, saved
RELOADING = frozenset({"bnb", "gptq", "awq", "gguf"})


# data metrics that read a corpus only through `Corpus`'s methods, which the held-out view of
# a relearning claim filters (transforms/holdout.py); any other one is refused there
CORPUS_API_METRICS = frozenset({"verbmem", "knowmem", "privleak", "mia_loss", "mia_zlib",
                                "mia_mink", "mia_minkpp", "sharpness"})


def _device_map(strategy: str, device: str) -> Any:
    """accelerate's strategy over the GPUs when the run is on CUDA; on a CPU run every layer
    goes to the CPU (accelerate would otherwise still place them on a visible GPU)."""
    return strategy if device.startswith("cuda") else {"": device}


def _without_timings(log: Any) -> Any:
    """An unlearning log minus wall-clock fields, so equal runs give equal reports."""
    if not isinstance(log, dict):
        return log
    return {k: v for k, v in log.items() if k not in ("seconds", "wall_s", "cpu_s")}


def _covered(m: Measurement, cached: dict[str, Any] | None) -> dict[str, Any] | None:
    """A cached result of a transformed measurement counts only with its coverage recorded
    (results cached before coverage was measured are recomputed once)."""
    if cached is None or m.transform is None:
        return cached
    return cached if "coverage" in cached.get("details", {}) else None


class Run:
    def __init__(
        self,
        spec: Spec,
        *,
        cache_dir: Path,
        device: str | None = None,
        progress: bool = True,
        stored_run: Mapping[str, Any] | None = None,
    ) -> None:
        self.spec = spec
        self.stored_run = stored_run  # --unlearn-baseline's file, see stored_run.py
        self.ctx = RunContext(spec, Cache(cache_dir), device=device or spec.settings.device,
                              progress=progress)
        self.cache = self.ctx.cache
        self.progress = progress
        self.sources = Sources(self.ctx)
        # (model, transform, exclude) -> metrics to compute while that model is loaded
        self._pending: dict[tuple[str, str | None, tuple[str, ...]], set[str]] = {}
        self._loaded: OrderedDict[tuple[str, str | None], tuple[Any, Any]] = OrderedDict()
        self._calibration_texts: dict[str, list[str]] = {}
        self._transforms: dict[str, Any] = {}
        self._held_out: dict[str, list[dict[str, str]]] = {}  # relearn name -> its QA pairs
        self._tokenizers: dict[str, str] = {}
        self._results: dict[Measurement, MetricResult] = {}
        self._coverage: dict[tuple[str, str | None], Any] = {}  # (model, transform) -> Coverage
        self._bootstrap: Any = None  # engine.confidence.Bootstrap, made on first use

    # ------------------------------------------------------------------ environment
    @property
    def device(self) -> str:
        return self.ctx.device

    @property
    def device_type(self) -> str:
        return self.ctx.device_type

    @property
    def stats(self) -> Any:
        """Work counters: trained, unlearned, relearned, transformed, measured, loaded."""
        return self.ctx.stats

    # ------------------------------------------------------------------ sources
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

    def _data_of(self, metric: str) -> str | None:
        ms = self.spec.metrics[metric]
        if ms.data:
            return ms.data
        if "data" in METRICS.get(ms.kind).tags and len(self.spec.data) == 1:
            return next(iter(self.spec.data))
        return None

    def transform(self, name: str) -> Any:
        if name not in self._transforms:
            ts = self.spec.transforms[name]
            t = TRANSFORMS.get(ts.kind).load()(ts.config)
            uses = getattr(t, "uses", ())  # a control built on other transforms (noise)
            if uses:
                t.bind({u: self.transform(u) for u in uses})
            self._transforms[name] = t
        return self._transforms[name]

    def transform_key(self, name: str | None) -> str:
        if name is None:
            return "fp"
        ts = self.spec.transforms[name]
        if ts.kind == "chain":  # composed from its members' keys, in order
            return content_key("transform", "chain", self.transform(name).VERSION,
                               [self.transform_key(u) for u in ts.config.chain])
        config = config_dict(ts.config)
        if ts.kind == "relearn":
            # what it trains on, by content (not where the file or corpus lives), and the
            # seed that drew the holdout and the batch order
            from ..data.calibration import calibration_fingerprint

            return content_key("transform", "relearn",
                               {**config, "path": None, "corpus": None, "seed": None},
                               self.transform(name).VERSION, self._relearn_seed(name),
                               calibration_fingerprint(self.relearn_texts(name)))
        calib: str | None = None
        if getattr(ts.config, "calibration_path", None):
            # the file's content, not where this checkout keeps it
            from ..data.calibration import calibration_fingerprint

            config = {**config, "calibration_path": None}
            calib = calibration_fingerprint(self._calibration(name) or [])
        elif getattr(ts.config, "calibration", None):
            calib = self.data_key(ts.config.calibration)
        uses = [self.transform_key(u) for u in getattr(self.transform(name), "uses", ())]
        return content_key("transform", ts.kind, config,
                           getattr(self.transform(name), "VERSION", "0"),
                           *([calib] if calib else []), *uses)

    def _calibration(self, transform: str) -> list[str] | None:
        """Calibration texts for GPTQ/AWQ: a general text file (`calibration_path`) or the
        retain texts of the corpus the spec names (`calibration`)."""
        config = self.spec.transforms[transform].config
        if getattr(config, "calibration_path", None):
            if transform not in self._calibration_texts:
                from ..data.calibration import read_calibration_file

                self._calibration_texts[transform] = read_calibration_file(
                    config.calibration_path)
            return self._calibration_texts[transform]
        data = getattr(config, "calibration", None)
        return self.corpus(data).raw("retain") if data else None

    def _load(self, model: str, transform: str | None) -> tuple[Any, Any]:
        slot = (model, transform)
        if slot in self._loaded:
            self._loaded.move_to_end(slot)
            return self._loaded[slot]
        limit = max(1, self.spec.settings.max_models_in_memory)
        while len(self._loaded) >= limit:
            self._loaded.popitem(last=False)
            self._free_memory()
        steps = self.members(transform) if transform is not None else []
        relearns = self._relearn_prefix(transform, steps)
        rest = steps[len(relearns):]
        cov = None
        if relearns:  # the relearned checkpoint, trained once and cached like an unlearned one
            path: Path | str = self._fail_as(transform, relearns[-1], model,
                                             lambda: self.relearned_path(model, relearns))
            cov = self._relearn_coverage(model, transform, relearns[-1], path)
        else:
            path = self.model_path(model)
        m, tok = self._load_checkpoint(model, path)
        for i, member in enumerate(rest):
            m, cov = self._fail_as(transform, member, model,
                                   lambda: self._apply_member(member, m, tok, path, i > 0))
        if cov is not None:
            self._coverage[slot] = cov
            self.stats["transformed"] += 1
        self._loaded[slot] = (m, tok)
        return m, tok

    def _load_checkpoint(self, model: str, path: Path | str) -> tuple[Any, Any]:
        from ..models.loading import load_causal_lm

        ms = self.spec.models[model]
        import torch

        # `auto`: the checkpoint's own dtype, as transformers reads it from config.json
        dtype = ms.dtype if ms.dtype == "auto" else getattr(torch, ms.dtype) if ms.dtype else None
        placement = {"device_map": _device_map(ms.device_map, self.device)} \
            if getattr(ms, "device_map", None) else {}
        m, tok = load_causal_lm(path, device=self.device, dtype=dtype, revision=ms.revision,
                                allow_pickle=ms.allow_pickle,
                                trust_remote_code=ms.trust_remote_code, **placement)
        self.stats["loaded"] += 1
        return m, tok

    def _fail_as(self, transform: str, member: str, model: str, work: Any) -> Any:
        """`work()`, its errors said in the spec's words: which transform (and, in a chain,
        which member of it) failed on which model."""
        try:
            return work()
        except Exception as exc:
            # the transform's own RunError says what went wrong, not in which of the
            # spec's transforms and models: both are added here
            what = str(exc) if isinstance(exc, RunError) else f"{type(exc).__name__}: {exc}"
            ts = self.spec.transforms[transform]
            if member != transform:
                ms = self.spec.transforms[member]
                raise RunError(f"{ts.loc}: transform '{transform}' (chain) failed at its member "
                               f"'{member}' ({ms.kind}, {ms.loc}) on model '{model}': "
                               f"{what}") from exc
            raise RunError(f"{ts.loc}: transform '{transform}' ({ts.kind}) failed on model "
                           f"'{model}': {what}") from exc

    def _apply_member(self, member: str, m: Any, tok: Any, path: Path | str,
                      changed: bool) -> tuple[Any, Any]:
        """One transform applied to the loaded model; its coverage checked (a transform that
        leaves the decoder (mostly) as it was gives no numbers). A member that re-reads the
        checkpoint (bitsandbytes, GPTQ, AWQ) after earlier members changed the model gets
        the model as it is now, saved to a temporary checkpoint."""
        from ..transforms.base import TransformContext
        from ..transforms.coverage import apply_measured

        t = self.transform(member)
        ctx = TransformContext(checkpoint=Path(path), tokenizer=tok, device=self.device,
                               calibration=self._calibration(member))
        if not (changed and self.spec.transforms[member].kind in RELOADING):
            out, cov = apply_measured(t, m, ctx)
            return out, cov.check("it", t)
        import tempfile

        (self.cache.root / "tmp").mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=self.cache.root / "tmp") as tmp:
            m.save_pretrained(tmp, safe_serialization=True)
            tok.save_pretrained(tmp)
            out, cov = apply_measured(t, m, dataclasses.replace(ctx, checkpoint=Path(tmp)))
        return out, cov.check("it", t)

    # ------------------------------------------------------------------ relearning, chains
    def members(self, name: str) -> list[str]:
        """The transforms `name` applies, in order: itself, or a chain's members (nested
        chains flattened)."""
        ts = self.spec.transforms[name]
        if ts.kind != "chain":
            return [name]
        return [leaf for member in ts.config.chain for leaf in self.members(member)]

    def _relearn_prefix(self, name: str | None, steps: list[str]) -> list[str]:
        kinds = [self.spec.transforms[s].kind for s in steps]
        n = next((i for i, k in enumerate(kinds) if k != "relearn"), len(kinds))
        if "relearn" in kinds[n:]:
            late = steps[n + kinds[n:].index("relearn")]
            raise RunError(f"{self.spec.transforms[name].loc}: transform '{name}' relearns "
                           f"('{late}') after '{steps[n]}' transformed the model; relearning "
                           f"trains a checkpoint and must come first: chain: [{late}, ...]")
        return steps[:n]

    def _relearn_corpus(self, name: str) -> str:
        ts = self.spec.transforms[name]
        if ts.config.corpus:
            return ts.config.corpus
        if len(self.spec.data) == 1:
            return next(iter(self.spec.data))
        raise RunError(f"{ts.loc}: transform '{name}' needs `corpus:` (the spec has several "
                       f"data entries)")

    def _relearn_seed(self, name: str) -> int:
        seed = self.spec.transforms[name].config.seed
        return int(seed if seed is not None else self.spec.seed)

    def held_out(self, name: str) -> list[dict[str, str]]:
        """The forget QA pairs a `data: forget_holdout` relearning trains on."""
        if name not in self._held_out:
            from ..transforms.holdout import held_out_pairs

            c = self.spec.transforms[name].config
            self._held_out[name] = held_out_pairs(self.corpus(self._relearn_corpus(name)),
                                                  c.holdout, self._relearn_seed(name))
        return self._held_out[name]

    def relearn_texts(self, name: str) -> list[str]:
        c = self.spec.transforms[name].config
        if c.data == "forget_holdout":
            from ..transforms.holdout import relearn_texts

            return relearn_texts(self.held_out(name))
        if c.data == "retain":
            from ..unlearn.sources import select

            return select(self.corpus(self._relearn_corpus(name)), "retain", "documents").texts
        from ..data.files import read_texts

        return read_texts(c.path)

    def relearned_path(self, model: str, relearns: list[str]) -> Path:
        """The checkpoint `model` becomes after the relearning transforms `relearns` (in
        order), each a cached artifact keyed by its base's key and its own."""
        path, key = Path(self.model_path(model)), self.model_key(model)
        for r in relearns:
            key = content_key("relearn", key, self.transform_key(r), __version__,
                              self.device_type)
            path = self.cache.artifact("models", key,
                                       lambda out, base=path, r=r: self._relearn(r, base, out))
        return path

    def _relearn(self, name: str, base: Path, out: Path) -> None:
        from ..transforms.relearn import relearn

        started = time.monotonic()
        result = relearn(self.spec.transforms[name].config, base=base,
                         texts=self.relearn_texts(name), out=out, seed=self._relearn_seed(name),
                         device=self.device, progress=self.progress)
        self.stats["relearned"] += 1
        log.info("unlearnspec: relearned %s in %.1fs", name, time.monotonic() - started)
        (out / "relearn_log.json").write_text(json.dumps(result, default=str))

    def _relearn_coverage(self, model: str, transform: str, member: str, path: Path) -> Any:
        """What relearning changed, measured against the model it started from."""
        from ..transforms.coverage import measure, snapshot

        base, _ = self._load_checkpoint(model, self.model_path(model))
        snap = snapshot(base)
        del base
        relearned, _ = self._load_checkpoint(model, path)
        t = self.transform(member)
        cov = self._fail_as(transform, member, model,
                            lambda: measure(snap, t, relearned).check("it", t))
        del relearned
        return cov

    def exclusions(self, transforms: Iterable[str | None]) -> tuple[str, ...]:
        """The relearning transforms on `data: forget_holdout` among `transforms` (chains
        looked into): a claim naming any of them excludes their held-out pairs everywhere."""
        out: set[str] = set()
        for name in transforms:
            if name is None:
                continue
            for member in self.members(name):
                ts = self.spec.transforms[member]
                if ts.kind == "relearn" and ts.config.data == "forget_holdout":
                    out.add(member)
        return tuple(sorted(out))

    def claim_exclusions(self, claim: ClaimSpec) -> tuple[str, ...]:
        return self.exclusions(ref.transform for ref in metric_refs(claim.expr))

    def _exclusion_key(self, exclude: tuple[str, ...]) -> list[Any]:
        return sorted([self.data_key(self._relearn_corpus(r)),
                       content_key(self.held_out(r))]
                      for r in exclude)

    def _metric_corpus(self, m: Measurement, data: str) -> Any:
        """The metric's corpus; without the held-out pairs of `m.exclude` when they come
        from it (the same content)."""
        corpus = self.corpus(data)
        owners = tuple(r for r in m.exclude
                       if self.data_key(self._relearn_corpus(r)) == self.data_key(data))
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

        excluded = frozenset(pair_key(p) for r in owners for p in self.held_out(r))
        return HeldOutCorpus(corpus.root, excluded=excluded, owners=owners)

    def _free_memory(self) -> None:
        gc.collect()
        try:
            import torch

            if torch.cuda.is_available():
                torch.cuda.empty_cache()
        except ImportError:
            pass

    # ------------------------------------------------------------------ measurements
    def plan(self, measurements: Iterable[Measurement]) -> None:
        """Declare what will be asked, so one model load serves all its measurements."""
        for m in measurements:
            for dep in self._raw_needs(m):
                self._pending.setdefault((dep.model, dep.transform, dep.exclude),
                                         set()).add(dep.metric)

    def _raw_needs(self, m: Measurement) -> list[Measurement]:
        ms = self.spec.metrics[m.metric]
        comp = METRICS.get(ms.kind)
        if "weights" in comp.tags:
            return []
        ref = self._reference_model(m.metric)
        return [m, Measurement(m.metric, ref, exclude=m.exclude)] if ref else [m]

    def _reference_model(self, metric: str) -> str | None:
        """The model whose full-precision raw measurement a "reference" metric combines with
        the subject's (PrivLeak's retrain AUC, TOFU forget quality's retain truth ratios);
        None when it needs none (privleak with a given `auc_retrain`)."""
        ms = self.spec.metrics[metric]
        if "reference" not in METRICS.get(ms.kind).tags:
            return None
        if getattr(ms.config, "auc_retrain", None) is not None:
            return None
        return ms.config.reference

    def measurement_key(self, m: Measurement, *, raw: bool = False) -> str:
        ms = self.spec.metrics[m.metric]
        comp = METRICS.get(ms.kind)
        data = self._data_of(m.metric)
        parts: list[Any] = [
            "metric", ms.kind, "raw" if raw else "", config_dict(ms.config), comp.target,
            self.model_key(m.model), self.transform_key(m.transform),
            self.data_key(data) if data else None, __version__, self.device_type,
        ]
        if m.exclude and data and "weights" not in comp.tags:
            parts.append(["exclude", self._exclusion_key(m.exclude)])
        if "weights" in comp.tags:  # their numbers are the weight-pair kernel's
            parts += [self.model_key(self._weights_reference(m)), KERNEL_VERSION]
        elif not raw and (ref := self._reference_model(m.metric)):
            parts.append(self.measurement_key(Measurement(m.metric, ref, exclude=m.exclude),
                                              raw=True))
        return content_key(*parts)

    def metric_identity(self, metric: str) -> str:
        """What makes two runs' values of one metric comparable: kind, options, data."""
        ms = self.spec.metrics[metric]
        data = self._data_of(metric)
        return content_key(ms.kind, config_dict(ms.config), self.data_key(data) if data else None)

    def measure(self, m: Measurement) -> MetricResult:
        if m in self._results:
            return self._results[m]
        key = self.measurement_key(m)
        cached = _covered(m, self.cache.get_json("metrics", key))
        if cached is None:
            with self.cache.lock("metrics", key):  # another worker may be computing it
                cached = _covered(m, self.cache.get_json("metrics", key))
                if cached is None:
                    result = self._compute(m)
                    self.cache.put_json("metrics", key, result.to_json())
                    cached = result.to_json()
        result = MetricResult.from_json(cached)
        self._results[m] = result
        return result

    def _compute(self, m: Measurement) -> MetricResult:
        ms = self.spec.metrics[m.metric]
        comp = METRICS.get(ms.kind)
        if "weights" in comp.tags:
            if m.transform is None:
                raise RunError(f"{ms.loc}: '{m.metric}' compares quantized weights and needs a "
                               f"transform: write {m.metric} @ <transform>")
            ref = self._weights_reference(m)
            result = comp.load()(Path(self.model_path(ref)), Path(self.model_path(m.model)),
                                 self.transform(m.transform),
                                 calibration=self._calibration(m.transform))
            self.stats["measured"] += 1
            return result
        if ms.kind == "privleak":
            from ..metrics.privleak import privleak_score

            auc = self._raw(m)
            if ms.config.auc_retrain is not None:
                auc_ref = float(ms.config.auc_retrain)
            else:
                auc_ref = self._raw(Measurement(m.metric, ms.config.reference,
                                                exclude=m.exclude)).value
            return MetricResult(
                value=privleak_score(auc.value, auc_ref), n=auc.n, per_sample=auc.per_sample,
                details={**auc.details, "auc": auc.value, "auc_retrain": auc_ref},
            )
        if "reference" in comp.tags:  # the metric module says how the two combine
            import importlib

            ref = self._reference_model(m.metric)
            combine = importlib.import_module(comp.target.partition(":")[0]).combine_reference
            return combine(self._raw(m), self._raw(Measurement(m.metric, ref, exclude=m.exclude)),
                           ms.config)
        return self._raw(m)

    def _weights_reference(self, m: Measurement) -> str:
        ms = self.spec.metrics[m.metric]
        ref = ms.config.reference or self.spec.models[m.model].from_
        if ref is None:
            raise RunError(f"{ms.loc}: '{m.metric}' compares '{m.model}' with the model it was "
                           f"unlearned from, but '{m.model}' has no `from:`; set `reference:` "
                           f"on the metric")
        return ref

    def _raw(self, m: Measurement) -> MetricResult:
        """A data metric's own value (for privleak: the Min-K% AUC), cached on its own, and
        computed together with every other pending measurement of the same loaded model."""
        key = self.measurement_key(m, raw=True)
        cached = _covered(m, self.cache.get_json("raw", key))
        if cached is not None:
            return MetricResult.from_json(cached)
        slot = (m.model, m.transform)
        group = sorted(self._pending.pop((*slot, m.exclude), set()) | {m.metric})
        # one process at a time measures a (model, transform): xdist workers and parallel
        # sessions wait, then find the results in the cache instead of computing them twice
        with self.cache.lock("slot", content_key(self.model_key(m.model),
                                                 self.transform_key(m.transform))):
            return self._raw_group(m, group)

    def _raw_group(self, m: Measurement, group: list[str]) -> MetricResult:
        slot = (m.model, m.transform)
        wanted: MetricResult | None = None
        for metric in group:
            other = dataclasses.replace(m, metric=metric)
            okey = self.measurement_key(other, raw=True)
            result = MetricResult.from_json(cached) if (
                cached := _covered(other, self.cache.get_json("raw", okey))) is not None else None
            if result is None:
                result = self._compute_on_slot(other, slot)
                if slot in self._coverage:  # the coverage the numbers were measured under
                    result = dataclasses.replace(result, details={
                        **result.details, "coverage": self._coverage[slot].to_json()})
                self.cache.put_json("raw", okey, result.to_json())
            if metric == m.metric:
                wanted = result
        assert wanted is not None
        return wanted

    def _compute_on_slot(self, m: Measurement, slot: tuple[str, str | None]) -> MetricResult:
        """The data metric on the loaded (model, transform); a transform with `draws` K > 1
        (matched noise) is applied to K fresh copies of the model, draw by draw, and the
        K results are combined as the transform says (noise: their mean)."""
        draws = getattr(self.transform(slot[1]), "draws", 1) if slot[1] else 1
        if draws <= 1:
            model, tok = self._load(*slot)
            return self._compute_data_metric(m, model, tok)
        import copy

        from ..transforms.base import TransformContext
        from ..transforms.coverage import apply_measured
        from ..transforms.noise import combine_draws

        base, tok = self._load(slot[0], None)
        ts, results = self.spec.transforms[slot[1]], []
        ctx = TransformContext(checkpoint=Path(self.model_path(slot[0])), tokenizer=tok,
                               device=self.device)
        for k in range(draws):
            t = self.transform(slot[1]).with_draw(k)
            try:
                model, cov = apply_measured(t, copy.deepcopy(base), ctx)
                self._coverage[slot] = cov.check("it", t)
            except Exception as exc:
                what = str(exc) if isinstance(exc, RunError) else f"{type(exc).__name__}: {exc}"
                raise RunError(f"{ts.loc}: transform '{slot[1]}' ({ts.kind}) draw {k} failed "
                               f"on model '{slot[0]}': {what}") from exc
            self.stats["transformed"] += 1
            results.append(self._compute_data_metric(m, model, tok))
            del model
        return combine_draws(results)

    def _compute_data_metric(self, m: Measurement, model: Any, tok: Any) -> MetricResult:
        ms = self.spec.metrics[m.metric]
        fn = METRICS.get(ms.kind).load()
        data = self._data_of(m.metric)
        corpus = self._metric_corpus(m, data) if data else None
        started = time.monotonic()
        try:
            result = fn(model, tok, corpus, ms.config, batch_size=self.spec.settings.batch_size)
        except RunError:
            raise
        except Exception as exc:
            raise RunError(f"{ms.loc}: computing {m.label()} failed: "
                           f"{type(exc).__name__}: {exc}") from exc
        self.stats["measured"] += 1
        log.info("unlearnspec: %s = %.4g (n=%d, %.1fs)", m.label(), result.value, result.n,
                 time.monotonic() - started)
        return result

    # ------------------------------------------------------------------ claims
    def measurements_of(self, claim: ClaimSpec, subject: str) -> list[Measurement]:
        """Every measurement a claim needs for one subject (for planning); `baseline` terms
        are read from the stored run, not measured. A seeded subject needs each seed's."""
        from .seeds import expand

        pairs = expand(self, claim, subject)
        if len(pairs) > 1 or pairs[0][1] != subject:
            return [m for c, s in pairs for m in self.measurements_of(c, s)]
        exclude = self.claim_exclusions(claim)
        return [self.measurement_of(ref, subject, exclude) for ref in metric_refs(claim.expr)
                if ref.model != BASELINE]

    @staticmethod
    def measurement_of(ref: MetricRef, subject: str, exclude: tuple[str, ...] = ()
                       ) -> Measurement:
        return Measurement.of(ref, subject, exclude)

    def results(self) -> dict[Measurement, MetricResult]:
        """Every measurement this run has produced so far (computed or from the cache)."""
        return dict(self._results)

    def describe(self, measurements: Iterable[Measurement]) -> dict[str, Any]:
        """The measured ones among `measurements`, for reports: label -> metric, model,
        transform, cache key and the full result (per-sample scores included)."""
        out: dict[str, Any] = {}
        for m in measurements:
            result = self._results.get(m)
            if result is None:
                continue
            out[m.label()] = {
                "metric": m.metric, "kind": self.spec.metrics[m.metric].kind,
                "model": m.model, "transform": m.transform or "fp",
                **({"without_holdout_of": list(m.exclude)} if m.exclude else {}),
                "key": self.measurement_key(m), "identity": self.metric_identity(m.metric),
                "result": result.to_json(),
                # what the transform quantized (per role), None at full precision
                "coverage": result.details.get("coverage") if m.transform else None,
            }
        return out

    def describe_models(self) -> dict[str, Any]:
        """Every model the run touched: its source, config and content key."""
        out: dict[str, Any] = {}
        for name, key in self.sources.model_keys.items():
            ms = self.spec.models[name]
            out[name] = {"key": key, "source": ms.source, "builtin": ms.builtin,
                         "path": ms.path, "revision": ms.revision,
                         "resolved_revision": self.resolved_revision(name), "method": ms.method,
                         "from": ms.from_, "config": config_dict(ms.config),
                         "log": _without_timings(self.sources.logs.get(name))}
        return out

    def describe_transforms(self) -> dict[str, Any]:
        """Each spec transform: kind, options, and the backend's full settings where it has
        them (bnb: the whole BitsAndBytesConfig it loads with)."""
        if getattr(self, "_descriptions", None) is not None:
            return self._descriptions
        out: dict[str, Any] = {}
        for name, ts in self.spec.transforms.items():
            settings = getattr(self.transform(name), "settings", None)
            out[name] = {"kind": ts.kind, "config": config_dict(ts.config),
                         "settings": self._settings(ts, settings) if callable(settings)
                         else None}
        self._descriptions = out
        return out

    def _settings(self, ts: Any, settings: Any) -> Any:
        """A backend's settings (bnb: its BitsAndBytesConfig, built by transformers), memoized
        in the cache by the transform's config and the transformers version: a warm run
        reads them instead of importing transformers."""
        from importlib.metadata import PackageNotFoundError, version

        try:
            key = content_key("settings", ts.kind, config_dict(ts.config), version("transformers"),
                              getattr(self.transform(ts.name), "VERSION", "0"))
        except PackageNotFoundError:
            return settings()
        found = self.cache.get_json("settings", key)
        if found is None:
            found = {"settings": settings()}
            self.cache.put_json("settings", key, found)
        return found["settings"]

    def value(self, ref: MetricRef, subject: str, exclude: tuple[str, ...] = ()) -> float:
        """The value of one claim term; `exclude`: the claim's relearning transforms whose
        held-out pairs its metrics leave out (`claim_exclusions`)."""
        if ref.model == BASELINE:
            from .stored_run import stored_value

            return stored_value(self.stored_run, Measurement(ref.metric, subject, ref.transform,
                                                             exclude),
                                self.metric_identity(ref.metric))
        m = self.measurement_of(ref, subject, exclude)
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
                 self.measurement_of(ref, subject, exclude).label(), value)
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

    def tokenizer_fingerprint(self, model: str) -> str:
        """A hash of the loaded tokenizer's vocabulary and BOS / EOS. Memoized in the cache
        by the content of the checkpoint's non-weight files (and the transformers version),
        so a warm run reads it instead of importing transformers and loading tokenizers."""
        if model not in self._tokenizers:
            ms = self.spec.models[model]
            path = Path(self.model_path(model))
            memo = self._tokenizer_memo_key(path, ms)
            found = self.cache.get_json("tokenizer", memo) if memo else None
            if found is None:
                from transformers import AutoTokenizer

                tok = AutoTokenizer.from_pretrained(str(path), revision=ms.revision,
                                                    trust_remote_code=ms.trust_remote_code)
                found = {"fingerprint": content_key(sorted(tok.get_vocab().items()),
                                                    tok.bos_token, tok.eos_token)}
                if memo:
                    self.cache.put_json("tokenizer", memo, found)
            self._tokenizers[model] = found["fingerprint"]
        return self._tokenizers[model]

    def _tokenizer_memo_key(self, path: Path, ms: Any) -> str | None:
        from importlib.metadata import PackageNotFoundError, version

        from .fingerprint import memoized_fingerprint

        if not path.is_dir():
            return None
        weights = (".safetensors", ".bin", ".pt", ".pth", ".gguf", ".ckpt")
        files = [(p.name, memoized_fingerprint(p, self.cache)) for p in sorted(path.iterdir())
                 if p.is_file() and not p.name.endswith(weights)]
        try:
            tf = version("transformers")
        except PackageNotFoundError:
            return None
        return content_key("tokenizer", files, ms.revision, ms.trust_remote_code, tf)

    def check_same_tokenizer(self, claim: ClaimSpec, subject: str) -> None:
        """Comparing numbers measured through different vocabularies is silently wrong
        (ROUGE over other detokenisations, log-probs over other units): refuse it."""
        needed = [m for m in self.measurements_of(claim, subject) if m.model != BASELINE and
                  "weights" not in METRICS.get(self.spec.metrics[m.metric].kind).tags]
        models = sorted({m.model for m in needed})
        if len(models) < 2:
            return
        first = self.tokenizer_fingerprint(models[0])
        for other in models[1:]:
            if self.tokenizer_fingerprint(other) != first:
                raise RunError(f"{claim.loc}: claim '{claim.name}' compares '{models[0]}' with "
                               f"'{other}', whose tokenizers differ; their metric values are "
                               f"not comparable. Use models that share a tokenizer.")

    def close(self) -> None:
        self._loaded.clear()
        self._free_memory()
