"""The metric registry and `@metric`, the decorator that fills it. Torch-free.

Each metric module declares its config and registers its function here when it is imported
(unlearnspec/metrics/__init__.py imports the built-in ones); a plug-in does the same from its
own module (docs/metrics.md, "Writing a metric").

Tags the engine reads: "data" (needs the metric's corpus), "weights" (a weight-space metric:
compares the subject with its reference model under the claim's transform, reads no data),
"reference" (needs a reference model's measurement, e.g. PrivLeak's AUC_retrain),
"utility" (reads its own `path:` file, not the corpus), "statistic:mean" (the value is the
mean of `per_sample`, so `confidence:` can resample it).
"""
from __future__ import annotations

from typing import Any, Callable, Iterable, Literal, TypeVar

from ..errors import UnlearnSpecError
from ..registry import Component, Registry

METRICS = Registry("metric", "unlearnspec.metrics")

Split = Literal["forget", "retain", "holdout"]

F = TypeVar("F", bound=Callable[..., Any])


def metric(name: str, config: type, *, unit: str, tags: Iterable[str] = ()) -> Callable[[F], F]:
    """Register the decorated function as metric `name` (the spec's `kind:`), with `config`
    the dataclass of its spec options and `unit` what claims may compare it with.

    The function is called as `fn(model, tokenizer, corpus, config, *, batch_size)` and
    returns a MetricResult; `corpus` is None unless `tags` has "data". Registration records
    the function's dotted path, so the registry itself never imports torch: keep the
    module's heavy imports inside the function. Registering a name twice with another
    function is an error, never a silent override."""

    def register(fn: F) -> F:
        target = f"{fn.__module__}:{fn.__qualname__}"
        known = METRICS._items.get(name)
        if known is not None and known.target != target:
            raise UnlearnSpecError(f"metric '{name}' is registered twice: by {known.target} "
                                   f"and by {target}; rename one of them")
        METRICS.add(Component(name, config, target, tags=frozenset(tags), unit=unit))
        return fn

    return register
