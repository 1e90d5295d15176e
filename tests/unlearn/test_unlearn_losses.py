"""Each loss against a direct computation on the tiny model: value, and the sign of the
gradient (one small descent step on the loss must move the model the intended way)."""
from __future__ import annotations

import copy
import math
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from unlearnspec.unlearn import losses
from unlearnspec.unlearn.data import Batch, collate

CONFIG = SimpleNamespace(beta=0.1)


@pytest.fixture(scope="module")
def model(base: Path) -> torch.nn.Module:
    from unlearnspec.models.loading import load_causal_lm

    return load_causal_lm(base)[0]


@pytest.fixture(scope="module")
def moved(model: torch.nn.Module) -> torch.nn.Module:
    """The model with seeded noise added: a stand-in for 'the model being unlearned'."""
    other = copy.deepcopy(model)
    gen = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for p in other.parameters():
            p.add_(0.05 * torch.randn(p.shape, generator=gen))
    return other


@pytest.fixture(scope="module")
def batch() -> Batch:
    return collate([[2, 10, 11, 12, 13, 14], [2, 20, 21], [2, 30, 31, 32]], pad_id=0)


def direct_token_logps(model: torch.nn.Module, batch: Batch) -> list[list[float]]:
    """Per sequence, log p(x_t | x_<t) of each real token after the first, one position at
    a time (no masks, no padding: each sequence run on its own)."""
    out = []
    for row in range(len(batch)):
        ids = batch.input_ids[row][batch.attention_mask[row].bool()].unsqueeze(0)
        with torch.no_grad():
            logits = model(input_ids=ids).logits[0].float()
        out.append([float(torch.log_softmax(logits[t - 1], -1)[ids[0, t]])
                    for t in range(1, ids.shape[1])])
    return out


def value(t: torch.Tensor) -> float:
    return float(t.detach())


def sgd_step(model: torch.nn.Module, loss: torch.Tensor, lr: float = 1e-2) -> torch.nn.Module:
    model.zero_grad()
    loss.backward()
    with torch.no_grad():
        for p in model.parameters():
            p.sub_(lr * p.grad)
    model.zero_grad()
    return model


def test_ga_is_minus_the_forget_cross_entropy(model, batch) -> None:
    lps = [lp for seq in direct_token_logps(model, batch) for lp in seq]
    loss = losses.ga_loss(model, batch, None, CONFIG)
    assert value(loss) == pytest.approx(sum(lps) / len(lps), rel=1e-5)
    hf = model(input_ids=batch.input_ids, attention_mask=batch.attention_mask,
               labels=batch.labels).loss
    assert value(loss) == pytest.approx(-float(hf.detach()), rel=1e-5)


def test_a_ga_step_makes_the_forget_set_less_likely(model, batch) -> None:
    m = copy.deepcopy(model)
    before = value(losses.mean_nll(m, batch))
    sgd_step(m, losses.ga_loss(m, batch, None, CONFIG))
    assert value(losses.mean_nll(m, batch)) > before


def test_npo_is_eq_8_on_sequence_log_probabilities(model, moved, batch) -> None:
    lp = [sum(s) for s in direct_token_logps(moved, batch)]
    lp_ref = [sum(s) for s in direct_token_logps(model, batch)]
    beta = CONFIG.beta
    direct = -(2 / beta) * sum(math.log(1 / (1 + math.exp(beta * (a - b))))
                               for a, b in zip(lp, lp_ref)) / len(lp)
    assert value(losses.npo_loss(moved, batch, model, CONFIG)) == pytest.approx(direct, rel=1e-5)


def test_npo_at_the_reference_is_2_over_beta_log_2(model, batch) -> None:
    got = value(losses.npo_loss(model, batch, model, CONFIG))
    assert got == pytest.approx(2 / CONFIG.beta * math.log(2), rel=1e-6)


def test_an_npo_step_lowers_the_sequence_likelihood_and_leaves_the_reference(model,
                                                                             batch) -> None:
    m, ref = copy.deepcopy(model), copy.deepcopy(model).requires_grad_(False)
    before = losses.sequence_logprobs(m, batch).detach()
    sgd_step(m, losses.npo_loss(m, batch, ref, CONFIG))
    assert (losses.sequence_logprobs(m, batch).detach() < before).all()
    assert all(p.grad is None for p in ref.parameters())
    assert all(torch.equal(a, b) for a, b in zip(ref.parameters(), model.parameters()))


@settings(max_examples=15, deadline=None)
@given(st.floats(-50, 50), st.floats(-50, 50), st.floats(0.01, 2))
def test_npo_decreases_as_the_model_forgets(logp: float, delta: float, beta: float) -> None:
    ref = torch.tensor([logp])
    lower = torch.tensor([logp - abs(delta)])
    assert losses.npo_from_logps(lower, ref, beta) <= losses.npo_from_logps(ref, ref, beta)
    assert losses.npo_from_logps(lower, ref, beta) >= 0


def test_gdr_is_the_retain_cross_entropy_and_a_step_lowers_it(model, batch) -> None:
    lps = [lp for seq in direct_token_logps(model, batch) for lp in seq]
    m = copy.deepcopy(model)
    loss = losses.gdr_loss(m, batch, None, CONFIG)
    assert value(loss) == pytest.approx(-sum(lps) / len(lps), rel=1e-5)
    sgd_step(m, loss)
    assert value(losses.gdr_loss(m, batch, None, CONFIG)) < value(loss)


@pytest.mark.parametrize("direction", ["forward", "reverse"])
def test_klr_is_kl_between_model_and_target_over_real_positions(model, moved, batch,
                                                               direction: str) -> None:
    terms = []
    for row in range(len(batch)):
        ids = batch.input_ids[row][batch.attention_mask[row].bool()].unsqueeze(0)
        with torch.no_grad():
            p = torch.softmax(moved(input_ids=ids).logits[0].float(), -1)
            q = torch.softmax(model(input_ids=ids).logits[0].float(), -1)
        a, b = (q, p) if direction == "forward" else (p, q)
        terms += [float((a[t] * (a[t].log() - b[t].log())).sum()) for t in range(ids.shape[1])]
    config = SimpleNamespace(kl=direction)
    got = value(losses.klr_loss(moved, batch, model, config))
    assert got == pytest.approx(sum(terms) / len(terms), rel=1e-4)
    assert got > 0
    assert value(losses.klr_loss(model, batch, model, config)) == pytest.approx(0, abs=1e-6)


class _FixedLogits(torch.nn.Module):
    """A test double for a causal LM (only inside this unit test of klr_loss): every position
    gets the same given next-token distribution, so the KL can be computed by hand."""

    def __init__(self, probs: list[float]) -> None:
        super().__init__()
        self.logits = torch.nn.Parameter(torch.tensor(probs).log())

    def forward(self, input_ids: torch.Tensor, attention_mask: Any = None) -> Any:
        b, t = input_ids.shape
        return SimpleNamespace(logits=self.logits.expand(b, t, -1))


@pytest.mark.parametrize("direction, expected", [
    # KL(target ‖ θ) = 0.9·ln(0.9/0.5) + 0.1·ln(0.1/0.5)
    ("forward", 0.9 * math.log(1.8) + 0.1 * math.log(0.2)),
    # KL(θ ‖ target) = 0.5·ln(0.5/0.9) + 0.5·ln(0.5/0.1)
    ("reverse", 0.5 * math.log(0.5 / 0.9) + 0.5 * math.log(5.0)),
])
def test_klr_direction_matches_a_hand_computed_kl(direction: str, expected: float) -> None:
    theta, target = _FixedLogits([0.5, 0.5]), _FixedLogits([0.9, 0.1])
    batch = collate([[0, 1, 1], [1, 0]], pad_id=0)
    got = value(losses.klr_loss(theta, batch, target, SimpleNamespace(kl=direction)))
    assert got == pytest.approx(expected, rel=1e-6)
    assert round(expected, 4) == (0.3681 if direction == "forward" else 0.5108)


def test_forward_klr_is_what_the_references_compute_with_kl_div(model, moved, batch) -> None:
    """MUSE's intended code, TOFU and open-unlearning: F.kl_div(log p_θ, log p_target,
    log_target=True), per token; the default direction is that one."""
    import torch.nn.functional as F

    with torch.no_grad():
        logp = torch.log_softmax(moved(input_ids=batch.input_ids).logits.float(), -1)
        logq = torch.log_softmax(model(input_ids=batch.input_ids).logits.float(), -1)
    mask = batch.attention_mask.bool()
    ref = F.kl_div(logp[mask], logq[mask], reduction="batchmean", log_target=True)
    got = losses.klr_loss(moved, batch, model, SimpleNamespace())
    assert value(got) == pytest.approx(float(ref), rel=1e-5)


def test_a_klr_step_moves_the_model_towards_the_target(model, moved, batch) -> None:
    m = copy.deepcopy(moved)
    loss = losses.klr_loss(m, batch, model, CONFIG)
    sgd_step(m, loss)
    assert value(losses.klr_loss(m, batch, model, CONFIG)) < value(loss)


@settings(max_examples=10, deadline=None)
@given(st.lists(st.integers(5, 40), min_size=1, max_size=8), st.integers(1, 6))
def test_right_padding_changes_no_loss(model, ids: list[int], pad: int) -> None:
    """Loss masking: a sequence scores the same alone and padded inside a wider batch."""
    alone = collate([[2, *ids]], pad_id=0)
    padded = collate([[2, *ids], [2, *ids, *([7] * pad)]], pad_id=0)
    assert torch.allclose(losses.sequence_logprobs(model, alone)[0],
                          losses.sequence_logprobs(model, padded)[0], atol=1e-5)
    assert torch.allclose(losses.klr_loss(model, alone, model, CONFIG),
                          losses.klr_loss(model, collate([[2, *ids]] * 2, 0), model, CONFIG),
                          atol=1e-6)
