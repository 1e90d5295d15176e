"""Reading a spec file into a checked `Spec`.

Everything a user can get wrong is caught here, at collection time, as a SpecError naming
the file, the line and the fix: unknown keys (with did-you-mean), option types and values
(through the registries' config classes), references between entries (`from:`, `data:`,
`reference:`), cycles, and every claim (parsed and resolved by `spec.claims`).

Order of checking follows dependencies, not the file: data, then models, transforms,
metrics, then claims; the first error found is raised.
"""
from __future__ import annotations

import math
import re
from dataclasses import replace
from pathlib import Path
from typing import Any, Iterable, NoReturn

from ..bench.names import BUILTIN_DATA, BUILTIN_MODELS
from ..errors import Location, SpecError, did_you_mean
from ..registry import ConfigError, UnknownComponent
from .claims import NAME_RE, RESERVED, ClaimScope, parse_claim
from .tree import (SPEC_VERSION, ClaimSpec, DataSpec, MetricSpec, ModelSpec, Settings, Spec,
                    TransformSpec, metric_refs, seed_model_name)
from .options import coerce, describe, field_hints, literal_choices
from .yamlload import MAX_BYTES, LocDict, LocList, load_yaml, too_large

TOP_KEYS = ("version", "seed", "settings", "data", "models", "transforms", "metrics", "claims")
DATA_KEYS = ("builtin", "path", "revision")
MODEL_SOURCES = ("builtin", "path", "unlearn")
MODEL_PATH_KEYS = ("path", "revision", "allow_pickle", "trust_remote_code", "dtype", "tokenizer",
                   "device_map")
# accelerate's placement strategies: spread a model over every GPU (then CPU) by free memory
DEVICE_MAPS = ("auto", "balanced", "balanced_low_0", "sequential")
MODEL_DTYPES = ("auto", "float32", "float16", "bfloat16")
CLAIM_KEYS = ("name", "subjects", "assert", "xfail", "confidence", "aggregate")
AGGREGATES = ("every", "mean", "median")
CONFIDENCE_FIX = "write a level between 0.5 and 1, e.g. confidence: 0.95"
# config fields whose value names another spec entry (third-party configs can use the same
# field names to get the same check)
MODEL_OPTIONS = ("reference",)
DATA_OPTIONS = ("calibration",)
_VALUE_END = re.compile(r"\"[^\"]*\"|'[^']*'|[^,}\]#]*")


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
    return _Loader(text, path, base_dir or Path.cwd()).load()


class _Loader:
    def __init__(self, text: str, path: str, base_dir: Path) -> None:
        self.text, self.path, self.base_dir = text, path, base_dir
        self.lines = text.splitlines()

    # ------------------------------------------------------------ errors

    def fail(self, loc: Location, message: str, hint: str | None = None,
             width: int | None = None) -> NoReturn:
        source = self.lines[loc.line - 1] if 0 < loc.line <= len(self.lines) else None
        span = None
        if source is not None and loc.column:
            start = loc.column - 1
            if width is None:
                m = _VALUE_END.match(source, start)
                width = len(m.group().rstrip()) if m else 1
            span = (start, start + max(1, width))
        raise SpecError(message, loc, source=source, span=span, hint=hint)

    def fail_key(self, m: LocDict, key: Any, message: str, hint: str | None = None
                 ) -> NoReturn:
        self.fail(m.key_locs[key], message, hint, width=len(str(key)))

    def fail_value(self, m: LocDict, key: Any, message: str, hint: str | None = None
                   ) -> NoReturn:
        self.fail(m.value_locs[key], message, hint)

    def check_keys(self, m: LocDict, allowed: Iterable[str], where: str) -> None:
        allowed = list(allowed)
        for key in m:
            if key not in allowed:
                hint = did_you_mean(str(key), allowed) or f"allowed keys: {', '.join(allowed)}"
                self.fail_key(m, key, f"unknown key '{key}' in {where}", hint)

    # ------------------------------------------------------------ top level

    def load(self) -> Spec:
        root = load_yaml(self.text, self.path)
        if root is None:
            raise SpecError(f"{self.path}: the spec file is empty",
                            hint="start it with 'version: 1'; see specs/tiny.yaml")
        if not isinstance(root, LocDict):
            self.fail(Location(self.path, 1, 1), "a spec must be a mapping of sections "
                      f"({', '.join(TOP_KEYS)})")
        self.check_keys(root, TOP_KEYS, "the spec")
        version = self.version(root)
        seed = self.int_value(root, "seed", 0, minimum=0, where="seed")
        self.seed = seed  # seeded models' seed that equals it share the unseeded cache key
        settings = self.settings(root)
        data = self.data(self.section(root, "data"))
        models = self.models(self.section(root, "models"), data)
        transforms = self.transforms(self.section(root, "transforms"), data)
        metrics = self.metrics(self.section(root, "metrics"), data, models)
        self.unique_names(root, models, transforms, metrics)
        spec = Spec(Path(self.path), version, seed, data, models, transforms, metrics, (),
                    settings, self.text)
        return replace(spec, claims=self.claims(root, spec))

    def version(self, root: LocDict) -> int:
        if "version" not in root:
            raise SpecError("the spec has no 'version'", Location(self.path, 1),
                            hint=f"add 'version: {SPEC_VERSION}' as the first line")
        value = root["version"]
        if type(value) is not int:
            self.fail_value(root, "version", f"'version' must be the number {SPEC_VERSION}, "
                            f"got {value!r}", f"write 'version: {SPEC_VERSION}'")
        if value != SPEC_VERSION:
            self.fail_value(root, "version", f"unsupported spec version {value}: this "
                            f"unlearnspec reads version {SPEC_VERSION}",
                            "upgrade unlearnspec, or rewrite the spec for version 1")
        return value

    def int_value(self, m: LocDict, key: str, default: int, *, minimum: int, where: str) -> int:
        if key not in m:
            return default
        value = m[key]
        if type(value) is not int or value < minimum:
            self.fail_value(m, key, f"'{where}' must be an integer >= {minimum}, got {value!r}")
        return value

    def section(self, root: LocDict, key: str) -> LocDict:
        if key not in root or root[key] is None:
            return LocDict(root.key_locs.get(key, root.loc))
        if not isinstance(root[key], LocDict):
            self.fail_value(root, key, f"'{key}' must be a mapping of name: {{...}} entries, "
                            f"got {type(root[key]).__name__}")
        return root[key]

    def entry(self, section: LocDict, name: Any, what: str, example: str) -> LocDict:
        if not isinstance(name, str) or not NAME_RE.fullmatch(name):
            self.fail_key(section, name, f"{what} name '{name}' is not a valid name",
                          "names start with a letter or '_' and use letters, digits, '_', "
                          "and '-' or '.' between them (e.g. rtn-4bit)")
        if name in RESERVED:
            self.fail_key(section, name, f"'{name}' is reserved and cannot name a {what}",
                          "'fp' means no transform; 'under', 'abs', 'min', 'max' are claim "
                          "syntax; pick another name")
        value = section[name]
        if not isinstance(value, LocDict):
            self.fail_value(section, name, f"{what} '{name}' must be a mapping, "
                            f"got {value!r}", f"write e.g. {name}: {example}")
        return value

    def settings(self, root: LocDict) -> Settings:
        m = self.section(root, "settings")
        hints = field_hints(Settings)
        self.check_keys(m, hints, "settings")
        values = {k: self.typed(m, k, hints[k], "settings") for k in m}
        for key in ("batch_size", "max_models_in_memory"):
            if isinstance(values.get(key), int) and values[key] < 1:
                fix = "write a positive number of samples per forward pass, or 'auto' to " \
                    "halve it on out-of-memory" if key == "batch_size" else \
                    "write how many models may be loaded at once (2 keeps a subject and " \
                    "its reference)"
                self.fail_value(m, key, f"settings: '{key}' must be at least 1", fix)
        if "confidence" in m and m["confidence"] is not None:
            values["confidence"] = self.confidence(m, "settings")
        if isinstance(values.get("bootstrap_samples"), int) and values["bootstrap_samples"] < 100:
            self.fail_value(m, "bootstrap_samples", "settings: 'bootstrap_samples' must be at "
                            "least 100 (the tails of the interval are percentiles of them)",
                            "write e.g. bootstrap_samples: 2000")
        return Settings(**values)

    def confidence(self, m: LocDict, where: str) -> float:
        """A confidence level: a number in [0.5, 1)."""
        value = m["confidence"]
        if isinstance(value, bool) or not isinstance(value, (int, float)) \
                or not 0.5 <= value < 1:
            self.fail_value(m, "confidence", f"{where}: 'confidence' must be a level in "
                            f"[0.5, 1), got {value!r}", CONFIDENCE_FIX)
        return float(value)

    def typed(self, m: LocDict, key: str, hint: Any, where: str) -> Any:
        ok, value = coerce(m[key], hint)
        if not ok:
            choices = literal_choices(hint)
            hint_text = did_you_mean(str(m[key]), choices) if choices else None
            if isinstance(m[key], (str, int)) and "a number" in describe(hint):
                hint_text = "write a number such as 2e-5 or 0.0001"
                if _overflows(m[key]):
                    hint_text = f"{m[key]!s:.20} is too large to be a finite number; " \
                        + hint_text
            self.fail_value(m, key, f"{where}: option '{key}' must be {describe(hint)}, "
                            f"got {m[key]!r}", hint_text)
        return value

    def string(self, m: LocDict, key: str, where: str) -> str:
        value = m[key]
        if not isinstance(value, str) or not value.strip():
            if key == "xfail":  # `xfail: true` means "expected to fail": ask for why
                fix = 'write the reason the claim is expected to fail, e.g. xfail: "4-bit ' \
                      'RTN undoes the update"'
            elif value is None or (isinstance(value, str) and not value.strip()):
                fix = f"write a value after '{key}:' or remove the key"
            else:
                fix = f'quote it: {key}: "{value}"'
            self.fail_value(m, key, f"{where}: '{key}' must be a non-empty string, "
                            f"got {value!r}", fix)
        return value

    # ------------------------------------------------------------ data

    def data(self, section: LocDict) -> dict[str, DataSpec]:
        out = {}
        for name in section:
            e = self.entry(section, name, "data", "{builtin: tiny}")
            where = f"data '{name}'"
            self.check_keys(e, DATA_KEYS, where)
            loc = section.key_locs[name]
            if ("builtin" in e) == ("path" in e):
                self.fail(loc, f"{where} needs exactly one of 'builtin:' or 'path:'",
                          "write e.g. {builtin: tiny} or {path: ./data/books}")
            if "builtin" in e:
                self.builtin(e, where, BUILTIN_DATA)
                if "revision" in e:
                    self.fail_key(e, "revision", f"{where}: 'revision' applies to path: data")
                out[name] = DataSpec(name, loc, builtin=e["builtin"])
            else:
                out[name] = DataSpec(name, loc, path=self.local_or_hub(e, where),
                                     revision=self.string(e, "revision", where)
                                     if "revision" in e else None)
        return out

    def builtin(self, e: LocDict, where: str, choices: tuple[str, ...]) -> None:
        value = e["builtin"]
        if value not in choices:
            self.fail_value(e, "builtin", f"{where}: unknown builtin '{value}'",
                            did_you_mean(str(value), choices) or f"builtins: {', '.join(choices)}")

    def local_or_hub(self, e: LocDict, where: str) -> str:
        """A local path resolved against the spec's folder, or a hub id kept as written.
        Local: absolute, starting with '.' or '~', existing next to the spec, or with more
        than one '/' (a hub id is 'name' or 'owner/name')."""
        raw = self.string(e, "path", where)
        p = Path(raw).expanduser()
        if p.is_absolute():
            return str(p)
        local = self.base_dir / p
        if raw.startswith((".", "~")) or local.exists() or raw.count("/") > 1:
            return str(local.resolve())
        return raw

    def spec_relative(self, config: Any, key: str) -> Any:
        """`config` with its file option `key` resolved against the spec's folder."""
        raw = getattr(config, key, None)
        if not raw or Path(raw).expanduser().is_absolute():
            return config
        return replace(config, **{key: str((self.base_dir / raw).resolve())})

    def reference(self, m: LocDict, key: str, names: Iterable[str], what: str, where: str
                  ) -> str:
        value = m[key]
        names = sorted(names)
        if not isinstance(value, str) or value not in names:
            self.fail_value(m, key, f"{where}: {key}: '{value}' is not a {what} in this spec",
                            did_you_mean(str(value), names) or
                            f"{what}s: {', '.join(names) or 'none defined'}")
        return value

    def default_data(self, e: LocDict, data: dict[str, DataSpec], where: str,
                     loc: Location) -> str:
        if "data" in e:
            return self.reference(e, "data", data, "data entry", where)
        if len(data) == 1:
            return next(iter(data))
        if not data:
            self.fail(loc, f"{where} needs data, but the spec defines no 'data:' entries",
                      "add e.g. data: {tiny: {builtin: tiny}}")
        self.fail(loc, f"{where} needs to say which data it uses: the spec defines "
                  f"{', '.join(data)}", f"add data: {next(iter(data))}")

    # ------------------------------------------------------------ models

    def models(self, section: LocDict, data: dict[str, DataSpec]) -> dict[str, ModelSpec]:
        out = {}
        for name in section:
            e = self.entry(section, name, "model", "{builtin: tiny/target-qat}")
            out[name] = self.model(name, e, section.key_locs[name], data)
            for seed in out[name].seeds:
                child = seed_model_name(name, seed)
                if child in section:
                    self.fail_key(section, child, f"model name '{child}' is taken by a seed "
                                  f"of model '{name}' (seeds: {list(out[name].seeds)})",
                                  "rename this model")
                config = replace(out[name].config, seed=None if seed == self.seed else seed)
                out[child] = replace(out[name], name=child, config=config, seeds=(),
                                     seed_of=name)
        for name, model in out.items():
            source = out.get(model.from_) if model.from_ else None
            if source is not None and source.seeds:
                self.fail_value(section[name if name in section else model.seed_of], "from",
                                f"model '{name}' is unlearned from '{model.from_}', which is "
                                f"a group of {len(source.seeds)} seeds, not one model",
                                f"name one seed, e.g. from: "
                                f"{seed_model_name(model.from_, source.seeds[0])}")
        for name, model in out.items():
            if model.from_ is not None:
                self.reference(section[model.seed_of or name], "from", out, "model",
                               f"model '{model.seed_of or name}'")
        self.no_cycles(section, out)
        return out

    def model(self, name: str, e: LocDict, loc: Location, data: dict[str, DataSpec]
              ) -> ModelSpec:
        where = f"model '{name}'"
        sources = [k for k in e if k in MODEL_SOURCES]
        if not sources:
            self.check_keys(e, MODEL_SOURCES + MODEL_PATH_KEYS, where)
            self.fail(loc, f"{where} needs one of 'builtin:', 'path:' or 'unlearn:'",
                      "write e.g. {builtin: tiny/target-qat}, {path: ./ckpt} or "
                      "{unlearn: ga_klr, from: target}")
        if len(sources) > 1:
            self.fail_key(e, sources[1], f"{where} has both '{sources[0]}:' and "
                          f"'{sources[1]}:'; a model comes from exactly one", "remove one")
        if sources[0] == "builtin":
            self.check_keys(e, ("builtin",), where)
            self.builtin(e, where, BUILTIN_MODELS)
            return ModelSpec(name, loc, "builtin", builtin=e["builtin"])
        if sources[0] == "path":
            return self.path_model(name, e, loc, where)
        return self.unlearn_model(name, e, loc, where, data)

    def path_model(self, name: str, e: LocDict, loc: Location, where: str) -> ModelSpec:
        self.check_keys(e, MODEL_PATH_KEYS, where)
        flags = {}
        for key in ("allow_pickle", "trust_remote_code"):
            if key in e:
                flags[key] = self.typed(e, key, bool, where)
        dtype = None
        if "dtype" in e:
            dtype = e["dtype"]
            if dtype not in MODEL_DTYPES:
                self.fail_value(e, "dtype", f"{where}: dtype must be one of "
                                f"{', '.join(MODEL_DTYPES)}, got {dtype!r}",
                                did_you_mean(str(dtype), MODEL_DTYPES))
        device_map = None
        if "device_map" in e:
            device_map = e["device_map"]
            if device_map not in DEVICE_MAPS:
                self.fail_value(e, "device_map", f"{where}: device_map must be one of "
                                f"{', '.join(DEVICE_MAPS)} (accelerate places the layers over "
                                f"the GPUs), got {device_map!r}",
                                did_you_mean(str(device_map), DEVICE_MAPS))
        revision = self.string(e, "revision", where) if "revision" in e else None
        path = self.local_or_hub(e, where)
        tokenizer = None
        if path.lower().endswith(".gguf"):
            if revision is not None:
                self.fail_key(e, "revision", f"{where}: 'revision' applies to hub models; a "
                              f".gguf model is a local file", "remove revision, or download the "
                              "file and give its path")
            if not Path(path).is_absolute():
                self.fail_value(e, "path", f"{where}: a .gguf model must be a local file; "
                                f"'{path}' is not next to the spec",
                                "give the file's path, e.g. path: ./model.Q4_K_M.gguf")
            if "tokenizer" in e:
                raw = Path(self.string(e, "tokenizer", where)).expanduser()
                tokenizer = str(raw if raw.is_absolute() else (self.base_dir / raw).resolve())
        elif "tokenizer" in e:
            self.fail_key(e, "tokenizer", f"{where}: 'tokenizer' applies to .gguf models (a "
                          f"checkpoint directory carries its own tokenizer)", "remove it")
        return ModelSpec(name, loc, "path", path=path, revision=revision, dtype=dtype,
                         tokenizer=tokenizer, device_map=device_map, **flags)

    def unlearn_model(self, name: str, e: LocDict, loc: Location, where: str,
                      data: dict[str, DataSpec]) -> ModelSpec:
        from ..unlearn.registry import METHODS

        method = self.component(METHODS, e, "unlearn", where)
        if "from" not in e:
            self.fail(loc, f"{where} is unlearned but does not say from which model",
                      "add from: MODEL, e.g. from: target")
        options = {k: v for k, v in e.items() if k not in ("unlearn", "from", "data", "seeds")}
        config = self.make_config(method, e, options, where, loc)
        seeds = self.seeds(e, where) if "seeds" in e else ()
        if seeds and not hasattr(config, "seed"):
            self.fail_key(e, "seeds", f"{where}: method '{method.name}' has no 'seed' option, "
                          f"so its seeds cannot differ", "remove 'seeds:'")
        from_ = e["from"]
        if not isinstance(from_, str):
            self.fail_value(e, "from", f"{where}: 'from' must name a model, got {from_!r}")
        return ModelSpec(name, loc, "unlearn", method=method.name, from_=from_,
                         data=self.default_data(e, data, where, loc), config=config,
                         seeds=seeds)

    def seeds(self, e: LocDict, where: str) -> tuple[int, ...]:
        value = e["seeds"]
        fix = "write a list of distinct seeds, e.g. seeds: [0, 1, 2]"
        if not isinstance(value, LocList) or not value or any(
                type(s) is not int or s < 0 for s in value):
            self.fail_value(e, "seeds", f"{where}: 'seeds' must be a non-empty list of "
                            f"integers >= 0, got {_plain(value)!r}", fix)
        if len(set(value)) != len(value):
            self.fail_value(e, "seeds", f"{where}: 'seeds' lists a seed twice", fix)
        if "seed" in e:
            self.fail_key(e, "seed", f"{where} has both 'seed' and 'seeds'",
                          "keep one: seeds: [...] trains one model per seed")
        return tuple(value)

    def no_cycles(self, section: LocDict, models: dict[str, ModelSpec]) -> None:
        for start in models:
            chain, name = [start], models[start].from_
            while name is not None:
                if name in chain:
                    cycle = " -> ".join(chain[chain.index(name):] + [name])
                    self.fail_value(section[start], "from", f"model '{start}' is unlearned "
                                    f"from itself through a cycle: {cycle}",
                                    "a 'from:' chain must end at a checkpoint or builtin model")
                chain.append(name)
                name = models[name].from_

    # ------------------------------------------------------------ components

    def component(self, registry: Any, e: LocDict, key: str, where: str) -> Any:
        value = e[key]
        if not isinstance(value, str):
            self.fail_value(e, key, f"{where}: '{key}' must be a name, got {value!r}",
                            f"choose one of {', '.join(registry.names())}")
        try:
            return registry.get(value)
        except UnknownComponent as exc:
            self.fail_value(e, key, f"{where}: unknown {exc.what} '{value}'",
                            exc.hint or f"known: {', '.join(exc.known)}")

    def make_config(self, comp: Any, e: LocDict, options: dict[str, Any], where: str,
                    loc: Location) -> Any:
        hints = field_hints(comp.config)
        typed = {k: self.typed(e, k, hints[k], where) if k in hints else _plain(v)
                 for k, v in options.items()}
        try:
            return comp.make_config(typed)
        except ConfigError as exc:
            message = f"{where}: {exc}"
            found = _find_key(e, exc.key) if exc.key else None
            if found is None:
                self.fail(loc, message, exc.hint)
            owner, key = found
            # a bad value of a known option points at the value; anything else at the key
            if owner is e and key in hints:
                self.fail_value(owner, key, message, exc.hint)
            self.fail_key(owner, key, message, exc.hint)

    def refs_in_config(self, e: LocDict, config: Any, names: dict[str, set[str]],
                       where: str) -> None:
        """Option values that name models or data must name entries of this spec."""
        for key, what in [(k, "model") for k in MODEL_OPTIONS] + [(k, "data entry")
                                                                   for k in DATA_OPTIONS]:
            value = getattr(config, key, None)
            if value is None:
                continue
            pool = names[what]
            if key in e:
                self.reference(e, key, pool, what, where)
            elif value not in pool and getattr(config, "auc_retrain", None) is None:
                self.fail(e.loc, f"{where}: the default {key} '{value}' is not a {what} in "
                          "this spec", f"set {key}: one of {', '.join(sorted(pool)) or 'none'}"
                          + (" or auc_retrain: NUMBER" if hasattr(config, "auc_retrain")
                             else ""))

    # ------------------------------------------------------------ transforms, metrics

    def transforms(self, section: LocDict, data: dict[str, DataSpec]
                   ) -> dict[str, TransformSpec]:
        from ..transforms.registry import TRANSFORMS

        out = {}
        for name in section:
            if name == "fp":
                self.fail_key(section, name, "'fp' is reserved: it means 'no transform' and "
                              "cannot be defined", "rename this transform, e.g. rtn4")
            e = self.entry(section, name, "transform", "{kind: rtn, bits: 4}")
            where, loc = f"transform '{name}'", section.key_locs[name]
            if "kind" not in e and "chain" in e:  # {chain: [rel50, rtn4]}
                self.check_keys(e, ("chain",), where)
                comp = TRANSFORMS.get("chain")
                out[name] = TransformSpec(name, loc, "chain",
                                          self.make_config(comp, e, dict(e), where, loc))
                continue
            if "kind" not in e:
                self.fail(loc, f"{where} has no 'kind'",
                          f"add kind: one of {', '.join(TRANSFORMS.names())}")
            comp = self.component(TRANSFORMS, e, "kind", where)
            options = {k: v for k, v in e.items() if k != "kind"}
            config = self.make_config(comp, e, options, where, loc)
            self.refs_in_config(e, config, {"model": set(), "data entry": set(data)}, where)
            config = self.spec_relative(config, "calibration_path")
            if comp.name == "relearn":
                config = self.spec_relative(config, "path")
                if config.corpus is not None:
                    self.reference(e, "corpus", data, "data entry", where)
            out[name] = TransformSpec(name, loc, comp.name, config)
        self.matched_refs(section, out)
        self.chain_refs(section, out)
        return out

    def chain_refs(self, section: LocDict, out: dict[str, TransformSpec]) -> None:
        """A chain names other transforms of this spec: no cycle, relearning members first
        (they train a checkpoint), no noise member that averages several draws."""
        def leaves(name: str, path: list[str]) -> list[str]:
            ts = out[name]
            if ts.kind != "chain":
                return [name]
            e = section[name]
            found = []
            for i, member in enumerate(ts.config.chain):
                if member not in out:
                    self.fail(e.loc, f"transform '{name}': chain member '{member}' is not a "
                              f"transform in this spec",
                              did_you_mean(member, sorted(out)) or
                              f"transforms: {', '.join(sorted(out))}")
                if member in path + [name]:
                    cycle = " -> ".join(path + [name, member])
                    self.fail(e.loc, f"transform '{name}' contains itself through a chain: "
                              f"{cycle}", "a chain's members must be other transforms")
                found += leaves(member, path + [name])
            return found

        for name, ts in out.items():
            if ts.kind != "chain":
                continue
            loc = section[name].loc
            steps = leaves(name, [])
            kinds = [out[s].kind for s in steps]
            first_other = next((i for i, k in enumerate(kinds) if k != "relearn"), len(kinds))
            if "relearn" in kinds[first_other:]:
                late = steps[first_other + kinds[first_other:].index("relearn")]
                self.fail(loc, f"transform '{name}': relearning member '{late}' comes after "
                          f"'{steps[first_other]}'; relearning trains a checkpoint and must "
                          f"come before the transforms that change a loaded model",
                          f"reorder: chain: [{late}, {steps[first_other]}, ...]")
            for s in steps:
                if out[s].kind == "noise" and out[s].config.draws > 1:
                    self.fail(loc, f"transform '{name}': chain member '{s}' averages "
                              f"{out[s].config.draws} noise draws, which a chain cannot "
                              f"repeat", f"give '{s}' draws: 1 (or one chain per seed)")

    def matched_refs(self, section: LocDict, out: dict[str, TransformSpec]) -> None:
        """`matched_to:` (kind: noise) names another transform of this spec, not a noise."""
        for name, ts in out.items():
            target = getattr(ts.config, "matched_to", None)
            if target is None:
                continue
            e = section[name]
            pool = [n for n, t in out.items() if n != name and t.kind != "noise"]
            self.reference(e, "matched_to", pool, "quantizer (a non-noise transform)",
                           f"transform '{name}'")

    def metrics(self, section: LocDict, data: dict[str, DataSpec],
                models: dict[str, ModelSpec]) -> dict[str, MetricSpec]:
        from ..metrics.registry import METRICS

        out = {}
        for name in section:
            e = self.entry(section, name, "metric", "{kind: knowmem, split: forget}")
            where, loc = f"metric '{name}'", section.key_locs[name]
            if "kind" not in e:
                self.fail(loc, f"{where} has no 'kind'",
                          f"add kind: one of {', '.join(METRICS.names())}")
            comp = self.component(METRICS, e, "kind", where)
            data_name = None
            if "weights" in comp.tags and "data" in e:
                self.fail_key(e, "data", f"{where} is a weight-space metric ({comp.name}) "
                              "and reads no data", "remove 'data:'")
            if "data" in comp.tags:
                data_name = self.default_data(e, data, where, loc)
            options = {k: v for k, v in e.items() if k not in ("kind", "data")}
            config = self.make_config(comp, e, options, where, loc)
            self.refs_in_config(e, config, {"model": set(models), "data entry": set(data)},
                                where)
            out[name] = MetricSpec(name, loc, comp.name, config, data=data_name)
        return out

    def unique_names(self, root: LocDict, *sections: dict[str, Any]) -> None:
        """Claims refer to models, transforms and metrics by bare name, so one name may
        not mean two of them."""
        seen: dict[str, str] = {}
        for what, entries in zip(("models", "transforms", "metrics"), sections):
            for name in entries:
                if name in seen:
                    self.fail(entries[name].loc, f"'{name}' names both a {seen[name][:-1]} "
                              f"and a {what[:-1]}; claims could not tell them apart",
                              "rename one of them", width=len(name))
                seen[name] = what

    # ------------------------------------------------------------ claims

    def claims(self, root: LocDict, spec: Spec) -> tuple[ClaimSpec, ...]:
        items = root.get("claims")
        if items is None:
            return ()
        if not isinstance(items, LocList):
            self.fail_value(root, "claims", "'claims' must be a list of "
                            "{name, subjects, assert} entries", "start each claim with '- name:'")
        scope = ClaimScope.from_spec(spec)
        out: list[ClaimSpec] = []
        names: dict[str, Location] = {}
        for i, item in enumerate(items):
            claim = self.claim(item, items.item_locs[i], i + 1, spec, scope)
            if claim.name in names:
                self.fail_value(item, "name", f"duplicate claim name '{claim.name}' (first "
                                f"used on line {names[claim.name].line})",
                                "claim names must be unique; rename one")
            names[claim.name] = claim.loc
            out.append(claim)
        return tuple(out)

    def claim(self, item: Any, loc: Location, number: int, spec: Spec, scope: ClaimScope
              ) -> ClaimSpec:
        if not isinstance(item, LocDict):
            self.fail(loc, f"claim {number} must be a mapping with name, subjects and assert",
                      "write - {name: ..., subjects: [...], assert: ...}")
        self.check_keys(item, CLAIM_KEYS, f"claim {number}")
        for key in ("name", "subjects", "assert"):
            if key not in item:
                self.fail(item.loc, f"claim {number} has no '{key}'",
                          f"add {key}: ..." if key != "subjects" else "add subjects: [MODEL]")
        name = self.string(item, "name", f"claim {number}")
        where = f"claim '{name}'"
        subjects = self.subjects(item, spec, where)
        text = self.string(item, "assert", where)
        xfail = self.string(item, "xfail", where) if "xfail" in item else None
        assert_loc = item.text_locs.get("assert", item.value_locs["assert"])
        expr = parse_claim(text, scope, loc=assert_loc)
        confidence = spec.settings.confidence
        if "confidence" in item:  # `confidence: false` (or null): this claim on the point
            value = item["confidence"]
            confidence = None if value is None or value is False else \
                self.confidence(item, where)
        if confidence is not None:
            self.bootstrappable(item, expr, spec, where, confidence)
        aggregate = "every"
        if "aggregate" in item:
            aggregate = item["aggregate"]
            if aggregate not in AGGREGATES:
                self.fail_value(item, "aggregate", f"{where}: 'aggregate' must be one of "
                                f"{', '.join(AGGREGATES)}, got {aggregate!r}",
                                did_you_mean(str(aggregate), AGGREGATES) or
                                "every: each seed must hold; mean/median: the claim on the "
                                "seeds' mean/median of each term")
        self.seeded_refs(item, expr, spec, subjects, where, aggregate)
        return ClaimSpec(name, loc, assert_loc, text, expr, subjects, xfail, confidence,
                         aggregate)

    def seeded_refs(self, item: LocDict, expr: Any, spec: Spec, subjects: tuple[str, ...],
                    where: str, aggregate: str) -> None:
        """A seeded model in a claim pairs with its subject's seeds: the subject must be
        seeded with the same seeds. `aggregate:` needs a seeded subject."""
        seeded = [s for s in subjects if spec.models[s].seeds]
        if "aggregate" in item and not seeded:
            self.fail_value(item, "aggregate", f"{where} has 'aggregate' but none of its "
                            f"subjects has seeds", "remove 'aggregate:', or give a subject "
                            "seeds: [...]")
        for ref in metric_refs(expr):
            if ref.model is None or not spec.models.get(ref.model, None) or \
                    not spec.models[ref.model].seeds:
                continue
            seeds = spec.models[ref.model].seeds
            for subject in subjects:
                if spec.models[subject].seeds != seeds:
                    self.fail_value(item, "assert", f"{where} names '{ref.model}', a group "
                                    f"of seeds {list(seeds)}, but its subject '{subject}' "
                                    f"does not have the same seeds to pair them with",
                                    f"name one seed, e.g. "
                                    f"{seed_model_name(ref.model, seeds[0])}, or give "
                                    f"'{subject}' seeds: {list(seeds)}")

    def bootstrappable(self, item: LocDict, expr: Any, spec: Spec, where: str,
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
            self.fail_value(item, key, f"{where} is decided on a {confidence:.0%} bootstrap "
                            f"interval, but {why}", fix)

    def subjects(self, item: LocDict, spec: Spec, where: str) -> tuple[str, ...]:
        value = item["subjects"]
        if not isinstance(value, LocList):
            self.fail_value(item, "subjects", f"{where}: 'subjects' must be a list of models, "
                            f"got {value!r}", f"write subjects: [{value}]")
        if not value:
            self.fail_value(item, "subjects", f"{where} has no subjects",
                            f"list the models it tests, e.g. subjects: "
                            f"[{next(iter(spec.models), 'MODEL')}]")
        models = sorted(spec.models)
        for i, subject in enumerate(value):
            if not isinstance(subject, str) or subject not in spec.models:
                self.fail(value.item_locs[i], f"{where}: subject '{subject}' is not a model "
                          "in this spec", did_you_mean(str(subject), models) or
                          f"models: {', '.join(models) or 'none defined'}")
            if subject in value[:i]:
                self.fail(value.item_locs[i], f"{where}: subject '{subject}' is listed twice")
        return tuple(value)


def _find_key(m: LocDict, key: str) -> tuple[LocDict, str] | None:
    """The mapping (this one or a nested one) that holds `key`, for nested options like
    `sure: {percentile: ...}`."""
    if key in m:
        return m, key
    for value in m.values():
        if isinstance(value, LocDict) and (found := _find_key(value, key)) is not None:
            return found
    return None


def _overflows(value: Any) -> bool:
    """A number's text that float() turns into inf (1e999) or cannot convert (10**400)."""
    try:
        return not math.isfinite(float(value))
    except (OverflowError, ValueError):
        return isinstance(value, int)


def _plain(value: Any) -> Any:
    """Plain dicts and lists for config values (configs outlive the YAML locations)."""
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value
