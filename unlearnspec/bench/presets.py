"""The benchmark's presets: world size, model shape and training recipe, as plain values.

Torch-free. A preset's `key()` (its config + `BENCH_VERSION`) names its cache directory, so
changing any number here, or bumping `BENCH_VERSION` when the generator or the training loop
changes behaviour, retrains instead of reusing a stale checkpoint.
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass

from ..errors import RunError, did_you_mean
from .names import PRESETS

BENCH_VERSION = "3"  # 2: length-bucketed batches; 3: tiny has 2 layers


@dataclass(frozen=True)
class WorldConfig:
    """How many made-up entities, how they split, and the size of each attribute's value pool.

    Value pools are deliberately smaller than the entity count: values repeat across entities,
    so a model cannot answer by copying a rare word; it must bind name -> value."""

    n_entities: int
    n_forget: int
    n_holdout: int
    pool_sizes: tuple[int, int, int, int, int]  # home, trade, pet, tool, song
    qa_doc_sizes: tuple[int, ...] = (1, 4)  # each QA pair appears once per entry, in
    # documents of that many pairs (see World.documents)
    n_icl: int = 3
    n_retain_qa: int = 60  # evaluated retain QA pairs (a fixed sample; all are trained on)


@dataclass(frozen=True)
class ModelConfig:
    hidden: int
    layers: int
    heads: int
    ffn: int
    max_positions: int = 128


@dataclass(frozen=True)
class TrainConfig:
    epochs: int
    lr: float
    batch_size: int = 32
    warmup_frac: float = 0.05
    weight_decay: float = 0.0
    qat_epochs: int = 10
    qat_lr: float = 1e-3


@dataclass(frozen=True)
class Preset:
    name: str
    world: WorldConfig
    model: ModelConfig
    train: TrainConfig
    seed: int = 0

    def key(self) -> str:
        """A short hash of everything that determines this preset's data and checkpoints."""
        blob = json.dumps({"v": BENCH_VERSION, **asdict(self)}, sort_keys=True)
        return hashlib.sha256(blob.encode()).hexdigest()[:12]


_PRESETS = {
    "tiny": Preset(
        name="tiny",
        world=WorldConfig(n_entities=120, n_forget=12, n_holdout=12,
                          pool_sizes=(16, 16, 12, 12, 12), n_icl=3, n_retain_qa=60),
        model=ModelConfig(hidden=128, layers=2, heads=4, ffn=512),
        train=TrainConfig(epochs=80, lr=3e-3, qat_epochs=10, qat_lr=1e-3),
    ),
    "micro": Preset(
        name="micro",
        world=WorldConfig(n_entities=30, n_forget=3, n_holdout=3, pool_sizes=(8, 8, 6, 6, 6),
                          qa_doc_sizes=(1, 3), n_icl=2, n_retain_qa=20),
        model=ModelConfig(hidden=64, layers=2, heads=4, ffn=256),
        train=TrainConfig(epochs=80, lr=3e-3, batch_size=32, qat_epochs=8, qat_lr=1e-3),
    ),
}


def get_preset(name: str | Preset) -> Preset:
    """The preset called `name`; an unknown name is a `RunError` listing the choices."""
    if isinstance(name, Preset):
        return name
    if name not in _PRESETS:
        hint = did_you_mean(name, PRESETS)
        raise RunError(f"unknown benchmark preset '{name}': the built-in presets are "
                       f"{', '.join(PRESETS)}" + (f"; {hint}" if hint else ""))
    return _PRESETS[name]
