"""Registries of components (methods, transforms, metrics, data loaders).

A registry maps a name to a `Component`: a torch-free config dataclass (what a spec may set,
checked at collection time) and the dotted path of the implementation (imported only when a
run computes). Third-party packages add components through entry points, e.g.::

    [project.entry-points."unlearnspec.methods"]
    my_method = "my_pkg.registry:MY_METHOD"   # a Component

so a new unlearning method plugs in without forking.
"""
from __future__ import annotations

import dataclasses
import importlib
import types
from dataclasses import dataclass
from importlib.metadata import entry_points
from typing import Any, Callable, Iterator, Mapping

from .errors import UnlearnSpecError, did_you_mean


class UnknownComponent(UnlearnSpecError, KeyError):
    def __init__(self, what: str, name: str, hint: str | None, known: list[str]) -> None:
        self.what, self.name, self.hint, self.known = what, name, hint, known
        msg = f"unknown {what} '{name}'"
        msg += f"; {hint}" if hint else f" (known: {', '.join(known)})"
        UnlearnSpecError.__init__(self, msg)

    def __str__(self) -> str:  # KeyError would add quotes
        return self.args[0]


class ConfigError(UnlearnSpecError, ValueError):
    """A component's options are wrong. `key` names the offending option when there is one."""

    def __init__(self, message: str, key: str | None = None, hint: str | None = None) -> None:
        super().__init__(message)
        self.key, self.hint = key, hint


@dataclass(frozen=True)
class Component:
    """A registered component. `config` is a dataclass whose fields are the spec options."""

    name: str
    config: type
    target: str  # "package.module:attribute", imported on demand
    doc: str = ""
    # free-form flags the engine reads, e.g. "weights" (a weight-space metric: needs a
    # transform and a reference model, no data) or "data" (needs a corpus)
    tags: frozenset[str] = frozenset()
    # for metrics: the unit of the value ("percent", "auc", "fraction", ...). Claims may only
    # add, subtract or compare metrics of one unit (numbers go with anything).
    unit: str = ""

    def load(self) -> Any:
        module, _, attr = self.target.partition(":")
        return getattr(importlib.import_module(module), attr)

    def make_config(self, options: Mapping[str, Any]) -> Any:
        """Build the config from spec options; unknown keys and bad values raise ConfigError."""
        return build_config(self.config, options, what=f"{self.name!r}")


def build_config(cls: type, options: Mapping[str, Any], *, what: str) -> Any:
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    for key in options:
        if key not in fields:
            raise ConfigError(
                f"{what} has no option '{key}' (options: {', '.join(fields) or 'none'})",
                key=key,
                hint=did_you_mean(key, fields),
            )
    try:
        return cls(**dict(options))
    except ConfigError:
        raise
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"{what}: {exc}") from exc


class Registry:
    def __init__(self, what: str, group: str) -> None:
        self.what = what
        self.group = group
        self._items: dict[str, Component] = {}
        self._loaded_entry_points = False

    def add(self, component: Component) -> Component:
        self._items[component.name] = component
        return component

    def _load_entry_points(self) -> None:
        if self._loaded_entry_points:
            return
        self._loaded_entry_points = True
        for ep in entry_points(group=self.group):
            obj = ep.load()
            if isinstance(obj, types.ModuleType):
                continue  # importing it registered its components (e.g. @metric functions)
            obj = obj() if callable(obj) and not isinstance(obj, Component) else obj
            for comp in obj if isinstance(obj, (list, tuple)) else [obj]:
                if not isinstance(comp, Component):
                    raise UnlearnSpecError(
                        f"entry point {ep.name!r} in group {self.group!r} must give a "
                        f"unlearnspec.registry.Component (or a module that registers its "
                        f"components when imported), got {type(comp).__name__}"
                    )
                self._items.setdefault(comp.name, comp)

    def get(self, name: str) -> Component:
        self._load_entry_points()
        try:
            return self._items[name]
        except KeyError:
            known = sorted(self._items)
            raise UnknownComponent(self.what, name, did_you_mean(name, known), known) from None

    def names(self) -> list[str]:
        self._load_entry_points()
        return sorted(self._items)

    def __contains__(self, name: str) -> bool:
        self._load_entry_points()
        return name in self._items

    def __iter__(self) -> Iterator[Component]:
        self._load_entry_points()
        return iter(list(self._items.values()))


def check(condition: bool, message: str, key: str | None = None) -> None:
    """For config `__post_init__`s: raise ConfigError naming the option when `condition` fails."""
    if not condition:
        raise ConfigError(message, key=key)


Factory = Callable[..., Any]
