"""The same-tokenizer rule: numbers measured through different vocabularies are not
comparable (ROUGE over other detokenisations, log-probs over other units), so a claim that
compares models with different tokenizers is refused."""
from __future__ import annotations

from pathlib import Path
from typing import Any, Iterable

from ..errors import RunError
from ..metrics.registry import METRICS
from ..spec.claims import BASELINE
from ..spec.tree import ClaimSpec
from .cache import content_key
from .context import RunContext
from .fingerprint import memoized_fingerprint
from .measurement import Measurement
from .sources import Sources

_WEIGHT_FILES = (".safetensors", ".bin", ".pt", ".pth", ".gguf", ".ckpt")


class Tokenizers:
    def __init__(self, ctx: RunContext, sources: Sources) -> None:
        self.ctx = ctx
        self.spec = ctx.spec
        self.sources = sources
        self._fingerprints: dict[str, str] = {}

    def fingerprint(self, model: str) -> str:
        """A hash of the loaded tokenizer's vocabulary and BOS / EOS. Memoized in the cache
        by the content of the checkpoint's non-weight files (and the transformers version),
        so a warm run reads it instead of importing transformers and loading tokenizers."""
        if model not in self._fingerprints:
            ms = self.spec.models[model]
            path = Path(self.sources.model_path(model))
            memo = self._memo_key(path, ms)
            cache = self.ctx.cache
            found = cache.get_json("tokenizer", memo) if memo else None
            if found is None:
                from transformers import AutoTokenizer

                tok = AutoTokenizer.from_pretrained(str(path), revision=ms.revision,
                                                    trust_remote_code=ms.trust_remote_code)
                found = {"fingerprint": content_key(sorted(tok.get_vocab().items()),
                                                    tok.bos_token, tok.eos_token)}
                if memo:
                    cache.put_json("tokenizer", memo, found)
            self._fingerprints[model] = found["fingerprint"]
        return self._fingerprints[model]

    def _memo_key(self, path: Path, ms: Any) -> str | None:
        from importlib.metadata import PackageNotFoundError, version

        if not path.is_dir():
            return None
        files = [(p.name, memoized_fingerprint(p, self.ctx.cache)) for p in sorted(path.iterdir())
                 if p.is_file() and not p.name.endswith(_WEIGHT_FILES)]
        try:
            tf = version("transformers")
        except PackageNotFoundError:
            return None
        return content_key("tokenizer", files, ms.revision, ms.trust_remote_code, tf)

    def check_same(self, claim: ClaimSpec, measurements: Iterable[Measurement]) -> None:
        """Refuse `claim` when the models of its data measurements (a stored run's values
        and weight-space metrics aside) have different tokenizers."""
        needed = [m for m in measurements if m.model != BASELINE and
                  "weights" not in METRICS.get(self.spec.metrics[m.metric].kind).tags]
        models = sorted({m.model for m in needed})
        if len(models) < 2:
            return
        first = self.fingerprint(models[0])
        for other in models[1:]:
            if self.fingerprint(other) != first:
                raise RunError(f"{claim.loc}: claim '{claim.name}' compares '{models[0]}' with "
                               f"'{other}', whose tokenizers differ; their metric values are "
                               f"not comparable. Use models that share a tokenizer.")
