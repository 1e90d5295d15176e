"""Roles from config.json for plain decoders (`config_roles.plain_roles`) against the roles
rule on the architecture transformers builds on the meta device: the same WeightInfos in the
same order, for each architecture on the list and the config choices that change a shape
(grouped-query attention, a head_dim that is not hidden / heads, tied and untied heads)."""
from __future__ import annotations

import json

import pytest

from unlearnspec.transforms.config_roles import PLAIN, decoder_roles, plain_roles
from unlearnspec.transforms.roles import checkpoint_roles, meta_model, parameter_roles

SIZES = dict(vocab_size=40, hidden_size=48, intermediate_size=80, num_hidden_layers=2,
             num_attention_heads=4)
CHOICES = [dict(num_key_value_heads=4, tie_word_embeddings=False),
           dict(num_key_value_heads=2, tie_word_embeddings=True),
           dict(num_key_value_heads=1, head_dim=16, tie_word_embeddings=False)]


def _config(model_type, **kw):
    import transformers as tf

    cls = {"llama": tf.LlamaConfig, "mistral": tf.MistralConfig, "qwen2": tf.Qwen2Config,
           "qwen3": tf.Qwen3Config}[model_type]
    return cls(**SIZES, **kw)


@pytest.mark.parametrize("choice", range(len(CHOICES)))
@pytest.mark.parametrize("model_type", sorted(PLAIN))
def test_config_roles_equal_the_meta_models(model_type, choice, tmp_path):
    _config(model_type, **CHOICES[choice]).save_pretrained(tmp_path)
    model = meta_model(tmp_path)
    want = list(parameter_roles(model).items())
    got = plain_roles(tmp_path)
    assert got is not None, "a plain decoder went the slow way"
    assert list(got.items()) == want
    ck, params = decoder_roles(tmp_path)
    assert list(ck.items()) == list(checkpoint_roles(tmp_path, model).items())
    assert params == [i for _, i in want]


def test_qwen2_without_head_dim_uses_hidden_over_heads(tmp_path):
    _config("qwen2", num_key_value_heads=2, tie_word_embeddings=False).save_pretrained(tmp_path)
    cfg = json.loads((tmp_path / "config.json").read_text())
    cfg.pop("head_dim", None)
    (tmp_path / "config.json").write_text(json.dumps(cfg))
    assert list(plain_roles(tmp_path).items()) == list(parameter_roles(meta_model(tmp_path)).items())


@pytest.mark.parametrize("edit", ["gpt2", "no head_dim", "no kv heads", "size is text"])
def test_configs_it_cannot_read_go_the_meta_way(edit, tmp_path):
    _config("llama", num_key_value_heads=2, tie_word_embeddings=False).save_pretrained(tmp_path)
    cfg = json.loads((tmp_path / "config.json").read_text())
    if edit == "gpt2":
        cfg["model_type"] = "gpt2"
    elif edit == "no head_dim":
        cfg.pop("head_dim")
    elif edit == "no kv heads":
        cfg.pop("num_key_value_heads")
    else:
        cfg["hidden_size"] = "48"
    (tmp_path / "config.json").write_text(json.dumps(cfg))
    assert plain_roles(tmp_path) is None
