"""`kind: prune`: which weights magnitude and Wanda pruning zero, pinned on small tensors, and
the N:M pattern and ratio-0 identity as properties."""
from __future__ import annotations

import shutil

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from unlearnspec.registry import ConfigError
from unlearnspec.transforms.prune import PruneTransform, prune_mask, wanda_scores
from unlearnspec.transforms.registry import TRANSFORMS, PruneConfig


def _config(**kw):
    return TRANSFORMS.get("prune").make_config(kw)


def test_magnitude_compares_the_whole_matrix_wanda_each_row():
    w = torch.tensor([[1.0, 2.0, 3.0, 4.0],
                      [10.0, 20.0, 30.0, 40.0]])
    # magnitude, unstructured: the 4 smallest |W| of the matrix are all in row 0
    assert prune_mask(w.abs(), 0.5, None, per_row=False).tolist() == [
        [True, True, True, True], [False, False, False, False]]
    # per row (Wanda's comparison group): the 2 smallest of each row
    assert prune_mask(w.abs(), 0.5, None, per_row=True).tolist() == [
        [True, True, False, False], [True, True, False, False]]


def test_wanda_scores_weigh_each_input_by_its_activation_norm():
    w = torch.tensor([[4.0, -3.0, 2.0, 1.0]])
    sq = torch.tensor([0.01, 1.0, 4.0, 100.0])  # ‖X_j‖²: input 3 is large, input 0 tiny
    scores = wanda_scores(w, sq)
    assert scores[0].tolist() == pytest.approx([0.4, 3.0, 4.0, 10.0])
    # magnitude would drop inputs 3 and 2; Wanda drops 0 and 1
    assert prune_mask(w.abs(), 0.5, None, per_row=True).tolist() == [[False, False, True, True]]
    assert prune_mask(scores, 0.5, None, per_row=True).tolist() == [[True, True, False, False]]


def test_n_m_prunes_the_n_lowest_of_every_m_consecutive_inputs():
    s = torch.tensor([[5.0, 1.0, 3.0, 2.0, 0.5, 9.0, 8.0, 0.1]])
    assert prune_mask(s, 0.5, (2, 4), per_row=True).tolist() == [
        [False, True, False, True, True, False, False, True]]


def test_ties_break_by_position():
    s = torch.ones(1, 6)
    assert prune_mask(s, 0.5, None, per_row=True).tolist() == [[True] * 3 + [False] * 3]


@settings(max_examples=60, deadline=None)
@given(rows=st.integers(1, 6), groups=st.integers(1, 4), nm=st.sampled_from([(1, 2), (2, 4),
                                                                              (1, 4), (4, 8)]),
       seed=st.integers(0, 10_000))
def test_n_m_pattern_holds_and_drops_the_lowest(rows, groups, nm, seed):
    n, m = nm
    s = torch.rand(rows, groups * m, generator=torch.Generator().manual_seed(seed))
    mask = prune_mask(s, n / m, nm, per_row=True).reshape(rows, groups, m)
    assert (mask.sum(-1) == n).all()
    g = s.reshape(rows, groups, m)
    # every pruned score is at most every kept score of its group
    pruned_max = torch.where(mask, g, torch.full_like(g, -1)).amax(-1)
    kept_min = torch.where(~mask, g, torch.full_like(g, 2)).amin(-1)
    assert (pruned_max <= kept_min).all()


@settings(max_examples=60, deadline=None)
@given(rows=st.integers(1, 8), cols=st.integers(1, 16), ratio=st.floats(0, 0.99),
       per_row=st.booleans(), seed=st.integers(0, 10_000))
def test_unstructured_prunes_exactly_int_size_times_ratio(rows, cols, ratio, per_row, seed):
    s = torch.rand(rows, cols, generator=torch.Generator().manual_seed(seed))
    mask = prune_mask(s, ratio, None, per_row=per_row)
    if per_row:
        assert (mask.sum(-1) == int(cols * ratio)).all()
    else:
        assert int(mask.sum()) == int(rows * cols * ratio)
    if ratio == 0:
        assert not mask.any()


def test_n_m_needs_a_multiple_of_m_inputs():
    from unlearnspec.errors import RunError

    with pytest.raises(RunError, match="multiple of 4"):
        prune_mask(torch.rand(2, 6), 0.5, (2, 4), per_row=True)


def test_config_checks():
    assert _config(pattern="2:4").ratio == 0.5
    for bad, key in [({"pattern": "2:4", "ratio": 0.3}, "ratio"), ({"pattern": "4:2"}, "pattern"),
                     ({}, "ratio"), ({"ratio": 1.0}, "ratio"),
                     ({"ratio": 0.5, "calibration_path": "x.txt"}, "calibration")]:
        with pytest.raises(ConfigError) as info:
            _config(**bad)
        assert info.value.key == key


def _model(path):
    from unlearnspec.models.loading import load_causal_lm

    return load_causal_lm(path)


def _ctx(path, tok, texts=None):
    from unlearnspec.transforms.base import TransformContext

    return TransformContext(checkpoint=path, tokenizer=tok, calibration=texts)


def _decoder(model):
    from unlearnspec.transforms.roles import iter_parameters

    return {i.name: p.detach().clone() for i, p in iter_parameters(model) if i.decoder}


CALIB = ["the name of the city is north and the river is blue . " * 8] * 4


@pytest.mark.parametrize("method", ["magnitude", "wanda"])
def test_ratio_zero_is_the_identity(tiny_checkpoint, method):
    model, tok = _model(tiny_checkpoint)
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    kw = {"calibration": "x"} if method == "wanda" else {}
    t = PruneTransform(PruneConfig(ratio=0.0, method=method, seq_len=16, n_samples=4, **kw))
    t.apply(model, _ctx(tiny_checkpoint, tok, CALIB))
    for n, p in model.named_parameters():
        assert torch.equal(p, before[n]), n


@pytest.mark.parametrize("method", ["magnitude", "wanda"])
def test_2_4_on_a_model_zeroes_two_of_every_four_and_leaves_the_rest(tiny_checkpoint, method):
    model, tok = _model(tiny_checkpoint)
    before = _decoder(model)
    kw = {"calibration": "x"} if method == "wanda" else {}
    t = PruneTransform(PruneConfig(pattern="2:4", method=method, seq_len=16, n_samples=4, **kw))
    t.apply(model, _ctx(tiny_checkpoint, tok, CALIB))
    after = _decoder(model)
    assert set(after) == set(before) and after
    for name, w in after.items():
        groups = (w == 0).reshape(w.shape[0], -1, 4)
        assert (groups.sum(-1) == 2).all(), name
        kept = w != 0
        assert torch.equal(w[kept], before[name][kept])  # kept weights are untouched


def test_wanda_differs_from_magnitude_and_needs_calibration(tiny_checkpoint):
    from unlearnspec.errors import RunError

    masks = {}
    for method in ("magnitude", "wanda"):
        model, tok = _model(tiny_checkpoint)
        kw = {"calibration": "x"} if method == "wanda" else {}
        PruneTransform(PruneConfig(ratio=0.5, method=method, seq_len=16, n_samples=4, **kw)
                       ).apply(model, _ctx(tiny_checkpoint, tok, CALIB))
        masks[method] = {n: (w == 0) for n, w in _decoder(model).items()}
    assert any(not torch.equal(masks["magnitude"][n], masks["wanda"][n]) for n in masks["wanda"])
    for name, m in masks["wanda"].items():  # per output row: exactly half of each row
        assert (m.sum(-1) == m.shape[1] // 2).all(), name
    model, tok = _model(tiny_checkpoint)
    with pytest.raises(RunError, match="wanda transform needs calibration texts"):
        PruneTransform(PruneConfig(ratio=0.5, method="wanda")).apply(
            model, _ctx(tiny_checkpoint, tok, None))


def test_wanda_measures_each_block_on_the_model_pruned_so_far(tiny_checkpoint):
    """Block 1's activation norms are those of the model whose block 0 is already pruned
    (Wanda's sequential order), not of the dense model."""
    from unlearnspec.transforms import prune as prune_mod

    model, tok = _model(tiny_checkpoint)
    t = PruneTransform(PruneConfig(ratio=0.5, method="wanda", calibration="x", seq_len=16,
                                   n_samples=4))
    seen: list[dict[str, torch.Tensor]] = []
    original = t._input_norms

    def spy(m, group, ctx):
        out = original(m, group, ctx)
        seen.append({k: v.clone() for k, v in out.items()})
        return out

    t._input_norms = spy
    t.apply(model, _ctx(tiny_checkpoint, tok, CALIB))
    dense, tok = _model(tiny_checkpoint)
    from unlearnspec.transforms.roles import iter_parameters

    groups = prune_mod._blocks([(i, p) for i, p in iter_parameters(dense) if t.selects(i)])
    t2 = PruneTransform(t.config)
    dense_norms = t2._input_norms(dense, groups[1], _ctx(tiny_checkpoint, tok, CALIB))
    name = next(iter(dense_norms))
    assert not torch.allclose(seen[1][name], dense_norms[name])
    # block 0 sees the same inputs either way (nothing before it is pruned)
    b0 = t2._input_norms(dense, groups[0], _ctx(tiny_checkpoint, tok, CALIB))
    assert all(torch.allclose(seen[0][k], b0[k]) for k in b0)


def test_magnitude_streams_like_it_applies(tiny_checkpoint):
    from unlearnspec.transforms.roles import iter_parameters

    model, tok = _model(tiny_checkpoint)
    t = PruneTransform(PruneConfig(ratio=0.3))
    expected = {}
    for info, p in iter_parameters(model):
        q = t.quantize_tensor(info, p.detach().clone())
        if q is not None:
            expected[info.name] = q.values
    t.apply(model, _ctx(tiny_checkpoint, tok))
    got = dict((i.name, p) for i, p in iter_parameters(model))
    assert expected and all(torch.equal(expected[n], got[n]) for n in expected)


def test_pruned_checkpoint_is_not_touched(tiny_checkpoint, tmp_path):
    """apply works on the loaded model; the checkpoint files stay as they were."""
    ckpt = tmp_path / "c"
    shutil.copytree(tiny_checkpoint, ckpt)
    before = (ckpt / "model.safetensors").read_bytes()
    model, tok = _model(ckpt)
    PruneTransform(PruneConfig(ratio=0.5)).apply(model, _ctx(ckpt, tok))
    assert (ckpt / "model.safetensors").read_bytes() == before


SPEC = """\
version: 1
data:
  world: {builtin: micro}
models:
  subject: {path: ./ckpt}
transforms:
  pr0: {kind: prune, ratio: 0.0}
  pr50: {kind: prune, ratio: 0.5}
  wanda: {kind: prune, method: wanda, ratio: 0.5, calibration: world, n_samples: 4, seq_len: 16}
  wanda_s1: {kind: prune, method: wanda, ratio: 0.5, calibration: world, n_samples: 4,
             seq_len: 16, seed: 1}
metrics:
  loss: {kind: mia_loss}
claims:
  - name: c
    subjects: [subject]
    assert: loss @ pr50 >= loss
"""


@pytest.mark.slow
def test_through_the_engine_ratio_zero_measures_the_model_itself(tiny_checkpoint, tmp_path):
    from unlearnspec.bench import ensure_data
    from unlearnspec.engine.measurement import Measurement
    from unlearnspec.engine.run import Run
    from unlearnspec.spec import load_spec

    ensure_data("micro", tmp_path / "cache")
    shutil.copytree(tiny_checkpoint, tmp_path / "ckpt")
    (tmp_path / "spec.yaml").write_text(SPEC)
    run = Run(load_spec(tmp_path / "spec.yaml"), cache_dir=tmp_path / "cache", progress=False)
    fp = run.measure(Measurement("loss", "subject"))
    zero = run.measure(Measurement("loss", "subject", "pr0"))
    assert zero.per_sample == fp.per_sample
    assert zero.details["coverage"]["decoder"]["share"] == 1.0  # identity, on its "grid"
    half = run.measure(Measurement("loss", "subject", "pr50"))
    assert half.per_sample != fp.per_sample
    wanda = run.measure(Measurement("loss", "subject", "wanda"))
    assert wanda.details["coverage"]["decoder"]["changed"] > 0
    keys = {run.transform_key(t) for t in ("pr0", "pr50", "wanda", "wanda_s1")}
    assert len(keys) == 4  # ratio, method and the calibration draw all change the key
