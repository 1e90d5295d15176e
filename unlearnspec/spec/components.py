"""The `transforms:` and `metrics:` sections: entries that name a registered component
(`kind:`) and give its options, checked through the component's config class.

Beyond each config, the checks that span entries: a chain's members exist, hold no cycle, put
relearning first and average no noise draws; `matched_to:` names a quantizer; option values
that name a model or a data entry name one of this spec.
"""
from __future__ import annotations

from ..errors import did_you_mean
from .specfile import SpecFile
from .tree import DataSpec, MetricSpec, ModelSpec, TransformSpec
from .yamlload import LocDict


def read_transforms(file: SpecFile, section: LocDict, data: dict[str, DataSpec]
               ) -> dict[str, TransformSpec]:
    from ..transforms.registry import TRANSFORMS

    out = {}
    for name in section:
        if name == "fp":
            file.fail_key(section, name, "'fp' is reserved: it means 'no transform' and "
                          "cannot be defined", "rename this transform, e.g. rtn4")
        e = file.entry(section, name, "transform", "{kind: rtn, bits: 4}")
        where, loc = f"transform '{name}'", section.key_locs[name]
        if "kind" not in e and "chain" in e:  # {chain: [rel50, rtn4]}
            file.check_keys(e, ("chain",), where)
            comp = TRANSFORMS.get("chain")
            out[name] = TransformSpec(name, loc, "chain",
                                      file.make_config(comp, e, dict(e), where, loc))
            continue
        if "kind" not in e:
            file.fail(loc, f"{where} has no 'kind'",
                      f"add kind: one of {', '.join(TRANSFORMS.names())}")
        comp = file.component(TRANSFORMS, e, "kind", where)
        options = {k: v for k, v in e.items() if k != "kind"}
        config = file.make_config(comp, e, options, where, loc)
        file.refs_in_config(e, config, {"model": set(), "data entry": set(data)}, where)
        config = file.spec_relative(config, "calibration_path")
        if comp.name == "relearn":
            config = file.spec_relative(config, "path")
            if config.corpus is not None:
                file.reference(e, "corpus", data, "data entry", where)
        out[name] = TransformSpec(name, loc, comp.name, config)
    _matched_refs(file, section, out)
    _chain_refs(file, section, out)
    return out


def _chain_refs(file: SpecFile, section: LocDict, out: dict[str, TransformSpec]) -> None:
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
                file.fail(e.loc, f"transform '{name}': chain member '{member}' is not a "
                          f"transform in this spec",
                          did_you_mean(member, sorted(out)) or
                          f"transforms: {', '.join(sorted(out))}")
            if member in path + [name]:
                cycle = " -> ".join(path + [name, member])
                file.fail(e.loc, f"transform '{name}' contains itself through a chain: "
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
            file.fail(loc, f"transform '{name}': relearning member '{late}' comes after "
                      f"'{steps[first_other]}'; relearning trains a checkpoint and must "
                      f"come before the transforms that change a loaded model",
                      f"reorder: chain: [{late}, {steps[first_other]}, ...]")
        for s in steps:
            if out[s].kind == "noise" and out[s].config.draws > 1:
                file.fail(loc, f"transform '{name}': chain member '{s}' averages "
                          f"{out[s].config.draws} noise draws, which a chain cannot "
                          f"repeat", f"give '{s}' draws: 1 (or one chain per seed)")


def _matched_refs(file: SpecFile, section: LocDict, out: dict[str, TransformSpec]) -> None:
    """`matched_to:` (kind: noise) names another transform of this spec, not a noise."""
    for name, ts in out.items():
        target = getattr(ts.config, "matched_to", None)
        if target is None:
            continue
        e = section[name]
        pool = [n for n, t in out.items() if n != name and t.kind != "noise"]
        file.reference(e, "matched_to", pool, "quantizer (a non-noise transform)",
                       f"transform '{name}'")


def read_metrics(file: SpecFile, section: LocDict, data: dict[str, DataSpec],
            models: dict[str, ModelSpec]) -> dict[str, MetricSpec]:
    from ..metrics.registry import METRICS

    out = {}
    for name in section:
        e = file.entry(section, name, "metric", "{kind: knowmem, split: forget}")
        where, loc = f"metric '{name}'", section.key_locs[name]
        if "kind" not in e:
            file.fail(loc, f"{where} has no 'kind'",
                      f"add kind: one of {', '.join(METRICS.names())}")
        comp = file.component(METRICS, e, "kind", where)
        data_name = None
        if "weights" in comp.tags and "data" in e:
            file.fail_key(e, "data", f"{where} is a weight-space metric ({comp.name}) "
                          "and reads no data", "remove 'data:'")
        if "data" in comp.tags:
            data_name = file.default_data(e, data, where, loc)
        options = {k: v for k, v in e.items() if k not in ("kind", "data")}
        config = file.make_config(comp, e, options, where, loc)
        file.refs_in_config(e, config, {"model": set(models), "data entry": set(data)},
                            where)
        out[name] = MetricSpec(name, loc, comp.name, config, data=data_name)
    return out
