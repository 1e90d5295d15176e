"""The spec's transforms as a run applies them: instances, cache keys, calibration texts,
chains flattened into members, and relearning (a transform that trains a checkpoint, cached
like an unlearned model, whose `forget_holdout` pairs a claim's metrics then leave out)."""
from __future__ import annotations

import json
import logging
import time
from pathlib import Path
from typing import Any, Callable, Iterable, TypeVar

from .. import __version__
from ..errors import RunError
from ..transforms.registry import TRANSFORMS
from .cache import content_key
from .context import RunContext, config_dict
from .sources import Sources

log = logging.getLogger("unlearnspec")
T = TypeVar("T")


class SpecTransforms:
    def __init__(self, ctx: RunContext, sources: Sources) -> None:
        self.ctx = ctx
        self.spec = ctx.spec
        self.sources = sources
        self._instances: dict[str, Any] = {}
        self._calibration_texts: dict[str, list[str]] = {}
        self._held_out: dict[str, list[dict[str, str]]] = {}  # relearn name -> its QA pairs

    def get(self, name: str) -> Any:
        """The transform object of spec transform `name`, made once."""
        if name not in self._instances:
            ts = self.spec.transforms[name]
            t = TRANSFORMS.get(ts.kind).load()(ts.config)
            uses = getattr(t, "uses", ())  # a control built on other transforms (noise)
            if uses:
                t.bind({u: self.get(u) for u in uses})
            self._instances[name] = t
        return self._instances[name]

    def key(self, name: str | None) -> str:
        if name is None:
            return "fp"
        ts = self.spec.transforms[name]
        if ts.kind == "chain":  # composed from its members' keys, in order
            return content_key("transform", "chain", self.get(name).VERSION,
                               [self.key(u) for u in ts.config.chain])
        config = config_dict(ts.config)
        if ts.kind == "relearn":
            # what it trains on, by content (not where the file or corpus lives), and the
            # seed that drew the holdout and the batch order
            from ..data.calibration import calibration_fingerprint

            return content_key("transform", "relearn",
                               {**config, "path": None, "corpus": None, "seed": None},
                               self.get(name).VERSION, self.relearn_seed(name),
                               calibration_fingerprint(self.relearn_texts(name)))
        calib: str | None = None
        if getattr(ts.config, "calibration_path", None):
            # the file's content, not where this checkout keeps it
            from ..data.calibration import calibration_fingerprint

            config = {**config, "calibration_path": None}
            calib = calibration_fingerprint(self.calibration(name) or [])
        elif getattr(ts.config, "calibration", None):
            calib = self.sources.data_key(ts.config.calibration)
        uses = [self.key(u) for u in getattr(self.get(name), "uses", ())]
        return content_key("transform", ts.kind, config,
                           getattr(self.get(name), "VERSION", "0"),
                           *([calib] if calib else []), *uses)

    def calibration(self, transform: str) -> list[str] | None:
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
        return self.sources.corpus(data).raw("retain") if data else None

    def fail_as(self, transform: str, member: str, model: str, work: Callable[[], T]) -> T:
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

    # ------------------------------------------------------------------ chains, relearning
    def members(self, name: str) -> list[str]:
        """The transforms `name` applies, in order: itself, or a chain's members (nested
        chains flattened)."""
        ts = self.spec.transforms[name]
        if ts.kind != "chain":
            return [name]
        return [leaf for member in ts.config.chain for leaf in self.members(member)]

    def relearn_prefix(self, name: str | None, steps: list[str]) -> list[str]:
        """The relearning members `steps` starts with; a relearning after another kind of
        member is refused (relearning trains a checkpoint)."""
        kinds = [self.spec.transforms[s].kind for s in steps]
        n = next((i for i, k in enumerate(kinds) if k != "relearn"), len(kinds))
        if "relearn" in kinds[n:]:
            late = steps[n + kinds[n:].index("relearn")]
            raise RunError(f"{self.spec.transforms[name].loc}: transform '{name}' relearns "
                           f"('{late}') after '{steps[n]}' transformed the model; relearning "
                           f"trains a checkpoint and must come first: chain: [{late}, ...]")
        return steps[:n]

    def relearn_corpus(self, name: str) -> str:
        ts = self.spec.transforms[name]
        if ts.config.corpus:
            return ts.config.corpus
        if len(self.spec.data) == 1:
            return next(iter(self.spec.data))
        raise RunError(f"{ts.loc}: transform '{name}' needs `corpus:` (the spec has several "
                       f"data entries)")

    def relearn_seed(self, name: str) -> int:
        seed = self.spec.transforms[name].config.seed
        return int(seed if seed is not None else self.spec.seed)

    def held_out(self, name: str) -> list[dict[str, str]]:
        """The forget QA pairs a `data: forget_holdout` relearning trains on."""
        if name not in self._held_out:
            from ..transforms.holdout import held_out_pairs

            c = self.spec.transforms[name].config
            self._held_out[name] = held_out_pairs(
                self.sources.corpus(self.relearn_corpus(name)), c.holdout,
                self.relearn_seed(name))
        return self._held_out[name]

    def relearn_texts(self, name: str) -> list[str]:
        c = self.spec.transforms[name].config
        if c.data == "forget_holdout":
            from ..transforms.holdout import relearn_texts

            return relearn_texts(self.held_out(name))
        if c.data == "retain":
            from ..unlearn.sources import select

            return select(self.sources.corpus(self.relearn_corpus(name)), "retain",
                          "documents").texts
        from ..data.files import read_texts

        return read_texts(c.path)

    def relearned_path(self, model: str, relearns: list[str]) -> Path:
        """The checkpoint `model` becomes after the relearning transforms `relearns` (in
        order), each a cached artifact keyed by its base's key and its own."""
        path, key = Path(self.sources.model_path(model)), self.sources.model_key(model)
        for r in relearns:
            key = content_key("relearn", key, self.key(r), __version__, self.ctx.device_type)
            path = self.ctx.cache.artifact(
                "models", key, lambda out, base=path, r=r: self._relearn(r, base, out))
        return path

    def _relearn(self, name: str, base: Path, out: Path) -> None:
        from ..transforms.relearn import relearn

        started = time.monotonic()
        result = relearn(self.spec.transforms[name].config, base=base,
                         texts=self.relearn_texts(name), out=out, seed=self.relearn_seed(name),
                         device=self.ctx.device, progress=self.ctx.progress)
        self.ctx.stats["relearned"] += 1
        log.info("unlearnspec: relearned %s in %.1fs", name, time.monotonic() - started)
        (out / "relearn_log.json").write_text(json.dumps(result, default=str))

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

    def exclusion_key(self, exclude: tuple[str, ...]) -> list[Any]:
        """What the held-out pairs of `exclude` add to a measurement's key: each one's corpus
        and pairs, by content."""
        return sorted([self.sources.data_key(self.relearn_corpus(r)),
                       content_key(self.held_out(r))]
                      for r in exclude)
