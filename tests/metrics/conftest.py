"""Fixtures for metric tests: a MUSE-layout corpus in the tiny tokenizer's vocabulary, the
random tiny model, and a tiny model trained for a few seconds to memorize the forget set."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

FORGET = ["alpha was born in the city of north river", "beta lives in the red city",
          "gamma works at the blue river", "delta likes the green year"]
HOLDOUT = ["zeta owns a south city", "theta was born on the east river",
           "kappa likes the west color", "lambda works in a blue city"]


def write_muse(root: Path, *, forget=FORGET, holdout=HOLDOUT) -> Path:
    files = {
        # prompt: all but the last three words; gt: those three words
        "verbmem/forget.json": [{"prompt": " ".join(d.split()[:-3]),
                                 "gt": " ".join(d.split()[-3:])} for d in forget],
        "knowmem/forget_qa.json": [{"question": "where was alpha born ?", "answer": "north river"},
                                   {"question": "where does beta live ?", "answer": "red city"},
                                   {"question": "who works at the blue river ?", "answer": "gamma"}],
        "knowmem/forget_qa_icl.json": [{"question": "what does delta like ?",
                                        "answer": "the green year"}],
        "knowmem/retain_qa.json": [{"question": "what does kappa like ?", "answer": "west color"}],
        "knowmem/retain_qa_icl.json": [{"question": "who owns a south city ?", "answer": "zeta"}],
        "privleak/forget.json": list(forget),
        "privleak/holdout.json": list(holdout),
        "privleak/retain.json": list(holdout[:1]),
    }
    for rel, data in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(json.dumps(data))
    return root


@pytest.fixture
def muse_dir(tmp_path: Path) -> Path:
    return write_muse(tmp_path / "muse")


@pytest.fixture(scope="session")
def tiny(tiny_checkpoint: Path):
    from unlearnspec.models.loading import load_causal_lm

    return load_causal_lm(tiny_checkpoint)


@pytest.fixture(scope="session")
def memorizer(tiny_checkpoint: Path, tmp_path_factory: pytest.TempPathFactory):
    """The tiny model trained (Adam, 80 full-batch steps, seed 0) on the forget documents
    (each followed by EOS) only: it remembers them, so its Min-K% AUC of forget vs holdout is ≈ 0."""
    import torch

    from unlearnspec.models.loading import load_causal_lm

    out = tmp_path_factory.mktemp("memorizer")
    shutil.copytree(tiny_checkpoint, out, dirs_exist_ok=True)
    torch.manual_seed(0)
    model, tok = load_causal_lm(out)
    model.train()
    # each document ends with EOS, so the model learns where a passage stops
    batch = tok([d + " " + tok.eos_token for d in FORGET], padding=True, return_tensors="pt")
    labels = batch["input_ids"].masked_fill(batch["attention_mask"] == 0, -100)
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    for _ in range(80):
        loss = model(**batch, labels=labels).loss
        opt.zero_grad()
        loss.backward()
        opt.step()
    model.eval()
    return model, tok


@pytest.fixture(scope="session")
def lettered(tmp_path_factory: pytest.TempPathFactory):
    """A random tiny Llama whose word-level vocabulary has the MMLU answer letters."""
    from metric_helpers import make_lettered

    from unlearnspec.models.loading import load_causal_lm

    return load_causal_lm(make_lettered(tmp_path_factory.mktemp("lettered")))
