"""Hand-computed cases for the pure scoring functions (ROUGE-L, stop strings, Min-K%, AUC
orientation, PrivLeak sign, entropy, QA F1)."""
from __future__ import annotations

import math
import zlib

import pytest
from hypothesis import given, strategies as st

from unlearnspec.errors import RunError
from unlearnspec.metrics.scores import (
    KNOWMEM_STOPS, cut_at_stops, loss_score, mean_result, mia_auc, mink_count, mink_score,
    minkpp_score, ngram_entropy, privleak_percent, qa_f1, rouge_l_f1, zlib_score,
)
from unlearnspec.metrics.privleak import privleak_score


def test_rouge_l_f1_hand_computed():
    # LCS = 5 tokens; precision 5/5, recall 5/6 -> F1 = 10/11
    assert rouge_l_f1("the cat sat on the mat", "the cat on the mat") == pytest.approx(10 / 11)


def test_rouge_l_is_case_insensitive_and_unstemmed():
    assert rouge_l_f1("The Cat", "the cat") == 1.0
    # with a stemmer "running dogs" would match "run dog"; MUSE uses none
    assert rouge_l_f1("running dogs", "run dog") == 0.0
    assert rouge_l_f1("anything", "") == 0.0


@pytest.mark.parametrize("raw, cut", [
    ("Paris\n\nQuestion: where?", "Paris"),
    ("Paris\nQuestion 2", "Paris"),
    ("Paris Question: what", "Paris "),
    ("Paris\nLondon", "Paris\nLondon"),
])
def test_knowmem_stop_strings(raw, cut):
    assert cut_at_stops(raw, KNOWMEM_STOPS) == cut


def test_mink_of_known_vector():
    # k = 40% of 5 tokens -> int(2.0) = 2 lowest: -5, -4 -> score 4.5
    assert mink_score([-1, -2, -3, -4, -5], 0.4) == pytest.approx(4.5)


def test_mink_guards_n_times_k_below_one():
    assert mink_count(2, 0.4) == 1            # int(0.8) = 0 would average nothing
    assert mink_score([-1, -2], 0.4) == pytest.approx(2.0)
    with pytest.raises(ValueError):
        mink_score([], 0.4)


@given(st.lists(st.floats(-30, 0), min_size=1, max_size=50), st.floats(0.01, 1.0))
def test_mink_is_at_least_the_mean_loss(lps, k):
    assert mink_score(lps, k) >= loss_score(lps) - 1e-9
    assert mink_score(lps, 1.0) == pytest.approx(loss_score(lps))


def test_minkpp_standardizes_by_the_distribution():
    # z = [1, -1]; k = 0.5 -> lowest one: -1 -> score 1
    assert minkpp_score([-1, -3], [-2, -2], [1, 1], 0.5) == pytest.approx(1.0)


def test_zlib_divides_loss_by_compressed_length():
    text = "alpha beta gamma"
    assert zlib_score([-2.0, -4.0], text) == pytest.approx(3.0 / len(zlib.compress(text.encode())))


def test_auc_orientation_forget_zero_holdout_one():
    remembered, unseen = [0.1, 0.2, 0.3], [0.9, 1.0, 1.1]   # low score = likely member
    assert mia_auc(remembered, unseen) == 0.0
    assert mia_auc(unseen, remembered) == 1.0
    assert mia_auc([0.5, 0.5], [0.5, 0.5]) == 0.5


def test_auc_needs_both_sides_and_finite_scores():
    with pytest.raises(RunError, match="forget and holdout"):
        mia_auc([], [1.0])
    with pytest.raises(RunError, match="NaN"):
        mia_auc([math.nan], [1.0])


def test_privleak_sign():
    assert privleak_score(0.0, 0.5) == pytest.approx(-100.0)   # still remembers
    assert privleak_score(0.5, 0.5) == 0.0
    assert privleak_score(0.75, 0.5) == pytest.approx(50.0)    # over-unlearned
    with pytest.raises(RunError, match="AUC_retrain"):
        privleak_percent(0.3, 0.0)


def test_ngram_entropy_hand_computed():
    # bigrams: 3 distinct -> log2 3; trigrams: 2 distinct -> 1 bit
    expected = (2 / 3 * math.log2(3) + 4 / 3 * 1.0) / 2
    assert ngram_entropy("alpha beta gamma delta") == pytest.approx(expected)
    assert ngram_entropy("alpha alpha alpha alpha") == 0.0
    assert ngram_entropy("alpha") == 0.0


def test_qa_f1():
    assert qa_f1("The Eiffel Tower.", ["eiffel tower"]) == 1.0
    assert qa_f1("Paris France", ["Paris"]) == pytest.approx(2 / 3)
    assert qa_f1("London", ["Paris", "london"]) == 1.0   # best alias
    assert qa_f1("", ["Paris"]) == 0.0


def test_zero_samples_is_an_error_not_a_value():
    with pytest.raises(RunError, match="no samples"):
        mean_result([], what="verbmem[forget]")
    r = mean_result([0.0, 100.0], what="x")
    assert (r.value, r.n, r.per_sample) == (50.0, 2, (0.0, 100.0))
