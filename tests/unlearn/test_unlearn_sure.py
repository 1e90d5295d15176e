"""SURE: saliency from the forget gradient, the percentile threshold, and a mask that is
really in force (the paper's released SURE computed the mask but never applied it)."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from safetensors.torch import load_file

from unlearnspec.errors import RunError
from unlearnspec.models.loading import load_causal_lm
from unlearnspec.unlearn import METHODS, SureConfig
from unlearnspec.unlearn import sure
from unlearnspec.unlearn.data import collate, tokenize_documents
from unlearnspec.unlearn.losses import ga_loss


def owner(param_name: str, modules: list[str]) -> str | None:
    return next((m for m in modules if param_name.startswith(m + ".")), None)


@pytest.mark.slow
def test_sure_updates_exactly_the_selected_modules(unlearn, target) -> None:
    # weight decay on: it must not reach the frozen parameters either
    out, log = unlearn("ga_klr", lr=3e-4, weight_decay=0.1, epochs=2,
                       sure={"percentile": 80})
    selected = log["sure"]["selected"]
    before, after = load_file(target / "model.safetensors"), load_file(out / "model.safetensors")
    changed = {k for k in before if not torch.equal(before[k], after[k])}
    assert changed == {k for k in before if owner(k, selected)}
    assert "lm_head.weight" not in changed and "model.embed_tokens.weight" not in changed
    assert log["frozen_parameters_verified"] == len(before) - len(changed)


@pytest.mark.slow
def test_scores_are_frobenius_norms_of_the_forget_gradient_and_gamma_a_percentile(
        unlearn, target, corpus) -> None:
    _, log = unlearn("ga_gdr", max_steps=1, batch_size=4, sure={"percentile": 75})
    model, tok = load_causal_lm(target)
    chunks = tokenize_documents(corpus[0], tok, 16).ids
    batches = [collate(chunks[i:i + 4], tok.pad_token_id) for i in range(0, len(chunks), 4)]
    model.train()
    loss = sum(ga_loss(model, b, None, None) for b in batches) / len(batches)
    loss.backward()
    direct = {name: float(m.weight.grad.norm()) for name, m in model.named_modules()
              if isinstance(m, torch.nn.Linear) and name != "lm_head"}
    scores = log["sure"]["scores"]
    assert scores.keys() == direct.keys()  # decoder linears only: the head is not ranked
    assert np.allclose([scores[k] for k in direct], list(direct.values()), rtol=1e-4)
    gamma = float(np.percentile(list(scores.values()), 75))
    assert log["sure"]["threshold"] == pytest.approx(gamma)
    assert log["sure"]["selected"] == sorted(k for k, s in scores.items() if s >= gamma)


@pytest.mark.slow
def test_modules_all_ranks_the_head_and_patterns_narrow_the_candidates(unlearn) -> None:
    _, every = unlearn("npo", max_steps=1, sure={"modules": "all"})
    assert "lm_head" in every["sure"]["scores"]
    _, mlp = unlearn("npo", max_steps=1, sure={"modules": ["*.mlp.*"], "percentile": 50})
    assert mlp["sure"]["scores"] and all(".mlp." in k for k in mlp["sure"]["scores"])


@pytest.mark.slow
def test_patterns_that_match_no_module_stop_before_training(unlearn, tmp_path) -> None:
    with pytest.raises(RunError, match=r"SURE has no module to rank.*model\.layers\.0"):
        unlearn("ga", sure={"modules": ["*.attention.*"]})
    assert not any(tmp_path.iterdir())


@given(st.dictionaries(st.text(min_size=1, max_size=5), st.floats(0.0, 1e3), min_size=1,
                       max_size=30).filter(lambda d: any(v > 0 for v in d.values())),
       st.floats(1, 99))
def test_selection_keeps_the_top_modules(scores: dict[str, float], percentile: float) -> None:
    gamma, chosen = sure.select(scores, percentile)
    assert chosen and gamma == pytest.approx(np.percentile(list(scores.values()), percentile))
    low = [s for n, s in scores.items() if n not in chosen]
    assert all(scores[n] >= gamma and scores[n] > 0 for n in chosen)
    assert all(scores[n] >= s for n in chosen for s in low)


def test_zero_gradient_everywhere_selects_nothing_and_is_an_error() -> None:
    with pytest.raises(RunError, match="SURE selected no module"):
        sure.select({"a": 0.0, "b": 0.0}, 90)


def test_a_frozen_parameter_that_moved_is_caught(base: Path) -> None:
    model, _ = load_causal_lm(base)
    modules = sure.candidate_modules(model, SureConfig())
    sure.apply_mask(model, modules, ["model.layers.0.mlp.up_proj"])
    stamp = sure.fingerprint(model)
    assert "model.layers.0.mlp.up_proj.weight" not in stamp and "lm_head.weight" in stamp
    sure.verify_untouched(model, stamp)  # nothing moved: passes
    with torch.no_grad():
        model.model.norm.weight.add_(1e-7)  # one frozen parameter, by a hair
    with pytest.raises(RunError, match="mask was not in force.*model.norm.weight"):
        sure.verify_untouched(model, stamp)


def test_sure_is_an_option_on_every_builtin_method() -> None:
    for name in ("ga", "ga_gdr", "ga_klr", "npo", "npo_gdr", "npo_klr"):
        assert METHODS.get(name).make_config({"sure": {"percentile": 90}}).sure.percentile == 90
