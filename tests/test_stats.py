"""Tests for core.stats: hand-computed cases plus cross-checks against
sklearn / statsmodels reference implementations."""

from __future__ import annotations

import math

import numpy as np
import pytest
from sklearn.metrics import f1_score
from statsmodels.stats.contingency_tables import mcnemar
from statsmodels.stats.inter_rater import fleiss_kappa as sm_fleiss_kappa
from statsmodels.stats.multitest import multipletests

from core.stats import (
    accuracy,
    confusion,
    csat_points,
    fleiss_kappa,
    holm,
    macro_f1,
    majority_vote,
    mcnemar_exact,
    paired_bootstrap_ci,
)

# --- accuracy ---------------------------------------------------------------


def test_accuracy_hand_cases():
    assert accuracy([1, 2, 3, 4], [1, 2, 3, 4]) == 1.0
    assert accuracy([1, 2, 3, 4], [2, 3, 4, 5]) == 0.0
    assert accuracy([1, 2, 3, 4], [1, None, 3, None]) == 0.5
    assert accuracy([5, 1, 2], [5, None, 1]) == pytest.approx(1 / 3)


def test_accuracy_empty_and_mismatch():
    assert accuracy([], []) == 0.0
    with pytest.raises(ValueError):
        accuracy([1, 2], [1])


# --- macro F1 ---------------------------------------------------------------


def _sk_macro(gold, pred, labels=None):
    p = [0 if x is None else x for x in pred]
    return f1_score(gold, p, labels=labels, average="macro", zero_division=0)


def test_macro_f1_hand_case():
    gold = [1, 1, 2, 3, 4]
    pred = [1, 3, 2, None, 1]
    # label 1: tp=1 fp=1 fn=1 -> 0.5 ; label 2: tp=1 -> 1.0 ; label 3: tp=0 -> 0
    # label 4: tp=0 -> 0 ; unanswered (0): tp=0 fp=1 -> 0  => 1.5 / 5
    assert macro_f1(gold, pred) == pytest.approx((0.5 + 1.0 + 0 + 0 + 0) / 5)
    # Restricting labels drops the unanswered class from the average.
    assert macro_f1(gold, pred, labels=[1, 2, 3, 4]) == pytest.approx(1.5 / 4)


def test_macro_f1_perfect_all_wrong_empty():
    assert macro_f1([1, 2, 3, 4, 5], [1, 2, 3, 4, 5]) == 1.0
    assert macro_f1([1, 2, 3], [2, 3, 1]) == 0.0
    assert macro_f1([1, 2, 3], [None, None, None]) == 0.0
    assert macro_f1([], []) == 0.0
    with pytest.raises(ValueError):
        macro_f1([0, 1], [1, 1])  # 0 is reserved for unanswered


def test_macro_f1_unanswered_counts_as_class():
    # Same correct answers; abstaining adds a zero-F1 class, lowering the mean.
    assert macro_f1([1, 2], [1, None]) == pytest.approx(
        f1_score([1, 2], [1, 0], average="macro", zero_division=0)
    )
    assert macro_f1([1, 2], [1, None]) == pytest.approx(1 / 3)


@pytest.mark.parametrize("seed", range(300))
def test_macro_f1_matches_sklearn_random(seed):
    rng = np.random.default_rng(seed)
    n = int(rng.integers(1, 60))
    n_choices = rng.choice([4, 5], size=n)  # 4- and 5-choice questions mixed
    gold = [int(rng.integers(1, k + 1)) for k in n_choices]
    mode = seed % 4
    pred: list[int | None] = []
    for g, k in zip(gold, n_choices):
        r = rng.random()
        if mode == 0 and r < 0.2:
            pred.append(None)
        elif mode == 1:  # all wrong
            pred.append(g % int(k) + 1)
        elif mode == 2 and r < 0.5:  # degenerate, many ties on one label
            pred.append(1)
        else:
            pred.append(g if r < 0.4 else int(rng.integers(1, k + 1)))
    assert macro_f1(gold, pred) == pytest.approx(_sk_macro(gold, pred), abs=1e-12)
    labels = [1, 2, 3, 4, 5]
    assert macro_f1(gold, pred, labels) == pytest.approx(
        _sk_macro(gold, pred, labels), abs=1e-12
    )


# --- confusion --------------------------------------------------------------


def test_confusion_hand_case():
    m = confusion([1, 1, 2, 4, 5], [1, None, 3, 4, None], n_choices=5)
    assert m.shape == (5, 6)
    expected = np.zeros((5, 6), dtype=int)
    expected[0, 0] = 1
    expected[0, 5] = 1
    expected[1, 2] = 1
    expected[3, 3] = 1
    expected[4, 5] = 1
    np.testing.assert_array_equal(m, expected)
    assert m.sum() == 5
    assert np.trace(m[:, :5]) == 2  # diagonal == correct answers


def test_confusion_four_choices_and_range():
    m = confusion([1, 2, 3, 4], [4, 3, 2, 1], n_choices=4)
    assert m.shape == (4, 5)
    np.testing.assert_array_equal(m[:, :4], np.fliplr(np.eye(4, dtype=int)))
    with pytest.raises(ValueError):
        confusion([1, 2], [5, 1], n_choices=4)


# --- McNemar ----------------------------------------------------------------


def test_mcnemar_hand_cases():
    a = [True, True, True, False, False, True]
    b = [True, False, False, True, False, True]
    r = mcnemar_exact(a, b)
    assert (r["n"], r["both_correct"], r["a_only"], r["b_only"], r["both_wrong"]) == (
        6,
        2,
        2,
        1,
        1,
    )
    # discordant 2 vs 1: P = 2 * P(X<=1 | n=3) = 2 * 4/8 = 1.0
    assert r["p_value"] == pytest.approx(1.0)
    # 0 vs 6 discordant: 2 * 0.5**6 = 0.03125
    r = mcnemar_exact([False] * 6 + [True] * 4, [True] * 6 + [True] * 4)
    assert (r["a_only"], r["b_only"], r["both_correct"]) == (0, 6, 4)
    assert r["p_value"] == pytest.approx(0.03125)


def test_mcnemar_no_discordant():
    r = mcnemar_exact([True, False], [True, False])
    assert r["p_value"] == 1.0 and r["a_only"] == r["b_only"] == 0
    assert mcnemar_exact([], [])["p_value"] == 1.0


@pytest.mark.parametrize("seed", range(50))
def test_mcnemar_matches_statsmodels(seed):
    rng = np.random.default_rng(seed)
    n = int(rng.integers(5, 200))
    a = rng.random(n) < 0.6
    b = rng.random(n) < rng.uniform(0.3, 0.9)
    r = mcnemar_exact(a.tolist(), b.tolist())
    table = [[r["both_correct"], r["a_only"]], [r["b_only"], r["both_wrong"]]]
    assert sum(map(sum, table)) == n
    assert r["p_value"] == pytest.approx(mcnemar(table, exact=True).pvalue, rel=1e-9)


# --- paired bootstrap -------------------------------------------------------


def _slow_bootstrap(a, b, clusters, n_resamples, confidence, seed):
    rng = np.random.default_rng(seed)
    ids = sorted(set(clusters))
    members = {c: [i for i, x in enumerate(clusters) if x == c] for c in ids}
    diffs = []
    for _ in range(n_resamples):
        items = [i for c in rng.choice(ids, size=len(ids)) for i in members[c]]
        diffs.append(np.mean([b[i] - a[i] for i in items]))
    alpha = 1 - confidence
    return np.quantile(diffs, [alpha / 2, 1 - alpha / 2])


def _pair(n, seed, pa=0.5, pb=0.65):
    rng = np.random.default_rng(seed)
    return (rng.random(n) < pa).tolist(), (rng.random(n) < pb).tolist()


def test_bootstrap_reproducible_and_fields():
    a, b = _pair(200, 1)
    r1 = paired_bootstrap_ci(a, b, seed=7)
    r2 = paired_bootstrap_ci(a, b, seed=7)
    assert r1 == r2
    assert paired_bootstrap_ci(a, b, seed=8)["low"] != r1["low"]
    assert r1["diff"] == pytest.approx(np.mean(b) - np.mean(a))
    assert (r1["n"], r1["n_clusters"], r1["n_resamples"]) == (200, 200, 10000)
    assert (r1["confidence"], r1["seed"]) == (0.95, 7)
    assert r1["low"] <= r1["diff"] <= r1["high"]
    assert r1["low"] < r1["high"]


def test_bootstrap_identical_models_zero_width():
    a, _ = _pair(100, 2)
    r = paired_bootstrap_ci(a, a, n_resamples=500)
    assert (r["diff"], r["low"], r["high"]) == (0.0, 0.0, 0.0)


def test_bootstrap_direction_is_b_minus_a():
    r = paired_bootstrap_ci([False] * 10, [True] * 10, n_resamples=200)
    assert (r["diff"], r["low"], r["high"]) == (1.0, 1.0, 1.0)


def test_bootstrap_clustered_wider_when_clusters_correlated():
    # 40 passages x 5 questions; outcomes identical within a passage.
    rng = np.random.default_rng(3)
    pa, pb = rng.random(40) < 0.5, rng.random(40) < 0.6
    a, b = np.repeat(pa, 5).tolist(), np.repeat(pb, 5).tolist()
    clusters = [f"p{i}" for i in range(40) for _ in range(5)]
    flat = paired_bootstrap_ci(a, b, seed=0)
    clus = paired_bootstrap_ci(a, b, clusters=clusters, seed=0)
    assert clus["n_clusters"] == 40 and flat["n_clusters"] == 200
    assert clus["diff"] == flat["diff"]
    # perfect within-cluster correlation inflates width by ~sqrt(5) ≈ 2.2
    assert (clus["high"] - clus["low"]) > 1.7 * (flat["high"] - flat["low"])


def test_bootstrap_matches_slow_reference():
    rng = np.random.default_rng(5)
    sizes = rng.integers(1, 6, size=25)  # unequal cluster sizes
    clusters = [f"c{i}" for i, s in enumerate(sizes) for _ in range(s)]
    n = len(clusters)
    a = (rng.random(n) < 0.5).astype(int).tolist()
    b = (rng.random(n) < 0.7).astype(int).tolist()
    fast = paired_bootstrap_ci(a, b, clusters=clusters, n_resamples=20000, seed=1)
    lo, hi = _slow_bootstrap(a, b, clusters, 4000, 0.95, seed=2)
    assert fast["low"] == pytest.approx(lo, abs=0.03)
    assert fast["high"] == pytest.approx(hi, abs=0.03)


def test_bootstrap_errors():
    """Bad input is refused; how fast 10,000 resamples run is measured in bench/bench_analysis.py."""
    with pytest.raises(ValueError):
        paired_bootstrap_ci([], [])
    with pytest.raises(ValueError):
        paired_bootstrap_ci([True], [False], clusters=["x", "y"])
    with pytest.raises(ValueError):
        paired_bootstrap_ci([True], [False], confidence=1.0)


# --- Holm -------------------------------------------------------------------


def test_holm_hand_case():
    # sorted: 0.01*3=0.03, 0.02*2=0.04, 0.04*1=0.04 (monotone)
    assert holm([0.04, 0.01, 0.02]) == pytest.approx([0.04, 0.03, 0.04])
    assert holm([0.5, 0.6]) == pytest.approx([1.0, 1.0])
    assert holm([]) == []
    with pytest.raises(ValueError):
        holm([0.1, 1.5])


@pytest.mark.parametrize("seed", range(30))
def test_holm_matches_statsmodels(seed):
    rng = np.random.default_rng(seed)
    p = rng.random(int(rng.integers(1, 25))) ** 3
    if seed % 3 == 0:
        p[: len(p) // 2] = p[0]  # ties
    expected = multipletests(p, method="holm")[1]
    np.testing.assert_allclose(holm(p.tolist()), expected, rtol=1e-12)


# --- majority vote ----------------------------------------------------------


def test_majority_vote_clear_winner():
    r = majority_vote([3, 3, 1, None, 3, 2])
    assert r == {
        "label": 3,
        "agreement": 0.6,
        "votes": {1: 1, 2: 1, 3: 3},
        "tie": False,
        "n": 5,
    }


def test_majority_vote_tie_never_guesses():
    r = majority_vote([2, 4, 4, 2, None])
    assert r["label"] is None and r["tie"] is True
    assert r["agreement"] == 0.5 and r["n"] == 4 and r["votes"] == {2: 2, 4: 2}


def test_majority_vote_no_votes_and_unanimous():
    assert majority_vote([None, None]) == {
        "label": None,
        "agreement": 0.0,
        "votes": {},
        "tie": False,
        "n": 0,
    }
    assert majority_vote([])["label"] is None
    r = majority_vote([5])
    assert (r["label"], r["agreement"], r["tie"]) == (5, 1.0, False)


# --- Fleiss' kappa ----------------------------------------------------------


def test_fleiss_kappa_hand_and_wikipedia():
    # Two raters, perfect agreement across two categories -> 1.
    assert fleiss_kappa(np.array([[2, 0], [0, 2], [2, 0], [0, 2]])) == pytest.approx(
        1.0
    )
    # Classic Fleiss (1971) / Wikipedia example: 10 items, 14 raters -> 0.210.
    wiki = np.array(
        [
            [0, 0, 0, 0, 14],
            [0, 2, 6, 4, 2],
            [0, 0, 3, 5, 6],
            [0, 3, 9, 2, 0],
            [2, 2, 8, 1, 1],
            [7, 7, 0, 0, 0],
            [3, 2, 6, 3, 0],
            [2, 5, 3, 2, 2],
            [6, 5, 2, 1, 0],
            [0, 2, 2, 3, 7],
        ]
    )
    assert fleiss_kappa(wiki) == pytest.approx(0.20993, abs=1e-5)


@pytest.mark.parametrize("seed", range(20))
def test_fleiss_kappa_matches_statsmodels(seed):
    rng = np.random.default_rng(seed)
    items, cats, raters = int(rng.integers(3, 40)), int(rng.choice([4, 5])), 6
    probs = rng.dirichlet(np.ones(cats) * 0.5, size=items)
    table = np.array([rng.multinomial(raters, p) for p in probs])
    assert fleiss_kappa(table) == pytest.approx(sm_fleiss_kappa(table), abs=1e-12)


def test_fleiss_kappa_errors_and_degenerate():
    with pytest.raises(ValueError):
        fleiss_kappa(np.array([[2, 1], [1, 1]]))  # ragged rater counts
    with pytest.raises(ValueError):
        fleiss_kappa(np.array([[1, 0], [0, 1]]))  # one rater
    with pytest.raises(ValueError):
        fleiss_kappa(np.zeros((0, 3)))
    assert math.isnan(fleiss_kappa(np.array([[3, 0], [3, 0]])))


# --- CSAT points ------------------------------------------------------------


def test_csat_points():
    assert csat_points([True, False, True], [2, 3, 2.0]) == (4.0, 7.0)
    assert csat_points([False, False], [2, 3]) == (0.0, 5.0)
    assert csat_points([True, True, False], [None, 3, 2]) == (3.0, 5.0)
    assert csat_points([True, False], [None, None]) == (None, None)
    assert csat_points([], []) == (None, None)
    with pytest.raises(ValueError):
        csat_points([True], [2, 3])
