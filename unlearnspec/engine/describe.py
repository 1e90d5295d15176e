"""What the reports read of a run: its measurements, models and transforms as plain JSON
values (docs/report.md has the schema); the shapes are the report's, byte for byte."""
from __future__ import annotations

from typing import Any, Iterable

from .cache import content_key
from .context import RunContext, config_dict
from .measurement import Measurement
from .measuring import Measurer
from .sources import Sources
from .transforms import SpecTransforms


def _without_timings(log: Any) -> Any:
    """An unlearning log minus wall-clock fields, so equal runs give equal reports."""
    if not isinstance(log, dict):
        return log
    return {k: v for k, v in log.items() if k not in ("seconds", "wall_s", "cpu_s")}


class Descriptions:
    def __init__(self, ctx: RunContext, sources: Sources, transforms: SpecTransforms,
                 measurer: Measurer) -> None:
        self.ctx = ctx
        self.spec = ctx.spec
        self.sources = sources
        self.transforms = transforms
        self.measurer = measurer
        self._transforms: dict[str, Any] | None = None

    def of_measurements(self, measurements: Iterable[Measurement]) -> dict[str, Any]:
        """The measured ones among `measurements`, for reports: label -> metric, model,
        transform, cache key and the full result (per-sample scores included)."""
        out: dict[str, Any] = {}
        for m in measurements:
            result = self.measurer.results.get(m)
            if result is None:
                continue
            out[m.label()] = {
                "metric": m.metric, "kind": self.spec.metrics[m.metric].kind,
                "model": m.model, "transform": m.transform or "fp",
                **({"without_holdout_of": list(m.exclude)} if m.exclude else {}),
                "key": self.measurer.key(m), "identity": self.measurer.metric_identity(m.metric),
                "result": result.to_json(),
                # what the transform quantized (per role), None at full precision
                "coverage": result.details.get("coverage") if m.transform else None,
            }
        return out

    def of_models(self) -> dict[str, Any]:
        """Every model the run touched: its source, config and content key."""
        out: dict[str, Any] = {}
        for name, key in self.sources.model_keys.items():
            ms = self.spec.models[name]
            out[name] = {"key": key, "source": ms.source, "builtin": ms.builtin,
                         "path": ms.path, "revision": ms.revision,
                         "resolved_revision": self.sources.resolved_revision(name),
                         "method": ms.method, "from": ms.from_, "config": config_dict(ms.config),
                         "log": _without_timings(self.sources.logs.get(name))}
        return out

    def of_transforms(self) -> dict[str, Any]:
        """Each spec transform: kind, options, and the backend's full settings where it has
        them (bnb: the whole BitsAndBytesConfig it loads with)."""
        if self._transforms is not None:
            return self._transforms
        out: dict[str, Any] = {}
        for name, ts in self.spec.transforms.items():
            settings = getattr(self.transforms.get(name), "settings", None)
            out[name] = {"kind": ts.kind, "config": config_dict(ts.config),
                         "settings": self._settings(ts, settings) if callable(settings)
                         else None}
        self._transforms = out
        return out

    def _settings(self, ts: Any, settings: Any) -> Any:
        """A backend's settings (bnb: its BitsAndBytesConfig, built by transformers), memoized
        in the cache by the transform's config and the transformers version: a warm run
        reads them instead of importing transformers."""
        from importlib.metadata import PackageNotFoundError, version

        try:
            key = content_key("settings", ts.kind, config_dict(ts.config), version("transformers"),
                              getattr(self.transforms.get(ts.name), "VERSION", "0"))
        except PackageNotFoundError:
            return settings()
        cache = self.ctx.cache
        found = cache.get_json("settings", key)
        if found is None:
            found = {"settings": settings()}
            cache.put_json("settings", key, found)
        return found["settings"]
