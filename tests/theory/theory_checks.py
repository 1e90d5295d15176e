"""The Δ-interval claims of section 5 as plain check functions, and the synthetic weights they
run on. Test modules feed them hypothesis examples; `test_catches_bugs.py` feeds them planted
bugs, so each check calls the quantizer through the module (`rtn.rtn_codes`) at call time.

Notation: N bits, one scale group per row, m = max|w| of the row, Δ the step (m/(2^(N−1)−1) on
the symmetric grid, m/2^(N−1) on the paper's grids), interval I_i = [(i−½)Δ, (i+½)Δ), q_i = iΔ.
Ties (w/Δ exactly half-way) follow torch.round (half to even), not Eq. 3's half-open interval;
the checks stay a margin away from them.

Weight families, float32 [rows, cols], every row holding its absmax m at column 0 (so Δ is
known and an update that leaves column 0 alone, and stays within ±m, leaves Δ alone):
`gaussian` (ordinary training; truncated at ±m, σ = m/4.5), `heavy` (Student-t with 1%
outliers up to m, so the bulk is tiny against Δ, as in LLM rows with outlier features),
`aligned` (every weight on the grid: a QAT or dequantized-int4 checkpoint), `jittered` (on the
grid plus up to ±0.2Δ).
"""
from __future__ import annotations

import math

import numpy as np
import torch

from unlearnspec.transforms import rtn

FAMILIES = ("gaussian", "heavy", "aligned", "jittered")
GRIDS = ("symmetric", "paper", "paper_clamped")
TIE_MARGIN = 1e-3  # in units of Δ: how far from a half-way point a weight must be to be judged
Z = 5.0  # tolerance in standard deviations: a false alarm about once in 1.7 million checks


def denominator(bits: int, grid: str) -> int:
    """m/Δ: 2^(N−1)−1 for the symmetric grid, 2^(N−1) for Eq. 2 (paper, paper_clamped)."""
    return 2 ** (bits - 1) - (1 if grid == "symmetric" else 0)


def make_rows(family: str, seed: int, rows: int, cols: int, *, bits: int = 4,
              grid: str = "symmetric") -> torch.Tensor:
    rng = np.random.default_rng(seed)
    den = denominator(bits, grid)
    lo, hi = rtn.code_range(bits, grid)
    m = rng.uniform(0.05, 3.0, size=(rows, 1))
    if family == "gaussian":
        w = rng.normal(0, 1, (rows, cols)) * m / 4.5
        while (bad := np.abs(w) >= m).any():  # truncate by redrawing, not clipping
            w[bad] = rng.normal(0, 1, bad.sum()) * np.broadcast_to(m / 4.5, w.shape)[bad]
    elif family == "heavy":
        w = np.clip(rng.standard_t(3, (rows, cols)) * m / 40, -m, m)
        out = rng.random((rows, cols)) < 0.01
        w[out] = rng.uniform(-1, 1, out.sum()) * np.broadcast_to(m, w.shape)[out]
    else:
        w = rng.integers(max(lo, -den), min(hi, den) + 1, (rows, cols)) * (m / den)
        if family == "jittered":
            w = np.clip(w + rng.uniform(-0.2, 0.2, (rows, cols)) * (m / den), -m, m)
    w[:, 0] = m[:, 0] * rng.choice([-1.0, 1.0], rows)
    return torch.from_numpy(w.astype(np.float32))


def step(w: torch.Tensor, bits: int, grid: str) -> torch.Tensor:
    """Δ per row in float64, from the row's absmax as the grid defines it."""
    return w.double().abs().amax(dim=1, keepdim=True) / denominator(bits, grid)


def boundary_distance(w: torch.Tensor, bits: int, grid: str) -> torch.Tensor:
    """Distance from each weight to the nearest edge of its interval, in float64."""
    x = w.double() / step(w, bits, grid)
    return (0.5 - (x - torch.round(x)).abs()) * step(w, bits, grid)


def codes(w: torch.Tensor, bits: int, grid: str, group_size: int | None = None):
    return rtn.rtn_codes(w, bits, group_size, grid)


# ---------------------------------------------------------------- interval membership


def check_scale_is_absmax_over_levels(w: torch.Tensor, bits: int, grid: str) -> None:
    """Δ is max|w| divided by 2^(N−1) (Eq. 2) or 2^(N−1)−1 (symmetric), row by row."""
    got = codes(w, bits, grid).scale.double()
    torch.testing.assert_close(got, step(w, bits, grid), rtol=1e-6, atol=0)


def check_interval_maps_to_its_level(w: torch.Tensor, bits: int, grid: str) -> None:
    """Every weight in I_i gets code i (clamped to the grid's range) and the value q_i = iΔ."""
    c = codes(w, bits, grid)
    d = step(w, bits, grid)
    x = w.double() / d
    lo, hi = rtn.code_range(bits, grid)
    expected = torch.floor(x + 0.5).clamp(lo, hi)
    judged = boundary_distance(w, bits, grid) > TIE_MARGIN * d
    assert torch.equal(c.codes.double()[judged], expected[judged]), "a weight left its interval"
    q = rtn.rtn_quantize(w, bits, None, grid).double()
    torch.testing.assert_close(q[judged], (expected * d)[judged], rtol=1e-5, atol=1e-7)


def bounded_update(w: torch.Tensor, bits: int, grid: str, frac: float, seed: int) -> torch.Tensor:
    """δ with |δ| < frac × (distance to the nearest boundary), random sign, zero on the absmax
    column, and w+δ kept inside ±m (so Δ does not move)."""
    g = torch.Generator().manual_seed(seed)
    d = step(w, bits, grid)
    room = (boundary_distance(w, bits, grid) - TIE_MARGIN * d).clamp_min(0)
    sign = torch.randint(0, 2, w.shape, generator=g).double() * 2 - 1
    delta = frac * room * torch.rand(w.shape, generator=g, dtype=torch.float64) * sign
    delta[:, :1] = 0
    m = w.double().abs().amax(dim=1, keepdim=True)
    return ((w.double() + delta).clamp(-m, m) - w.double()).float()


def check_small_update_keeps_codes(w: torch.Tensor, bits: int, grid: str, frac: float,
                                   seed: int) -> None:
    """An update smaller than the distance to the nearest interval edge, that leaves the
    group's absmax alone, changes no code and no quantized value: Q(w+δ) = Q(w)."""
    delta = bounded_update(w, bits, grid, frac, seed)
    a, b = codes(w, bits, grid), codes(w + delta, bits, grid)
    assert torch.equal(a.codes, b.codes), "a sub-boundary update flipped a code"
    assert torch.equal(rtn.rtn_quantize(w, bits, None, grid),
                       rtn.rtn_quantize(w + delta, bits, None, grid))


def check_aligned_weights_need_half_a_step(w: torch.Tensor, bits: int, grid: str, frac: float,
                                           seed: int) -> None:
    """On the grid, any update with |δ| < Δ/2 (toward zero, so absmax stays) keeps every code;
    one with Δ/2 < |δ| < Δ flips every code it touches."""
    g = torch.Generator().manual_seed(seed)
    d = step(w, bits, grid)
    toward_zero = -torch.sign(w.double())
    toward_zero[toward_zero == 0] = 1
    mag = d * (torch.rand(w.shape, generator=g, dtype=torch.float64) * frac * (0.5 - TIE_MARGIN))
    small = (toward_zero * mag)
    small[:, :1] = 0
    assert torch.equal(codes(w, bits, grid).codes, codes(w + small.float(), bits, grid).codes)
    big = toward_zero * d * (0.5 + TIE_MARGIN + frac * (0.5 - 2 * TIE_MARGIN))
    big[:, :1] = 0
    movable = w.double().abs() >= d * (1 - TIE_MARGIN)  # codes ≠ 0 move toward zero
    movable[:, 0] = False  # the absmax anchor does not move
    flipped = codes(w, bits, grid).codes != codes(w + big.float(), bits, grid).codes
    assert bool(flipped[movable].all()), "an update beyond Δ/2 left an aligned code in place"


def smallest_visible_update(bits: int, grid: str, m: float = 1.0) -> float:
    """Δ/2 of a grid with absmax m: below it, an aligned weight never changes code."""
    return m / denominator(bits, grid) / 2


# ---------------------------------------------------------------- statistics


def uniform_in_intervals(seed: int, rows: int, cols: int, bits: int, grid: str,
                         max_frac: float):
    """Weights uniform inside interior intervals (codes lo+1 … hi−1, Δ = 1/denominator via an
    absmax anchor m = 1 in column 0), and per-weight updates |δ_j| = f_j Δ, f_j ~ U(0, max_frac),
    random sign, zero on the anchor. Returns (w, δ, Δ)."""
    g = torch.Generator().manual_seed(seed)
    lo, hi = rtn.code_range(bits, grid)
    d = 1.0 / denominator(bits, grid)
    k = torch.randint(max(lo, -denominator(bits, grid)) + 1, hi, (rows, cols), generator=g)
    w = (k.double() + torch.rand(rows, cols, generator=g, dtype=torch.float64) - 0.5) * d
    w[:, 0] = 1.0
    f = torch.rand(rows, cols, generator=g, dtype=torch.float64) * max_frac
    sign = torch.randint(0, 2, (rows, cols), generator=g).double() * 2 - 1
    delta = f * d * sign
    delta[:, 0] = 0
    return w.float(), (w.float().double() + delta).float() - w.float(), d


def check_flip_probability_and_unbiased_rounding(w: torch.Tensor, delta: torch.Tensor,
                                                 d: float, bits: int, grid: str) -> None:
    """For weights uniform within their intervals and |δ| < Δ, each weight flips with
    probability |δ|/Δ, always to the neighbour in δ's direction, so E[Q(w+δ) − Q(w)] = δ and
    E⟨Q(w+δ) − Q(w), δ⟩ = ‖δ‖²: γ ≈ 1. Tolerances: Z standard deviations of the sums, from
    the Bernoulli variances p(1−p)."""
    a, b = codes(w, bits, grid), codes(w + delta, bits, grid)
    dq = (b.codes - a.codes).double() * d  # Δ unchanged: the anchor is untouched
    dl = delta.double()
    p = (dl.abs() / d)[:, 1:]
    flips = int((a.codes != b.codes).sum())
    var = float((p * (1 - p)).sum())
    assert abs(flips - float(p.sum())) <= Z * math.sqrt(var) + 1, \
        f"{flips} flips where |δ|/Δ predicts {float(p.sum()):.1f} ± {math.sqrt(var):.1f}"
    bias = float((dq - dl).sum())
    assert abs(bias) <= Z * d * math.sqrt(var) + 1e-9, f"rounded update biased by {bias:.3g}"
    num, dd = float((dq * dl).sum()), float((dl * dl).sum())
    sd = math.sqrt(float((d * d * dl * dl)[:, 1:].mul(p * (1 - p)).sum()))
    assert abs(num - dd) <= Z * sd + 1e-12, f"γ = {num / dd:.3f}, expected 1 ± {Z * sd / dd:.3f}"


def gaussian_expected_flip_probability(delta_over_sigma: float, bits: int, grid: str,
                                       m_over_sigma: float = 4.5) -> float:
    """P(flip) for w ~ N(0, σ²) truncated to ±m and a constant update δ > 0: the mass within δ
    below an interval edge, summed over the edges between codes (clamped codes have none)."""
    den = denominator(bits, grid)
    lo, hi = rtn.code_range(bits, grid)
    dd = m_over_sigma / den  # Δ/σ
    phi = lambda x: 0.5 * (1 + math.erf(x / math.sqrt(2)))  # noqa: E731
    z = phi(m_over_sigma) - phi(-m_over_sigma)
    edges = [(i + 0.5) * dd for i in range(max(lo, -den), min(hi, den))]
    return sum(phi(b) - phi(b - delta_over_sigma) for b in edges) / z


def check_gaussian_flip_rate(w: torch.Tensor, frac: float, bits: int, grid: str) -> float:
    """Gaussian rows with a constant update δ = frac·Δ: the flip count is binomial with the
    exactly computed probability; returns the expected γ, Δ·P(flip)/δ."""
    d = step(w, bits, grid)
    delta = (frac * d).float().expand_as(w).clone()
    delta[:, 0] = 0
    inside = (w.double() + delta.double()).abs() < w.double().abs().amax(1, keepdim=True)
    delta[~inside] = 0  # never move the absmax
    a, b = codes(w, bits, grid), codes(w + delta, bits, grid)
    n = int(inside[:, 1:].sum())
    p = gaussian_expected_flip_probability(frac * 4.5 / denominator(bits, grid), bits, grid)
    flips = int((a.codes != b.codes)[:, 1:][inside[:, 1:]].sum())
    assert abs(flips - n * p) <= Z * math.sqrt(n * p * (1 - p)) + 1, \
        f"{flips} flips of {n}, expected {n * p:.1f}"
    return p / frac


# ---------------------------------------------------------------- scale and grids


def check_absmax_update_moves_the_whole_group(w: torch.Tensor, bits: int, grid: str,
                                              factor: float, group_size: int) -> None:
    """Raising one group's absmax by `factor` multiplies that group's Δ by `factor` and moves
    the quantized value of every other weight of the group with a nonzero code (codes may stay:
    a scale change, not a flip), while every other group keeps its Δ and values exactly."""
    w2 = w.clone()
    w2[:, 0] = w[:, 0] * factor  # column 0 is in group 0 of every row
    a, b = codes(w, bits, grid, group_size), codes(w2, bits, grid, group_size)
    per_row = w.shape[1] // group_size
    changed = torch.zeros_like(a.scale, dtype=torch.bool).reshape(w.shape[0], per_row)
    changed[:, 0] = True
    changed = changed.reshape(-1, 1)
    ratio = (b.scale.double() / a.scale.double())[changed]
    torch.testing.assert_close(ratio, torch.full_like(ratio, factor), rtol=1e-5, atol=0)
    assert torch.equal(b.scale[~changed], a.scale[~changed])
    qa = rtn.rtn_quantize(w, bits, group_size, grid).reshape(a.codes.shape)
    qb = rtn.rtn_quantize(w2, bits, group_size, grid).reshape(a.codes.shape)
    rows = changed.squeeze(1)
    others = torch.ones_like(qa, dtype=torch.bool)
    others[:, 0] = False
    moved = (qa != qb) | (a.codes == 0) | (a.codes != b.codes)
    assert bool(moved[rows][others[rows]].all()), "a weight kept its value under a new Δ"
    assert torch.equal(qa[~rows], qb[~rows])


def check_grid_ends(w: torch.Tensor, bits: int, grid: str) -> None:
    """Where the grids differ: the symmetric grid (2^N − 1 levels) and Eq. 2 (2^N + 1 levels)
    both return ±m exactly; the N-bit clamped form of Eq. 2 returns −m but clips +m to m − Δ,
    so its top interval [(2^(N−1) − ½)Δ, m] is 1.5Δ wide and every weight in it reads m − Δ."""
    c = codes(w, bits, grid)
    lo, hi = rtn.code_range(bits, grid)
    assert hi - lo + 1 == {"symmetric": 2**bits - 1, "paper": 2**bits + 1,
                           "paper_clamped": 2**bits}[grid]
    assert int(c.codes.min()) >= lo and int(c.codes.max()) <= hi
    q = rtn.rtn_quantize(w, bits, None, grid).double()
    m, d = w.double().abs().amax(1), step(w, bits, grid).squeeze(1)
    top = q[:, 0] * torch.sign(w[:, 0].double())
    want = m - d if grid == "paper_clamped" else m
    pos = w[:, 0] > 0
    torch.testing.assert_close(top[pos], want[pos], rtol=1e-5, atol=0)
    torch.testing.assert_close(top[~pos], m[~pos], rtol=1e-5, atol=0)
    if grid == "paper_clamped":
        high = w.double() >= (hi + 0.5 + TIE_MARGIN) * d.unsqueeze(1)
        assert bool((c.codes[high] == hi).all())
