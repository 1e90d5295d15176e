"""`unlearnspec diff`: the weight-only answer to "will quantization undo this unlearning?",
checked against the weight metrics it mirrors, on sharded and blocked reads, and for the
errors a user can cause."""
from __future__ import annotations

import json
import math
import shutil

import pytest
import torch
from safetensors.torch import load_file, save_file

from unlearnspec.cli import main
from unlearnspec.diff import DiffError, diff_checkpoints, parse_transform
from unlearnspec.diff_text import regime, verdict
from unlearnspec.transforms.rtn import rtn_codes, rtn_quantize
from unlearnspec.transforms.weightspace import code_flip_rate, update_retention


def is_decoder(name, w):
    """A decoder weight of the tiny Llama fixture (the matrices inside `layers.N.`)."""
    return ".layers." in name and w.ndim == 2


def rewrite(src, dst, change, shards=1):
    """Copy checkpoint `src` to `dst` with tensors changed, optionally in `shards` files."""
    shutil.copytree(src, dst)
    tensors = {k: change(k, v).contiguous() for k, v in load_file(str(src / "model.safetensors")).items()}
    if shards > 1:
        (dst / "model.safetensors").unlink()
        names = sorted(tensors)
        weight_map = {}
        for i in range(shards):
            part = names[i::shards]
            fname = f"model-{i + 1:05d}-of-{shards:05d}.safetensors"
            save_file({k: tensors[k] for k in part}, str(dst / fname), metadata={"format": "pt"})
            weight_map.update({k: fname for k in part})
        (dst / "model.safetensors.index.json").write_text(json.dumps({"weight_map": weight_map}))
    else:
        save_file(tensors, str(dst / "model.safetensors"), metadata={"format": "pt"})
    return dst


def on_grid(name, w):
    return rtn_quantize(w, 4) if is_decoder(name, w) else w


def small_update(scale, seed=0):
    g = torch.Generator().manual_seed(seed)

    def change(name, w):
        if not is_decoder(name, w):
            return w
        return w + scale * rtn_codes(w, 4).scale * (2 * torch.rand(w.shape, generator=g) - 1)
    return change


@pytest.fixture(scope="module")
def pair(tiny_checkpoint, tmp_path_factory):
    """(aligned target, its subject with |δ| ≤ 0.2Δ, natural target, its subject)."""
    root = tmp_path_factory.mktemp("diff")
    aligned = rewrite(tiny_checkpoint, root / "aligned", on_grid)
    return (aligned, rewrite(aligned, root / "aligned-sub", small_update(0.2)),
            tiny_checkpoint, rewrite(tiny_checkpoint, root / "natural-sub", small_update(0.2)))


def test_matches_the_weight_metrics_it_mirrors(pair):
    for target, subject in (pair[:2], pair[2:]):
        report = diff_checkpoints(target, subject, ["rtn4", "rtn4-g16", "rtn8"])
        for label, row in report.overall().items():
            t = parse_transform(label)
            # one kernel: the same numbers bit for bit, not close ones
            assert row.gamma == update_retention(target, subject, t).value
            assert row.flip_rate == code_flip_rate(target, subject, t).value


def test_error_ratio_is_the_quantizers_error_on_the_subject_over_the_update(pair):
    target, subject = pair[2:]
    wt, ws = load_file(str(target / "model.safetensors")), load_file(str(subject / "model.safetensors"))
    ee = dd = 0.0
    for name, w in wt.items():
        if is_decoder(name, w):
            s = ws[name]
            ee += float((rtn_quantize(s, 4) - s).double().square().sum())
            dd += float((s - w).double().square().sum())
    row = diff_checkpoints(target, subject, ["rtn4"]).overall()["rtn4"]
    assert row.error_ratio == pytest.approx((ee / dd) ** 0.5, rel=1e-6)
    # |δ| ≤ 0.2Δ, uniform: the rounding error (≈ Δ/√12) is larger than the update
    assert 1.0 < row.error_ratio < 3.0


def test_aligned_target_undone_natural_target_kept(pair):
    aligned = diff_checkpoints(*pair[:2], ["rtn4", "rtn8"]).overall()
    natural = diff_checkpoints(*pair[2:], ["rtn4", "rtn8"]).overall()
    # no code flips; the small γ left is each row's absmax moving, which rescales its row
    assert aligned["rtn4"].flip_rate == 0.0 and 0 <= aligned["rtn4"].gamma < 0.1
    assert aligned["rtn8"].gamma > 0.8  # 18× finer: the same update shows at 8 bits
    assert natural["rtn4"].gamma > 0.8
    assert 0 < aligned["rtn4"].relative_update < 0.2


def test_sharded_and_blocked_reads_give_the_same_numbers(pair, tmp_path):
    target, subject = pair[2:]
    whole = diff_checkpoints(target, subject, ["rtn4", "nf4", "int8"]).to_json()
    t3 = rewrite(target, tmp_path / "t", lambda k, v: v, shards=3)
    s2 = rewrite(subject, tmp_path / "s", lambda k, v: v, shards=2)
    sharded = diff_checkpoints(t3, s2, ["rtn4", "nf4", "int8"], chunk_elements=64).to_json()
    for key in ("overall", "layers", "tensors", "relative_update"):
        assert json.dumps(sharded[key], sort_keys=True) == json.dumps(whole[key], sort_keys=True)


def test_blocks_of_rows_match_whole_tensors_on_tall_weights(tmp_path):
    """Tensors taller than a block (here 320 rows, blocks of 64) are split; the numbers must
    not change, including NF4's 64-weight blocks and a per-tensor scale (read whole)."""
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    model = LlamaForCausalLM(LlamaConfig(num_hidden_layers=1, hidden_size=48,
                                         intermediate_size=320, num_attention_heads=4,
                                         vocab_size=32))
    model.save_pretrained(tmp_path / "t")
    g = torch.Generator().manual_seed(0)
    rewrite(tmp_path / "t", tmp_path / "s",
            lambda k, v: v + 0.01 * torch.randn(v.shape, generator=g))
    labels = ["rtn4", "rtn4-g16", "rtn4-g0", "nf4", "int8"]
    small = diff_checkpoints(tmp_path / "t", tmp_path / "s", labels, chunk_elements=1).to_json()
    big = diff_checkpoints(tmp_path / "t", tmp_path / "s", labels).to_json()
    assert small["tensors"]["model.layers.0.mlp.up_proj.weight"]["numel"] == 320 * 48
    assert small["tensors"] == big["tensors"]


def test_mismatched_checkpoints_are_clear_errors(pair, tmp_path):
    target, _, natural, _ = pair
    renamed = rewrite(natural, tmp_path / "r", lambda k, v: v)
    t = load_file(str(renamed / "model.safetensors"))
    t["model.extra.weight"] = torch.zeros(2, 2)
    save_file(t, str(renamed / "model.safetensors"))
    with pytest.raises(DiffError, match="tensor names differ.*only in the subject: "
                                        "model.extra.weight"):
        diff_checkpoints(natural, renamed)
    reshaped = tmp_path / "shape"
    reshaped.mkdir()
    t = load_file(str(natural / "model.safetensors"))
    name = "model.layers.0.mlp.up_proj.weight"
    t[name] = t[name][:-1].contiguous()
    save_file(t, str(reshaped / "model.safetensors"))
    with pytest.raises(DiffError, match=f"tensor {name} has shape .* in the subject but"):
        diff_checkpoints(natural, reshaped)
    with pytest.raises(DiffError, match="holds no \\*.safetensors"):
        diff_checkpoints(natural, tmp_path)


def test_unknown_transform_names_the_forms_and_a_suggestion():
    with pytest.raises(DiffError, match="unknown transform 'rtm4'.*did you mean 'rtn4'"):
        parse_transform("rtm4")
    with pytest.raises(DiffError, match="--transform rtn9: bits must be between 2 and 8"):
        parse_transform("rtn9")
    assert parse_transform("rtn4-g128").config.group_size == 128


def test_verdict_thresholds():
    assert "will undo most" in verdict(0.05, "rtn4")
    assert "partly" in verdict(0.5, "rtn4")
    kept = verdict(0.97, "rtn4", 3.25)
    # γ alone cannot clear a model: it says regime (a) is out and what to measure for (b)
    assert "survives" not in kept
    assert "keeps the unlearning update" in kept and "regime (a) does not apply" in kept
    assert "its error is 3.2× the update's norm" in kept
    assert "{kind: noise, matched_to: rtn4}" in kept and "sharpness" in kept
    assert "regime (a), rounding snaps the update back" in verdict(0.05, "rtn4")
    assert [regime(g) for g in (0.05, 0.5, 0.97, math.nan)] == ["a", "a-partial", "not-a",
                                                                 "none"]
    assert "no verdict" in verdict(math.nan, "rtn4")


def test_cli_prints_a_table_and_json(pair, capsys):
    assert main(["diff", str(pair[0]), str(pair[1])]) == 0
    out = capsys.readouterr().out
    assert "model.layers.1" in out and "rtn4 will undo most of this unlearning" in out
    assert "rtn8 keeps the unlearning update in the weights" in out
    assert "survives" not in out
    assert main(["diff", str(pair[0]), str(pair[1]), "--transform", "rtn4-g16", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["transforms"] == ["rtn4-g16"] and data["overall"]["rtn4-g16"]["n"] > 0
    assert main(["diff", str(pair[0]), str(pair[1]), "--transform", "q4"]) == 2
    assert "unknown transform 'q4'" in capsys.readouterr().err


def test_identical_checkpoints_give_no_verdict_not_a_pass(pair):
    report = diff_checkpoints(pair[2], pair[2], ["rtn4"])
    assert math.isnan(report.overall()["rtn4"].gamma)
    assert "no verdict" in report.verdicts()["rtn4"]
    assert report.to_json()["overall"]["rtn4"]["gamma"] is None
