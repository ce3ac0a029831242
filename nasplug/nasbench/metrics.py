"""Rank-quality metrics of a training-free score against benchmark ground truth.

Kendall τ and Spearman ρ are the standard ways NAS papers compare zero-cost proxies on
NAS-Bench-201 (e.g. synflow ρ ≈ 0.74 on CIFAR-10). They measure the whole ranking, but a
pre-filter is used differently: it discards most of the space *before* anything is trained, so what
matters is whether the very best cells survive. :func:`top_k_precision` and
:func:`prefilter_curve` measure exactly that.

Conventions shared by every function here:

* ``scores`` are oriented so that **higher is better** (negate a lower-is-better scorer first, see
  :func:`nasplug.scorers.oriented`); ``truth`` is an accuracy (higher is better).
* Pairs where either value is NaN are dropped (a cell missing from the benchmark, or a scorer that
  could not score it), so callers can pass aligned arrays as they are.
* Ties in the score are resolved **pessimistically** for the pre-filter metrics: to be sure of
  keeping a cell one must keep every cell scored at least as high, because a filter that thresholds
  a score cannot split a group of equal scores. Topology scores have many ties (NB201's 15,625 cells
  take only a few dozen (d̄, m̄) values), so an optimistic tie rule would flatter them badly.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy import stats


def _finite_pairs(scores: np.ndarray, truth: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    scores = np.asarray(scores, dtype=np.float64)
    truth = np.asarray(truth, dtype=np.float64)
    if scores.shape != truth.shape or scores.ndim != 1:
        raise ValueError(f"scores and truth must be 1-D arrays of one length, got {scores.shape} "
                         f"and {truth.shape}")
    ok = np.isfinite(scores) & np.isfinite(truth)
    return scores[ok], truth[ok]


def kendall_tau(scores: np.ndarray, truth: np.ndarray) -> float:
    """Kendall's τ-b between ``scores`` and ``truth`` (NaN pairs dropped).

    τ-b (scipy's default) corrects for ties in both variables, which matters here: a topology score
    ties thousands of cells, and τ-a would shrink towards 0 for reasons unrelated to ranking quality.
    NaN when fewer than two finite pairs remain or either side is constant.
    """
    x, y = _finite_pairs(scores, truth)
    if len(x) < 2 or np.ptp(x) == 0 or np.ptp(y) == 0:
        return float("nan")
    return float(stats.kendalltau(x, y).statistic)


def spearman_rho(scores: np.ndarray, truth: np.ndarray) -> float:
    """Spearman's ρ: the Pearson correlation of the average ranks (NaN pairs dropped)."""
    x, y = _finite_pairs(scores, truth)
    if len(x) < 2 or np.ptp(x) == 0 or np.ptp(y) == 0:
        return float("nan")
    return float(stats.spearmanr(x, y).statistic)


def pessimistic_rank(scores: np.ndarray) -> np.ndarray:
    """For each cell, how many cells score at least as high (1 = strictly best).

    This is the number of cells a threshold filter must keep to be sure of keeping that cell.
    NaN scores rank last (as if −∞).
    """
    values = np.nan_to_num(np.asarray(scores, dtype=np.float64), nan=-np.inf)
    ascending = np.sort(values)
    # count of values >= v  =  n − (number of values < v)
    return len(values) - np.searchsorted(ascending, values, side="left")


def true_top(truth: np.ndarray, k: int) -> np.ndarray:
    """Positions of the ``k`` best cells by ``truth`` (NaN never counts; ties by position)."""
    values = np.nan_to_num(np.asarray(truth, dtype=np.float64), nan=-np.inf)
    k = min(int(k), int(np.isfinite(values).sum()))
    order = np.lexsort((np.arange(len(values)), -values))
    return order[:k]


def top_k_precision(scores: np.ndarray, truth: np.ndarray, k: int) -> float:
    """Fraction of the true top-``k`` cells among the ``k`` best-scored cells.

    Score ties at the boundary are broken by position (the order a user would see in a sorted
    list), so this is the precision of the list ``nasplug rank`` prints.
    """
    s, t = np.asarray(scores, dtype=np.float64), np.asarray(truth, dtype=np.float64)
    ok = np.isfinite(t)
    s, t = s[ok], t[ok]
    if k < 1 or len(t) == 0:
        raise ValueError(f"k must be >= 1 and truth non-empty, got k={k}, {len(t)} cells")
    k = min(k, len(t))
    by_score = np.lexsort((np.arange(len(s)), -np.nan_to_num(s, nan=-np.inf)))[:k]
    return len(np.intersect1d(by_score, true_top(t, k))) / k


@dataclass(frozen=True)
class PrefilterCurve:
    """Kept fraction of the true top-``k`` as a function of the pruned fraction of the space.

    ``pruned[i]`` is the fraction of cells a threshold on the score removes and ``kept[i]`` the
    fraction of the true top-``k`` that survives it; one point per distinct score threshold, from
    keeping everything (pruned 0) to keeping only the best tie group.
    """

    k: int
    pruned: np.ndarray
    kept: np.ndarray

    def max_pruned_keeping(self, fraction: float = 1.0) -> float:
        """The largest pruned fraction that still keeps at least ``fraction`` of the true top-k."""
        ok = self.kept >= fraction - 1e-12
        return float(self.pruned[ok].max()) if ok.any() else 0.0


def prefilter_curve(scores: np.ndarray, truth: np.ndarray, k: int) -> PrefilterCurve:
    """The pre-filter curve of a score for the true top-``k`` (cells with NaN truth are ignored).

    A threshold that keeps the cells scoring at least ``v`` keeps ``rank(v)`` cells (pessimistic
    rank, see :func:`pessimistic_rank`) and the true top-k cells whose rank is at most that.
    """
    s, t = np.asarray(scores, dtype=np.float64), np.asarray(truth, dtype=np.float64)
    ok = np.isfinite(t)
    s, t = s[ok], t[ok]
    n = len(t)
    if n == 0 or k < 1:
        raise ValueError(f"need k >= 1 and cells with a truth value, got k={k}, {n} cells")
    ranks = pessimistic_rank(s)
    top = true_top(t, k)
    kept_sizes = np.unique(ranks)  # distinct achievable numbers of kept cells, ascending
    top_ranks = np.sort(ranks[top])
    kept_top = np.searchsorted(top_ranks, kept_sizes, side="right")
    # the largest kept size is n (the worst tie group counts every cell), i.e. pruned = 0
    pruned = 1.0 - kept_sizes[::-1] / n
    kept = kept_top[::-1] / len(top)
    return PrefilterCurve(len(top), pruned, kept)


def filter_point(keep: np.ndarray, truth: np.ndarray, k: int) -> tuple[float, float]:
    """(pruned fraction, kept fraction of the true top-``k``) of a boolean filter."""
    keep = np.asarray(keep, dtype=bool)
    t = np.asarray(truth, dtype=np.float64)
    ok = np.isfinite(t)
    keep, t = keep[ok], t[ok]
    top = true_top(t, k)
    return 1.0 - keep.mean(), float(keep[top].mean())


def resolve_k(k: int | str, n: int) -> int:
    """``k`` as a count: an int, or a string like ``"1%"`` (of ``n`` cells, rounded, at least 1)."""
    if isinstance(k, str) and k.endswith("%"):
        return max(1, int(round(float(k[:-1]) / 100 * n)))
    return int(k)


@dataclass(frozen=True)
class RankQuality:
    """All rank metrics of one score on one dataset (see the module docstring for conventions)."""

    n: int
    kendall: float
    spearman: float
    precision: dict[str, float]
    max_pruned: dict[str, float]


def rank_quality(scores: np.ndarray, truth: np.ndarray,
                 ks: Sequence[int | str] = (1, 10, "1%")) -> RankQuality:
    """τ, ρ, top-k precision and the largest pruned fraction that keeps all of the true top-k."""
    t = np.asarray(truth, dtype=np.float64)
    n = int(np.isfinite(t).sum())
    precision, max_pruned = {}, {}
    for k in ks:
        kk = resolve_k(k, n)
        precision[str(k)] = top_k_precision(scores, truth, kk)
        max_pruned[str(k)] = prefilter_curve(scores, truth, kk).max_pruned_keeping(1.0)
    return RankQuality(n, kendall_tau(scores, truth), spearman_rho(scores, truth), precision, max_pruned)


def bootstrap_ci(score: np.ndarray, truth: np.ndarray, reps: int, rng: np.random.Generator,
                 kendall: bool = False) -> tuple[float, float]:
    """95 % percentile-bootstrap interval of Spearman ρ (or Kendall τ) over resampled cells.

    This is the sampling error of a figure measured on a sample of cells, i.e. how far it may be
    from the value on the population the cells were drawn from. ρ is vectorized over replicates
    (ranks per row); τ has no cheap vectorized form, so callers ask for it with fewer ``reps``.
    """
    ok = np.isfinite(score) & np.isfinite(truth)
    x, y = score[ok], truth[ok]
    draws = rng.integers(0, len(x), size=(reps, len(x)))
    if kendall:
        values = np.array([kendall_tau(x[d], y[d]) for d in draws])
    else:
        rx, ry = stats.rankdata(x[draws], axis=1), stats.rankdata(y[draws], axis=1)
        rx -= rx.mean(axis=1, keepdims=True)
        ry -= ry.mean(axis=1, keepdims=True)
        with np.errstate(invalid="ignore", divide="ignore"):  # a constant replicate: NaN, skipped
            values = (rx * ry).sum(1) / np.sqrt((rx * rx).sum(1) * (ry * ry).sum(1))
    lo, hi = np.nanpercentile(values, [2.5, 97.5])
    return float(lo), float(hi)
