"""Where a run's corpora and models come from, and their content keys.

- data   builtin corpus / local dir (content fingerprint) / hub id + revision
- model  builtin (weights digest) / path (its files' xxh3 contents, or hub id + the commit its
         revision resolved to; and the dtype it is loaded in) / GGUF file (dequantized once) /
         unlearned (method, config, source model key, data key, seed)
"""
from __future__ import annotations

import json
import logging
import time
from pathlib import Path
from typing import Any, Callable

from .. import __version__
from ..errors import RunError
from ..models.gguf_file import is_gguf
from ..unlearn.registry import METHODS
from .cache import content_key, file_digest
from .context import RunContext, config_dict
from .fingerprint import directory_fingerprint, memoized_fingerprint

log = logging.getLogger("unlearnspec")


def _unlearn_key_config(config: Any) -> Any:
    """An unlearning config as its cache key sees it: options added later are left out
    while at their defaults, so existing runs keep their keys."""
    from ..unlearn.registry import KEY_DEFAULTS

    out = config_dict(config)
    if isinstance(out, dict):
        for k, default in KEY_DEFAULTS.items():
            if k in out and out[k] == default:
                del out[k]
    return out


def _forget_texts(comp: Any, corpus: Any, packing: str) -> Any:
    """What a method unlearns: the corpus's raw forget texts packed as `packing` says
    (unlearn/sources.py), or (RT: `forget_data = "knowmem_questions"`) its KnowMem forget
    questions."""
    from ..unlearn.sources import select

    source = getattr(comp.load(), "forget_data", "raw")
    if source == "knowmem_questions":
        return [r["question"] for r in corpus.knowmem("forget")]
    if source != "raw":
        raise RunError(f"unlearning method '{comp.name}' asks for forget data {source!r}; "
                       f"known: 'raw', 'knowmem_questions'")
    return select(corpus, "forget", packing)


class Sources:
    """The spec's data and models as paths and keys, each resolved (built, trained,
    unlearned, converted) once and cached."""

    def __init__(self, ctx: RunContext) -> None:
        self.ctx = ctx
        self.spec = ctx.spec
        self.logs: dict[str, Any] = {}  # model name -> unlearning log
        self.model_keys: dict[str, str] = {}  # every model the run touched, in order
        self._model_paths: dict[str, Path | str] = {}
        self._data_paths: dict[str, Path] = {}
        self._data_keys: dict[str, str] = {}
        # called with a model's name just before this process unlearns it (engine/background.py)
        self.before_unlearning: Callable[[str], None] | None = None
        self.unlearned_here: list[str] = []  # the models this process unlearned

    # ------------------------------------------------------------------ data
    def data_path(self, name: str) -> Path:
        if name not in self._data_paths:
            ds = self.spec.data[name]
            if ds.builtin:
                from ..bench import ensure_data

                self._data_paths[name] = ensure_data(ds.builtin, self.ctx.cache.root)
            else:
                self._data_paths[name] = self._resolve_corpus(ds.path, ds.revision)
        return self._data_paths[name]

    def _resolve_corpus(self, path: str, revision: str | None) -> Path:
        """A local MUSE-layout dir, a local copy of a hub dataset, or a hub id (converted
        once into MUSE's layout under the cache)."""
        from ..data.hub_datasets import load_corpus
        from ..models.resolve import resolve_local

        local = resolve_local(path, self.spec.path.parent)
        return load_corpus(local or path, self.ctx.cache.root / "data", revision=revision).root

    def corpus(self, name: str) -> Any:
        from ..data import Corpus

        return Corpus(self.data_path(name))

    def data_key(self, name: str) -> str:
        if name not in self._data_keys:
            self._data_keys[name] = content_key("data", self.corpus(name).fingerprint)
        return self._data_keys[name]

    # ------------------------------------------------------------------ models
    def model_path(self, name: str) -> Path | str:
        """A local checkpoint directory for the model (building/training it if needed), or a
        hub id for hub models."""
        if name in self._model_paths:
            return self._model_paths[name]
        ms = self.spec.models[name]
        self._not_a_group(name)
        cache = self.ctx.cache
        if ms.source == "builtin":
            from ..bench.build import ensure_models_together

            trained: list[str] = []
            others = [m.builtin for m in self.spec.models.values() if m.source == "builtin"]
            path: Path | str = ensure_models_together(ms.builtin, others, cache.root,
                                                      progress=self.ctx.progress,
                                                      trained=trained)
            self.ctx.stats["trained"] += len(trained)
        elif ms.source == "path" and is_gguf(ms.path):
            # dequantized once into a plain checkpoint the rest of the run reads as any other
            path = cache.artifact("models", self.model_key(name),
                                  lambda out: self._from_gguf(name, out))
        elif ms.source == "path":
            from ..models.resolve import resolve_checkpoint

            try:
                path = resolve_checkpoint(ms.path, revision=ms.revision,
                                          base=self.spec.path.parent,
                                          allow_pickle=ms.allow_pickle,
                                          trust_remote_code=ms.trust_remote_code)
            except RunError as exc:  # say which of the spec's models it is
                raise RunError(f"{ms.loc}: model '{name}': {exc}") from exc
        else:
            key = self.model_key(name)
            if self.before_unlearning is not None and not self.is_built(name):
                self.before_unlearning(name)
            path = cache.artifact("models", key, lambda out: self._unlearn(name, out))
            log_file = path / "unlearn_log.json"
            if log_file.is_file():
                self.logs[name] = json.loads(log_file.read_text())
        self._model_paths[name] = path
        return path

    def is_built(self, name: str) -> bool:
        """Whether the model is there without building, training or unlearning anything: a
        benchmark model trained, an unlearned one in the cache, any `path:` model."""
        ms = self.spec.models[name]
        if ms.source == "builtin":
            from ..bench.build import missing_models

            return not missing_models([ms.builtin], self.ctx.cache.root)
        if ms.source == "unlearn":
            cache = self.ctx.cache
            return cache.is_complete(cache.artifact_dir("models", self.model_key(name)))
        return True

    def model_key(self, name: str) -> str:
        if name in self.model_keys:
            return self.model_keys[name]
        ms = self.spec.models[name]
        self._not_a_group(name)
        cache = self.ctx.cache
        if ms.source == "builtin":
            path = Path(self.model_path(name))
            digests = {p.name: file_digest(p) for p in sorted(path.glob("*.safetensors"))}
            key = content_key("builtin", ms.builtin, digests)
        elif ms.source == "path" and is_gguf(ms.path):
            from ..models.gguf_file import versions

            gguf = Path(ms.path)
            if not gguf.is_file():
                raise RunError(f"{ms.loc}: model '{name}': GGUF file {gguf} does not exist")
            tok = (directory_fingerprint(Path(ms.tokenizer), cache)
                   if ms.tokenizer else "gguf-metadata")
            key = content_key("gguf", memoized_fingerprint(gguf, cache), tok, versions(),
                              ms.dtype)
        elif ms.source == "path":
            path = Path(self.model_path(name))
            commit = self.resolved_revision(name)
            if commit is not None:
                # the commit the branch/tag resolved to, not the spec's `revision:` (None
                # or a branch can move on the hub: a stale cache entry must not be reused)
                key = content_key("hub", ms.path, commit, ms.dtype,
                                  *([ms.device_map] if ms.device_map else []))
            else:  # by content, memoized by stat stamp (engine/fingerprint.py)
                files = directory_fingerprint(path, cache)
                key = content_key("path", str(path.resolve()), files, ms.dtype,
                                  *([ms.device_map] if ms.device_map else []))
        else:
            comp = METHODS.get(ms.method)
            seed = ms.config.seed if ms.config.seed is not None else self.spec.seed
            key = content_key(
                "unlearn", ms.method, comp.target, _unlearn_key_config(ms.config),
                self.model_key(ms.from_),
                self.data_key(self.unlearn_data(name)), seed, __version__,
                getattr(comp.load(), "VERSION", "0"), self.ctx.device_type,
            )
        self.model_keys[name] = key
        return key

    def _from_gguf(self, name: str, out: Path) -> None:
        from ..models.gguf_file import convert_gguf

        ms = self.spec.models[name]
        if ms.tokenizer and not Path(ms.tokenizer).is_dir():
            raise RunError(f"{ms.loc}: model '{name}': tokenizer directory {ms.tokenizer} "
                           f"does not exist")
        try:
            convert_gguf(Path(ms.path), out,
                         tokenizer=Path(ms.tokenizer) if ms.tokenizer else None)
        except RunError as exc:
            raise RunError(f"{ms.loc}: model '{name}': {exc}") from exc

    def _not_a_group(self, name: str) -> None:
        ms = self.spec.models[name]
        if ms.seeds:
            from ..spec.tree import seed_model_name

            raise RunError(f"{ms.loc}: model '{name}' is a group of {len(ms.seeds)} seeds "
                           f"{list(ms.seeds)}, not one model; where one model is meant, name "
                           f"a seed, e.g. {seed_model_name(name, ms.seeds[0])}")

    def resolved_revision(self, name: str) -> str | None:
        """The hub commit a `path:` model was loaded at (None for local directories and
        built-in or unlearned models), recorded in reports and used in cache keys."""
        ms = self.spec.models[name]
        if ms.source != "path" or is_gguf(ms.path):
            return None
        from ..models.resolve import resolve_local, snapshot_commit

        if resolve_local(ms.path, self.spec.path.parent) is not None:
            return None  # a local directory, even one inside a hub cache
        return snapshot_commit(Path(self.model_path(name)))

    def unlearn_data(self, name: str) -> str:
        ms = self.spec.models[name]
        if ms.data:
            return ms.data
        if len(self.spec.data) == 1:
            return next(iter(self.spec.data))
        raise RunError(f"{ms.loc}: model '{name}' needs `data:` (the spec has several corpora)")

    def _unlearn(self, name: str, out: Path) -> None:
        from ..unlearn import run_unlearning
        from ..unlearn.sources import select

        ms = self.spec.models[name]
        corpus = self.corpus(self.unlearn_data(name))
        seed = ms.config.seed if ms.config.seed is not None else self.spec.seed
        started = time.monotonic()
        comp = METHODS.get(ms.method)
        # a corpus without retain texts (RWKU's) serves methods that have no retain loss
        retain = select(corpus, "retain", ms.config.packing) \
            if getattr(comp.load(), "uses_retain", True) else []
        result = run_unlearning(
            comp, ms.config, base=Path(self.model_path(ms.from_)),
            forget=_forget_texts(comp, corpus, ms.config.packing),
            retain=retain, out=out,
            seed=seed, device=self.ctx.device, progress=self.ctx.progress,
        )
        self.ctx.stats["unlearned"] += 1
        self.unlearned_here.append(name)
        log.info("unlearnspec: unlearned %s in %.1fs", name, time.monotonic() - started)
        (out / "unlearn_log.json").write_text(json.dumps(result, default=str))
