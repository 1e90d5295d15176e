"""The one rule for which weights are decoder weights, on the architectures that hold them in
different modules: Conv1D (GPT-2), nn.Linear (Llama), FalconLinear, 3-D MoE experts."""
from __future__ import annotations

import pytest
from safetensors import safe_open

from arch_helpers import load_arch
from unlearnspec.transforms.inventory import decoder_weights, inventory, pattern
from unlearnspec.transforms.roles import checkpoint_roles, parameter_roles

# issue 14's table: the decoder sizes of these tiny configs
DECODER = {"gpt2": 98_304, "mixtral": 229_888, "qwen2_moe": 156_288}


@pytest.mark.parametrize("arch", ["gpt2", "mixtral", "qwen2_moe"])
def test_decoder_size_counts_every_matrix_of_the_blocks(arch_checkpoints, arch):
    assert decoder_weights(inventory(load_arch(arch_checkpoints[arch]))) == DECODER[arch]


def test_gpt2_conv1d_weights_are_decoder_weights_stored_in_out(arch_checkpoints):
    roles = parameter_roles(load_arch(arch_checkpoints["gpt2"]))
    c_attn = roles["transformer.h.0.attn.c_attn.weight"]
    assert (c_attn.role, c_attn.layout, c_attn.shape) == ("attention", "conv1d", (64, 192))
    assert roles["transformer.h.1.mlp.c_fc.weight"].role == "mlp"
    # the head is the input embedding (tied): one tensor, role head, listed once
    wte = roles["transformer.wte.weight"]
    assert (wte.role, wte.tied) == ("head", True)
    assert "lm_head.weight" not in roles
    assert roles["transformer.wpe.weight"].role == "embed"


@pytest.mark.parametrize("arch", ["mixtral", "qwen2_moe"])
def test_moe_experts_are_3d_decoder_weights_and_the_gate_is_a_router(arch_checkpoints, arch):
    roles = parameter_roles(load_arch(arch_checkpoints[arch]))
    gate_up = roles["model.layers.0.mlp.experts.gate_up_proj"]
    assert (gate_up.role, gate_up.layout, len(gate_up.shape)) == ("experts", "experts", 3)
    assert roles["model.layers.0.mlp.gate.weight"].role == "router"
    assert roles["model.layers.0.self_attn.q_proj.weight"].role == "attention"
    if arch == "qwen2_moe":  # the shared expert is a plain MLP beside the routed experts
        assert roles["model.layers.0.mlp.shared_expert.up_proj.weight"].role == "mlp"


def test_norms_and_biases_are_not_weights(arch_checkpoints):
    roles = parameter_roles(load_arch(arch_checkpoints["qwen2_moe"]))
    assert not [n for n in roles if "norm" in n or n.endswith(".bias")]


@pytest.mark.parametrize("arch", ["gpt2", "llama", "mixtral", "qwen2_moe", "falcon"])
def test_checkpoint_tensors_get_the_role_of_the_parameter_they_load_into(arch_checkpoints, arch):
    """Streaming reads checkpoint tensors: transformers 5 saves Mixtral's fused experts as one
    2-D tensor per expert and projection; each keeps its parameter's role and the totals per
    role equal the model's."""
    path = arch_checkpoints[arch]
    model_counts = inventory(load_arch(path))
    ck = checkpoint_roles(path)
    with safe_open(str(path / "model.safetensors"), "pt") as f:
        stored = set(f.keys())
    assert set(ck) <= stored
    per_role: dict[str, int] = {}
    for info in ck.values():
        per_role[info.role] = per_role.get(info.role, 0) + info.numel
    assert per_role == {r: c.weights for r, c in model_counts.items()}
    if arch == "mixtral":
        w1 = ck["model.layers.0.block_sparse_moe.experts.2.w1.weight"]
        assert (w1.role, w1.layout, w1.fused) == ("experts", "linear", True)
        assert w1.source == "model.layers.0.mlp.experts.gate_up_proj"


def test_pattern_folds_layer_and_expert_indices():
    assert pattern("model.layers.11.block_sparse_moe.experts.3.w1.weight") == \
        "model.layers.*.block_sparse_moe.experts.*.w1.weight"


@pytest.mark.parametrize("name, block", [
    ("model.layers.3.self_attn.q_proj.weight", "model.layers.3"),
    ("transformer.h.0.attn.c_attn.weight", "transformer.h.0"),
    ("encoder.block.11.layer.0.SelfAttention.q.weight", "encoder.block.11"),
    ("model.layers.2.mlp.experts.7.w1.weight", "model.layers.2"),  # the block, not the expert
    ("layers.0.mlp.weight", "layers.0"),
    ("model.layers.3", "model.layers.3"),
    ("model.embed_tokens.weight", None),
    ("lm_head.weight", None),
    ("model.highlayers.3.x", None),  # `layers` must be a whole name part
])
def test_decoder_block_is_the_one_name_rule(name, block):
    from unlearnspec.diff import _layer_of
    from unlearnspec.transforms.roles import decoder_block

    assert decoder_block(name) == block
    assert _layer_of(name) == (block or name)  # `unlearnspec diff` groups tensors by it
