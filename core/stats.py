"""Evaluation statistics for CSAT multiple-choice runs.

Pure functions (no I/O): scores, paired significance tests and gold-label
consensus. Answer labels are choice numbers 1..n; ``None`` means the model gave
no parsable answer, which always counts as wrong.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence

import numpy as np

UNANSWERED = 0  # sentinel label for None predictions; choice numbers start at 1


def _same_length(*seqs: Sequence) -> int:
    """Return the common length; misaligned inputs are a caller bug, not data."""
    lengths = {len(s) for s in seqs}
    if len(lengths) != 1:
        raise ValueError(f"inputs differ in length: {sorted(lengths)}")
    return lengths.pop()


def _labels(values: Sequence[int | None], allow_none: bool) -> np.ndarray:
    """Encode answers as ints with None -> UNANSWERED, rejecting labels < 1."""
    out = np.empty(len(values), dtype=np.int64)
    for i, v in enumerate(values):
        if v is None:
            if not allow_none:
                raise ValueError("gold labels may not be None")
            out[i] = UNANSWERED
        elif int(v) < 1:
            raise ValueError(f"choice labels start at 1, got {v!r}")
        else:
            out[i] = int(v)
    return out


def accuracy(gold: Sequence[int], pred: Sequence[int | None]) -> float:
    """Share of exact matches; None is wrong. Empty input gives 0.0 so an
    empty filter in the dashboard shows 0 rather than crashing."""
    n = _same_length(gold, pred)
    if n == 0:
        return 0.0
    return sum(p is not None and int(p) == int(g) for g, p in zip(gold, pred)) / n


def macro_f1(
    gold: Sequence[int],
    pred: Sequence[int | None],
    labels: Sequence[int] | None = None,
) -> float:
    """Unweighted mean of per-label F1, matching sklearn
    ``f1_score(average="macro", zero_division=0)`` as leaderboards report it.

    With ``labels=None`` the labels are the union of gold and predicted labels,
    and unanswered predictions form their own class (sentinel 0): abstaining
    costs recall on the gold label and adds a zero-F1 class to the average.
    Passing ``labels`` averages over exactly those labels (abstentions then
    only cost recall). Empty input gives 0.0.
    """
    _same_length(gold, pred)
    g = _labels(gold, allow_none=False)
    p = _labels(pred, allow_none=True)
    labs = np.union1d(g, p) if labels is None else np.asarray(labels, dtype=np.int64)
    if g.size == 0 or labs.size == 0:
        return 0.0
    is_g = g[:, None] == labs[None, :]
    is_p = p[:, None] == labs[None, :]
    tp = (is_g & is_p).sum(axis=0)
    denom = is_g.sum(axis=0) + is_p.sum(axis=0)  # 2tp + fp + fn
    f1 = np.divide(2.0 * tp, denom, out=np.zeros(labs.size), where=denom > 0)
    return float(f1.mean())


def confusion(
    gold: Sequence[int], pred: Sequence[int | None], n_choices: int = 5
) -> np.ndarray:
    """Counts with rows gold 1..n and columns predicted 1..n plus a final
    'unanswered' column, so abstentions stay visible instead of vanishing.
    Use n_choices=5 for mixed 4/5-choice sets (4-choice rows never hit 5)."""
    _same_length(gold, pred)
    g = _labels(gold, allow_none=False)
    p = _labels(pred, allow_none=True)
    if (g > n_choices).any() or (p > n_choices).any():
        raise ValueError(f"label outside 1..{n_choices}")
    cols = np.where(p == UNANSWERED, n_choices, p - 1)
    out = np.zeros((n_choices, n_choices + 1), dtype=np.int64)
    np.add.at(out, (g - 1, cols), 1)
    return out


def mcnemar_exact(a_correct: Sequence[bool], b_correct: Sequence[bool]) -> dict:
    """Exact McNemar test: paired models on the same questions differ only on
    discordant items, so test those against a fair coin (two-sided)."""
    from scipy.stats import binomtest  # scipy loads only when a test is computed (CLI --help stays fast)

    n = _same_length(a_correct, b_correct)
    a = np.asarray(a_correct, dtype=bool)
    b = np.asarray(b_correct, dtype=bool)
    a_only = int((a & ~b).sum())
    b_only = int((~a & b).sum())
    k = a_only + b_only
    p = 1.0 if k == 0 else float(binomtest(min(a_only, b_only), k, 0.5).pvalue)
    return {
        "n": n,
        "both_correct": int((a & b).sum()),
        "a_only": a_only,
        "b_only": b_only,
        "both_wrong": int((~a & ~b).sum()),
        "p_value": min(p, 1.0),
    }


def paired_bootstrap_ci(
    a_correct: Sequence[bool],
    b_correct: Sequence[bool],
    clusters: Sequence[str] | None = None,
    n_resamples: int = 10000,
    confidence: float = 0.95,
    seed: int = 0,
) -> dict:
    """Percentile CI for accuracy(b) - accuracy(a) by a paired cluster bootstrap.

    Questions sharing a passage are correlated, so whole clusters are resampled
    (``clusters=None``: every question is its own cluster); ignoring this gives
    falsely narrow intervals. Each resample's diff is sum of per-item diffs over
    the drawn clusters divided by their total size. Empty input raises
    ValueError because no interval exists.
    """
    n = _same_length(a_correct, b_correct)
    if n == 0:
        raise ValueError("cannot bootstrap an empty comparison")
    if not 0.0 < confidence < 1.0:
        raise ValueError("confidence must be in (0, 1)")
    d = np.asarray(b_correct, dtype=float) - np.asarray(a_correct, dtype=float)
    if clusters is None:
        inv = np.arange(n)
    else:
        if len(clusters) != n:
            raise ValueError("clusters must align with the correctness vectors")
        _, inv = np.unique(np.asarray(clusters, dtype=str), return_inverse=True)
    k = int(inv.max()) + 1
    d_sum = np.bincount(inv, weights=d, minlength=k)
    size = np.bincount(inv, minlength=k).astype(float)
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, k, size=(n_resamples, k))
    diffs = d_sum[idx].sum(axis=1) / size[idx].sum(axis=1)
    alpha = 1.0 - confidence
    low, high = np.quantile(diffs, [alpha / 2, 1 - alpha / 2])
    return {
        "diff": float(d.mean()),
        "low": float(low),
        "high": float(high),
        "n": n,
        "n_clusters": k,
        "n_resamples": n_resamples,
        "confidence": confidence,
        "seed": seed,
    }


def holm(p_values: Sequence[float]) -> list[float]:
    """Holm step-down adjusted p-values (input order kept): controls the
    family-wise error when many model pairs are compared, without assuming
    independence and less conservatively than Bonferroni."""
    p = np.asarray(p_values, dtype=float)
    if p.size == 0:
        return []
    if np.isnan(p).any() or (p < 0).any() or (p > 1).any():
        raise ValueError("p-values must be in [0, 1]")
    m = p.size
    order = np.argsort(p, kind="stable")
    stepped = np.maximum.accumulate((m - np.arange(m)) * p[order])
    out = np.empty(m)
    out[order] = np.minimum(stepped, 1.0)
    return out.tolist()


def majority_vote(votes: Sequence[int | None]) -> dict:
    """Consensus gold label from several teachers x runs. A tie for first
    place yields ``label=None`` (never guess a gold label); ``agreement`` is
    the top count over non-None votes (0.0 when there are none), so ties
    still report how split the teachers were."""
    counts = Counter(int(v) for v in votes if v is not None)
    n = sum(counts.values())
    if n == 0:
        return {"label": None, "agreement": 0.0, "votes": {}, "tie": False, "n": 0}
    top = max(counts.values())
    leaders = [lab for lab, c in counts.items() if c == top]
    tie = len(leaders) > 1
    return {
        "label": None if tie else leaders[0],
        "agreement": top / n,
        "votes": dict(sorted(counts.items())),
        "tie": tie,
        "n": n,
    }


def fleiss_kappa(table: np.ndarray) -> float:
    """Fleiss' kappa for an items x categories count table: chance-corrected
    agreement among teacher runs. Requires the same number (>= 2) of ratings
    per item, as the statistic is defined; ragged rows raise ValueError (drop
    or subsample ratings first). Returns nan when expected agreement is 1
    (every rating in one category), where kappa is undefined."""
    t = np.asarray(table, dtype=float)
    if t.ndim != 2 or t.shape[0] == 0:
        raise ValueError("table must be a non-empty 2-D items x categories array")
    if (t < 0).any() or not np.allclose(t, np.round(t)):
        raise ValueError("table must hold non-negative integer counts")
    raters = t.sum(axis=1)
    r = raters[0]
    if not np.all(raters == r):
        raise ValueError("every item needs the same number of ratings")
    if r < 2:
        raise ValueError("need at least two ratings per item")
    p_cat = t.sum(axis=0) / t.sum()
    p_item = ((t * t).sum(axis=1) - r) / (r * (r - 1))
    p_bar, p_exp = p_item.mean(), float((p_cat**2).sum())
    if np.isclose(p_exp, 1.0):
        return float("nan")
    return float((p_bar - p_exp) / (1.0 - p_exp))


def csat_points(
    correct: Sequence[bool], points: Sequence[float | None]
) -> tuple[float | None, float | None]:
    """CSAT-style score (earned, max). Items with unknown points are left out
    of both; if no item has points the score is (None, None) rather than a
    misleading 0/0."""
    _same_length(correct, points)
    known = [(bool(c), float(p)) for c, p in zip(correct, points) if p is not None]
    if not known:
        return None, None
    return sum(p for c, p in known if c), sum(p for _, p in known)
