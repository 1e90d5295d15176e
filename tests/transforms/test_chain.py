"""`{chain: [...]}`: members checked at load time, applied in order by the engine, keys
composed from the members' keys, errors naming the member that failed."""
from __future__ import annotations

import shutil

import pytest
import torch

from unlearnspec.errors import RunError, SpecError

SPEC = """\
version: 1
data:
  world: {builtin: micro}
models:
  subject: {path: ./ckpt}
transforms:
  rtn4: {kind: rtn, bits: 4}
  rtn8: {kind: rtn, bits: 8}
  pr: {kind: prune, ratio: 0.5}
  gq: {kind: gptq, bits: 4}
  rel: {kind: relearn, steps: 1}
  n3: {kind: noise, matched_to: rtn4, draws: 3}
  CHAIN
metrics:
  loss: {kind: mia_loss}
claims:
  - name: c
    subjects: [subject]
    assert: loss @ ch <= loss + 1000
"""


def _spec(tmp_path, chain: str):
    p = tmp_path / "spec.yaml"
    p.write_text(SPEC.replace("CHAIN", chain))
    return p


@pytest.mark.parametrize("chain,message", [
    ("ch: {chain: [pr, rtn5]}", "chain member 'rtn5' is not a transform"),
    ("ch: {chain: [pr, ch]}", "contains itself through a chain: ch -> ch"),
    ("ch: {chain: [rtn4, rel]}", "relearning member 'rel' comes after 'rtn4'"),
    ("ch: {chain: [pr, n3]}", "averages 3 noise draws"),
    ("ch: {chain: []}", "chain must be a list of transform names"),
    ("ch: {chain: [pr], bits: 4}", "unknown key 'bits'"),
])
def test_bad_chains_are_spec_errors_at_their_line(tmp_path, chain, message):
    from unlearnspec.spec import load_spec

    with pytest.raises(SpecError) as info:
        load_spec(_spec(tmp_path, chain))
    assert "spec.yaml:13" in str(info.value) and message in str(info.value)


def test_nested_chain_cycle_is_found(tmp_path):
    from unlearnspec.spec import load_spec

    with pytest.raises(SpecError, match="through a chain: ch -> inner -> ch"):
        load_spec(_spec(tmp_path, "ch: {chain: [pr, inner]}\n  inner: {chain: [ch]}"))


def _run(tmp_path, ckpt, chain):
    from unlearnspec.bench import ensure_data
    from unlearnspec.engine.run import Run
    from unlearnspec.spec import load_spec

    ensure_data("micro", tmp_path / "cache")
    if not (tmp_path / "ckpt").exists():
        shutil.copytree(ckpt, tmp_path / "ckpt")
    return Run(load_spec(_spec(tmp_path, chain)), cache_dir=tmp_path / "cache", progress=False)


def test_chain_keys_compose_from_members(tiny_checkpoint, tmp_path):
    a = _run(tmp_path, tiny_checkpoint, "ch: {chain: [pr, rtn4]}")
    b = _run(tmp_path, tiny_checkpoint, "ch: {chain: [pr, rtn8]}")
    c = _run(tmp_path, tiny_checkpoint, "ch: {chain: [rtn4, pr]}")
    d = _run(tmp_path, tiny_checkpoint, "ch: {chain: [pr, inner]}\n  inner: {chain: [rtn4]}")
    keys = [r.transform_key("ch") for r in (a, b, c)]
    assert len(set(keys)) == 3  # a member's options and the order both count
    assert a.transform_key("ch") != a.transform_key("pr")
    assert a.transforms.members("ch") == ["pr", "rtn4"]
    assert d.transforms.members("ch") == ["pr", "rtn4"]


@pytest.mark.slow
def test_chain_applies_members_in_order(tiny_checkpoint, tmp_path):
    from unlearnspec.models.loading import load_causal_lm
    from unlearnspec.transforms.base import TransformContext

    run = _run(tmp_path, tiny_checkpoint, "ch: {chain: [pr, rtn4]}")
    chained, tok = run.loaded.load("subject", "ch")
    by_hand, _ = load_causal_lm(tmp_path / "ckpt")
    ctx = TransformContext(checkpoint=tmp_path / "ckpt", tokenizer=tok)
    for member in ("pr", "rtn4"):
        by_hand = run.transform(member).apply(by_hand, ctx)
    got, want = dict(chained.named_parameters()), dict(by_hand.named_parameters())
    assert all(torch.equal(got[n], want[n]) for n in want)
    assert run.loaded.coverage[("subject", "ch")].decoder_share == 1.0


@pytest.mark.slow
def test_a_failing_member_is_named(tiny_checkpoint, tmp_path):
    run = _run(tmp_path, tiny_checkpoint, "ch: {chain: [pr, gq]}")
    with pytest.raises(RunError) as info:
        run.loaded.load("subject", "ch")
    msg = str(info.value)
    assert "transform 'ch' (chain) failed at its member 'gq' (gptq" in msg
    assert "on model 'subject'" in msg


def test_the_json_schema_accepts_chains_and_the_attacks(tmp_path):
    import jsonschema
    import yaml

    from unlearnspec.spec.schema import spec_json_schema

    doc = yaml.safe_load(SPEC.replace("CHAIN", "ch: {chain: [rel, pr, rtn4]}"))
    validator = jsonschema.Draft202012Validator(spec_json_schema())
    assert not list(validator.iter_errors(doc))
    doc["transforms"]["ch"] = {"chain": [], "bits": 4}
    assert list(validator.iter_errors(doc))
