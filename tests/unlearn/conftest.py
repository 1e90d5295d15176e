"""Fixtures for the unlearning tests: a private copy of the tiny checkpoint, small forget /
retain corpora over its vocabulary, and a helper that runs a registered method on them."""
from __future__ import annotations

import random
import shutil
from pathlib import Path
from typing import Any, Callable

import pytest
from unlearn_helpers import vocabulary_words


def _texts(seed: int, n: int, words: list[str]) -> list[str]:
    rng = random.Random(seed)
    return [" ".join(rng.choice(words) for _ in range(rng.randint(6, 30))) for _ in range(n)]


@pytest.fixture(scope="session")
def base(tiny_checkpoint: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of the tiny checkpoint that unlearning reads (the session one stays pristine)."""
    dst = tmp_path_factory.mktemp("unlearn-base") / "base"
    shutil.copytree(tiny_checkpoint, dst)
    return dst


@pytest.fixture(scope="session")
def corpus(base: Path) -> tuple[list[str], list[str]]:
    """(forget, retain): 12 + 12 short random documents over the whole tiny vocabulary."""
    words = vocabulary_words(base)
    return _texts(1, 12, words), _texts(2, 12, words)


@pytest.fixture(scope="session")
def target(base: Path, corpus: tuple[list[str], list[str]],
           tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny model fitted to forget ∪ retain (a plain full-batch AdamW loop, ~1 s): a
    model that *knows* both sets, as an unlearning target does. Deterministic."""
    import torch

    from unlearnspec.models.loading import load_causal_lm
    from unlearnspec.unlearn.data import collate, tokenize_documents
    from unlearnspec.unlearn.losses import mean_nll

    torch.manual_seed(0)
    model, tok = load_causal_lm(base)
    batch = collate(tokenize_documents(corpus[0] + corpus[1], tok, 64).ids, tok.pad_token_id)
    opt = torch.optim.AdamW(model.parameters(), lr=2e-2)
    model.train()
    for _ in range(60):
        opt.zero_grad()
        mean_nll(model, batch).backward()
        opt.step()
    out = tmp_path_factory.mktemp("unlearn-target") / "target"
    model.save_pretrained(out)
    tok.save_pretrained(out)
    return out


@pytest.fixture
def unlearn(target: Path, corpus: tuple[list[str], list[str]],
            tmp_path: Path) -> Callable[..., tuple[Path, dict]]:
    """`unlearn("ga_gdr", lr=1e-3, max_steps=5)` -> (checkpoint dir, log), from `target`."""
    from unlearnspec.unlearn import METHODS, run_unlearning

    counter = iter(range(1000))

    def run(name: str, *, seed: int = 0, forget: list[str] | None = None,
            retain: list[str] | None = None, **options: Any) -> tuple[Path, dict]:
        comp = METHODS.get(name)
        options = {"lr": 1e-3, "batch_size": 4, "max_length": 16, "epochs": 2, **options}
        out = tmp_path / f"{name}-{next(counter)}"
        log = run_unlearning(comp, comp.make_config(options), base=target,
                             forget=corpus[0] if forget is None else forget,
                             retain=corpus[1] if retain is None else retain,
                             out=out, seed=seed, progress=False)
        return out, log

    return run
