"""Reading a spec file into a checked `Spec`.

Everything a user can get wrong is caught here, at collection time, as a SpecError naming
the file, the line and the fix: unknown keys (with did-you-mean), option types and values
(through the registries' config classes), references between entries (`from:`, `data:`,
`reference:`), cycles, and every claim (parsed and resolved by `spec.claims`).

Order of checking follows dependencies, not the file: data, then models, transforms,
metrics, then claims; the first error found is raised. This module reads the top level
(`version:`, `seed:`, `settings:`) and runs the section readers: `spec.sources` (data,
models), `spec.components` (transforms, metrics), `spec.claim_entries` (claims), all
checking through `spec.specfile.SpecFile`.
"""
from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

from ..errors import Location, SpecError
from .claim_entries import read_claims
from .components import read_metrics, read_transforms
from .options import field_hints
from .sources import read_data, read_models
from .specfile import SpecFile
from .tree import SPEC_VERSION, Settings, Spec
from .yamlload import MAX_BYTES, LocDict, load_yaml, too_large

TOP_KEYS = ("version", "seed", "settings", "data", "models", "transforms", "metrics", "claims")


def load_spec(path: str | Path) -> Spec:
    """Load and check a spec file. Relative `path:` entries are relative to the file."""
    shown = str(path)
    try:
        size = Path(path).stat().st_size
        if size > MAX_BYTES:  # before reading it: a spec path could name any file
            raise too_large(shown, size)
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise SpecError(f"spec file not found: {shown}",
                        hint="check the path given to --unlearn-spec") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise SpecError(f"cannot read spec file {shown}: {exc}") from None
    return load_spec_text(text, shown, base_dir=Path(path).resolve().parent)


def load_spec_text(text: str, path: str = "<spec>", *, base_dir: Path | None = None) -> Spec:
    """Like `load_spec` for text in memory; `path` is only used in messages."""
    return _load(SpecFile(text, path, base_dir or Path.cwd()))


def _load(file: SpecFile) -> Spec:
    root = load_yaml(file.text, file.path)
    if root is None:
        raise SpecError(f"{file.path}: the spec file is empty",
                        hint="start it with 'version: 1'; see specs/tiny.yaml")
    if not isinstance(root, LocDict):
        file.fail(Location(file.path, 1, 1), "a spec must be a mapping of sections "
                  f"({', '.join(TOP_KEYS)})")
    file.check_keys(root, TOP_KEYS, "the spec")
    version = _version(file, root)
    seed = file.int_value(root, "seed", 0, minimum=0, where="seed")
    settings = _settings(file, root)
    data = read_data(file, file.section(root, "data"))
    models = read_models(file, file.section(root, "models"), data, seed)
    transforms = read_transforms(file, file.section(root, "transforms"), data)
    metrics = read_metrics(file, file.section(root, "metrics"), data, models)
    _unique_names(file, root, models, transforms, metrics)
    spec = Spec(Path(file.path), version, seed, data, models, transforms, metrics, (),
                settings, file.text)
    return replace(spec, claims=read_claims(file, root, spec))


def _version(file: SpecFile, root: LocDict) -> int:
    if "version" not in root:
        raise SpecError("the spec has no 'version'", Location(file.path, 1),
                        hint=f"add 'version: {SPEC_VERSION}' as the first line")
    value = root["version"]
    if type(value) is not int:
        file.fail_value(root, "version", f"'version' must be the number {SPEC_VERSION}, "
                        f"got {value!r}", f"write 'version: {SPEC_VERSION}'")
    if value != SPEC_VERSION:
        file.fail_value(root, "version", f"unsupported spec version {value}: this "
                        f"unlearnspec reads version {SPEC_VERSION}",
                        "upgrade unlearnspec, or rewrite the spec for version 1")
    return value


def _settings(file: SpecFile, root: LocDict) -> Settings:
    m = file.section(root, "settings")
    hints = field_hints(Settings)
    file.check_keys(m, hints, "settings")
    values = {k: file.typed(m, k, hints[k], "settings") for k in m}
    for key in ("batch_size", "max_models_in_memory"):
        if isinstance(values.get(key), int) and values[key] < 1:
            fix = "write a positive number of samples per forward pass, or 'auto' to " \
                "halve it on out-of-memory" if key == "batch_size" else \
                "write how many models may be loaded at once (2 keeps a subject and " \
                "its reference)"
            file.fail_value(m, key, f"settings: '{key}' must be at least 1", fix)
    if "confidence" in m and m["confidence"] is not None:
        values["confidence"] = file.confidence(m, "settings")
    if isinstance(values.get("bootstrap_samples"), int) and values["bootstrap_samples"] < 100:
        file.fail_value(m, "bootstrap_samples", "settings: 'bootstrap_samples' must be at "
                        "least 100 (the tails of the interval are percentiles of them)",
                        "write e.g. bootstrap_samples: 2000")
    return Settings(**values)


def _unique_names(file: SpecFile, root: LocDict, *sections: dict[str, Any]) -> None:
    """Claims refer to models, transforms and metrics by bare name, so one name may
    not mean two of them."""
    seen: dict[str, str] = {}
    for what, entries in zip(("models", "transforms", "metrics"), sections):
        for name in entries:
            if name in seen:
                file.fail(entries[name].loc, f"'{name}' names both a {seen[name][:-1]} "
                          f"and a {what[:-1]}; claims could not tell them apart",
                          "rename one of them", width=len(name))
            seen[name] = what
