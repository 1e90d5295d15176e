"""The `data:` and `models:` sections: where the corpora and the checkpoints come from.

A data entry is a builtin corpus or a path; a model is a builtin, a checkpoint path (a
directory, a hub id or a `.gguf` file) or the output of an unlearning method run `from:`
another model, possibly once per seed (`seeds: [...]` makes one model `NAME.seedS` each).
"""
from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from ..bench.names import BUILTIN_DATA, BUILTIN_MODELS
from ..errors import Location, did_you_mean
from .specfile import SpecFile, plain
from .tree import DataSpec, ModelSpec, seed_model_name
from .yamlload import LocDict, LocList

DATA_KEYS = ("builtin", "path", "revision")
MODEL_SOURCES = ("builtin", "path", "unlearn")
MODEL_PATH_KEYS = ("path", "revision", "allow_pickle", "trust_remote_code", "dtype", "tokenizer",
                   "device_map")
# accelerate's placement strategies: spread a model over every GPU (then CPU) by free memory
DEVICE_MAPS = ("auto", "balanced", "balanced_low_0", "sequential")
MODEL_DTYPES = ("auto", "float32", "float16", "bfloat16")


def read_data(file: SpecFile, section: LocDict) -> dict[str, DataSpec]:
    out = {}
    for name in section:
        e = file.entry(section, name, "data", "{builtin: tiny}")
        where = f"data '{name}'"
        file.check_keys(e, DATA_KEYS, where)
        loc = section.key_locs[name]
        if ("builtin" in e) == ("path" in e):
            file.fail(loc, f"{where} needs exactly one of 'builtin:' or 'path:'",
                      "write e.g. {builtin: tiny} or {path: ./data/books}")
        if "builtin" in e:
            _builtin(file, e, where, BUILTIN_DATA)
            if "revision" in e:
                file.fail_key(e, "revision", f"{where}: 'revision' applies to path: data")
            out[name] = DataSpec(name, loc, builtin=e["builtin"])
        else:
            out[name] = DataSpec(name, loc, path=_local_or_hub(file, e, where),
                                 revision=file.string(e, "revision", where)
                                 if "revision" in e else None)
    return out


def _builtin(file: SpecFile, e: LocDict, where: str, choices: tuple[str, ...]) -> None:
    value = e["builtin"]
    if value not in choices:
        file.fail_value(e, "builtin", f"{where}: unknown builtin '{value}'",
                        did_you_mean(str(value), choices) or f"builtins: {', '.join(choices)}")


def _local_or_hub(file: SpecFile, e: LocDict, where: str) -> str:
    """A local path resolved against the spec's folder, or a hub id kept as written.
    Local: absolute, starting with '.' or '~', existing next to the spec, or with more
    than one '/' (a hub id is 'name' or 'owner/name')."""
    raw = file.string(e, "path", where)
    p = Path(raw).expanduser()
    if p.is_absolute():
        return str(p)
    local = file.base_dir / p
    if raw.startswith((".", "~")) or local.exists() or raw.count("/") > 1:
        return str(local.resolve())
    return raw


def read_models(file: SpecFile, section: LocDict, data: dict[str, DataSpec], spec_seed: int
                ) -> dict[str, ModelSpec]:
    """The models; a seeded group adds one model per seed, and the seed that equals the
    spec's `seed:` trains with the unseeded config (so it shares the unseeded cache key)."""
    out = {}
    for name in section:
        e = file.entry(section, name, "model", "{builtin: tiny/target-qat}")
        out[name] = _model(file, name, e, section.key_locs[name], data)
        for seed in out[name].seeds:
            child = seed_model_name(name, seed)
            if child in section:
                file.fail_key(section, child, f"model name '{child}' is taken by a seed "
                              f"of model '{name}' (seeds: {list(out[name].seeds)})",
                              "rename this model")
            config = replace(out[name].config, seed=None if seed == spec_seed else seed)
            out[child] = replace(out[name], name=child, config=config, seeds=(),
                                 seed_of=name)
    for name, model in out.items():
        source = out.get(model.from_) if model.from_ else None
        if source is not None and source.seeds:
            file.fail_value(section[name if name in section else model.seed_of], "from",
                            f"model '{name}' is unlearned from '{model.from_}', which is "
                            f"a group of {len(source.seeds)} seeds, not one model",
                            f"name one seed, e.g. from: "
                            f"{seed_model_name(model.from_, source.seeds[0])}")
    for name, model in out.items():
        if model.from_ is not None:
            file.reference(section[model.seed_of or name], "from", out, "model",
                           f"model '{model.seed_of or name}'")
    _no_cycles(file, section, out)
    return out


def _model(file: SpecFile, name: str, e: LocDict, loc: Location, data: dict[str, DataSpec]
          ) -> ModelSpec:
    where = f"model '{name}'"
    sources = [k for k in e if k in MODEL_SOURCES]
    if not sources:
        file.check_keys(e, MODEL_SOURCES + MODEL_PATH_KEYS, where)
        file.fail(loc, f"{where} needs one of 'builtin:', 'path:' or 'unlearn:'",
                  "write e.g. {builtin: tiny/target-qat}, {path: ./ckpt} or "
                  "{unlearn: ga_klr, from: target}")
    if len(sources) > 1:
        file.fail_key(e, sources[1], f"{where} has both '{sources[0]}:' and "
                      f"'{sources[1]}:'; a model comes from exactly one", "remove one")
    if sources[0] == "builtin":
        file.check_keys(e, ("builtin",), where)
        _builtin(file, e, where, BUILTIN_MODELS)
        return ModelSpec(name, loc, "builtin", builtin=e["builtin"])
    if sources[0] == "path":
        return _path_model(file, name, e, loc, where)
    return _unlearn_model(file, name, e, loc, where, data)


def _path_model(file: SpecFile, name: str, e: LocDict, loc: Location, where: str) -> ModelSpec:
    file.check_keys(e, MODEL_PATH_KEYS, where)
    flags = {}
    for key in ("allow_pickle", "trust_remote_code"):
        if key in e:
            flags[key] = file.typed(e, key, bool, where)
    dtype = None
    if "dtype" in e:
        dtype = e["dtype"]
        if dtype not in MODEL_DTYPES:
            file.fail_value(e, "dtype", f"{where}: dtype must be one of "
                            f"{', '.join(MODEL_DTYPES)}, got {dtype!r}",
                            did_you_mean(str(dtype), MODEL_DTYPES))
    device_map = None
    if "device_map" in e:
        device_map = e["device_map"]
        if device_map not in DEVICE_MAPS:
            file.fail_value(e, "device_map", f"{where}: device_map must be one of "
                            f"{', '.join(DEVICE_MAPS)} (accelerate places the layers over "
                            f"the GPUs), got {device_map!r}",
                            did_you_mean(str(device_map), DEVICE_MAPS))
    revision = file.string(e, "revision", where) if "revision" in e else None
    path = _local_or_hub(file, e, where)
    tokenizer = None
    if path.lower().endswith(".gguf"):
        if revision is not None:
            file.fail_key(e, "revision", f"{where}: 'revision' applies to hub models; a "
                          f".gguf model is a local file", "remove revision, or download the "
                          "file and give its path")
        if not Path(path).is_absolute():
            file.fail_value(e, "path", f"{where}: a .gguf model must be a local file; "
                            f"'{path}' is not next to the spec",
                            "give the file's path, e.g. path: ./model.Q4_K_M.gguf")
        if "tokenizer" in e:
            raw = Path(file.string(e, "tokenizer", where)).expanduser()
            tokenizer = str(raw if raw.is_absolute() else (file.base_dir / raw).resolve())
    elif "tokenizer" in e:
        file.fail_key(e, "tokenizer", f"{where}: 'tokenizer' applies to .gguf models (a "
                      f"checkpoint directory carries its own tokenizer)", "remove it")
    return ModelSpec(name, loc, "path", path=path, revision=revision, dtype=dtype,
                     tokenizer=tokenizer, device_map=device_map, **flags)


def _unlearn_model(file: SpecFile, name: str, e: LocDict, loc: Location, where: str,
                  data: dict[str, DataSpec]) -> ModelSpec:
    from ..unlearn.registry import METHODS

    method = file.component(METHODS, e, "unlearn", where)
    if "from" not in e:
        file.fail(loc, f"{where} is unlearned but does not say from which model",
                  "add from: MODEL, e.g. from: target")
    options = {k: v for k, v in e.items() if k not in ("unlearn", "from", "data", "seeds")}
    config = file.make_config(method, e, options, where, loc)
    seeds = _seeds(file, e, where) if "seeds" in e else ()
    if seeds and not hasattr(config, "seed"):
        file.fail_key(e, "seeds", f"{where}: method '{method.name}' has no 'seed' option, "
                      f"so its seeds cannot differ", "remove 'seeds:'")
    from_ = e["from"]
    if not isinstance(from_, str):
        file.fail_value(e, "from", f"{where}: 'from' must name a model, got {from_!r}")
    return ModelSpec(name, loc, "unlearn", method=method.name, from_=from_,
                     data=file.default_data(e, data, where, loc), config=config,
                     seeds=seeds)


def _seeds(file: SpecFile, e: LocDict, where: str) -> tuple[int, ...]:
    value = e["seeds"]
    fix = "write a list of distinct seeds, e.g. seeds: [0, 1, 2]"
    if not isinstance(value, LocList) or not value or any(
            type(s) is not int or s < 0 for s in value):
        file.fail_value(e, "seeds", f"{where}: 'seeds' must be a non-empty list of "
                        f"integers >= 0, got {plain(value)!r}", fix)
    if len(set(value)) != len(value):
        file.fail_value(e, "seeds", f"{where}: 'seeds' lists a seed twice", fix)
    if "seed" in e:
        file.fail_key(e, "seed", f"{where} has both 'seed' and 'seeds'",
                      "keep one: seeds: [...] trains one model per seed")
    return tuple(value)


def _no_cycles(file: SpecFile, section: LocDict, models: dict[str, ModelSpec]) -> None:
    for start in models:
        chain, name = [start], models[start].from_
        while name is not None:
            if name in chain:
                cycle = " -> ".join(chain[chain.index(name):] + [name])
                file.fail_value(section[start], "from", f"model '{start}' is unlearned "
                                f"from itself through a cycle: {cycle}",
                                "a 'from:' chain must end at a checkpoint or builtin model")
            chain.append(name)
            name = models[name].from_
