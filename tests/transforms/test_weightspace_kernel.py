"""The streamed weight metrics on diff's kernel: on random checkpoint pairs, code_flip_rate
and update_retention equal the per-transform definition (`tally.block_tally`: quantize each
tensor with the transform, compare codes, float64 sums, tensors added in name order) bit for
bit, for RTN's fused pass and for transforms that take the definition's path."""
from __future__ import annotations

import json
import tempfile
from pathlib import Path

import numpy as np
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from safetensors.torch import save_file

from unlearnspec.diff import parse_transform
from unlearnspec.transforms.config_roles import plain_roles
from unlearnspec.transforms.tally import Tally, block_tally
from unlearnspec.transforms.weightspace import code_flip_rate, update_retention

HIDDEN, INTER, VOCAB = 8, 12, 6
CONFIG = {"model_type": "llama", "vocab_size": VOCAB, "hidden_size": HIDDEN,
          "intermediate_size": INTER, "num_hidden_layers": 1, "num_attention_heads": 2,
          "num_key_value_heads": 1, "head_dim": 4, "tie_word_embeddings": True}


def _write(root: Path, tensors: dict[str, torch.Tensor]) -> Path:
    root.mkdir()
    (root / "config.json").write_text(json.dumps(CONFIG))
    save_file({k: v.contiguous() for k, v in tensors.items()}, str(root / "model.safetensors"))
    return root


@st.composite
def pairs(draw):
    shapes = {n: i.shape for n, i in plain_roles_of_config().items()}
    floats = st.floats(-1, 1, width=32)
    target, subject = {}, {}
    scale = draw(st.sampled_from([0.0, 1e-3, 0.05, 0.5]))
    for name, shape in sorted(shapes.items()):
        w = torch.from_numpy(draw(arrays(np.float32, shape, elements=floats)))
        noise = torch.from_numpy(draw(arrays(np.float32, shape, elements=floats)))
        target[name], subject[name] = w, w + scale * noise
    target["model.norm.weight"] = subject["model.norm.weight"] = torch.ones(HIDDEN)
    return target, subject


def plain_roles_of_config():
    with tempfile.TemporaryDirectory() as d:
        (Path(d) / "config.json").write_text(json.dumps(CONFIG))
        return plain_roles(Path(d))


@settings(max_examples=40, deadline=None)
@given(pair=pairs(), label=st.sampled_from(["rtn4", "rtn3-g4", "rtn2-zp", "rtn4-g0", "int8"]))
def test_weight_metrics_equal_the_definition_bit_for_bit(pair, label):
    target, subject = pair
    t = parse_transform(label)
    infos = plain_roles_of_config()
    want = Tally()
    for name in sorted(infos):
        if t.selects(infos[name]):
            w, s = target[name], subject[name]
            got = block_tally(t, infos[name], w, s, s - w)
            if got is not None:
                want.add(got)
    with tempfile.TemporaryDirectory() as d:
        a, b = _write(Path(d) / "t", target), _write(Path(d) / "s", subject)
        gamma, flips = update_retention(a, b, t), code_flip_rate(a, b, t)
    assert flips.n == want.n and flips.value == want.flips / want.n
    if want.dd > 0:
        assert gamma.value == want.dot / want.dd  # == on floats: the same bits
    else:
        assert gamma.value != gamma.value and "zero update" in gamma.details["reason"]
