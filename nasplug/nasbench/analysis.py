"""Table-lookup experiments on a benchmark: what a filter removes, and search with and without it.

[C22 §5.3] prunes NAS-Bench-201 to a box in the (d̄, m̄) plane and reports that NASWOT ("WOT")
finds better cells faster inside it (Table 2: WOT 92.81 → WOT+DAG 92.98 % on CIFAR-10, 30.0 s →
17.9 s). With the full accuracy table the same question has exact answers and needs no training:
how good is what the box keeps versus what it removes, and what does a search that samples only
inside the box find for a given budget?

All searches are vectorized over seeds: one ``(seeds, K)`` matrix of sampled cells per pool.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from nasplug.checks import integer
from nasplug.nasbench.metrics import filter_point, resolve_k


@dataclass(frozen=True)
class FilterStats:
    """What a boolean filter keeps and removes, measured on one accuracy column."""

    name: str
    n: int
    kept: int
    kept_mean: float
    removed_mean: float
    kept_median: float
    removed_median: float
    kept_best: float
    removed_best: float
    top_kept: dict[str, float]  # k label -> fraction of the true top-k the filter keeps

    @property
    def kept_fraction(self) -> float:
        return self.kept / self.n


def filter_stats(name: str, keep: np.ndarray, truth: np.ndarray,
                 ks: Sequence[int | str] = (1, 10, "1%")) -> FilterStats:
    """Accuracy of the kept and the removed cells (cells with NaN truth are ignored)."""
    keep = np.asarray(keep, dtype=bool)
    truth = np.asarray(truth, dtype=np.float64)
    ok = np.isfinite(truth)
    keep, truth = keep[ok], truth[ok]
    kept, removed = truth[keep], truth[~keep]

    def stat(fn, values):
        return float(fn(values)) if len(values) else float("nan")

    return FilterStats(
        name, len(truth), int(keep.sum()),
        stat(np.mean, kept), stat(np.mean, removed), stat(np.median, kept), stat(np.median, removed),
        stat(np.max, kept), stat(np.max, removed),
        {str(k): filter_point(keep, truth, resolve_k(k, len(truth)))[1] for k in ks},
    )


def _sample_without_replacement(pool: np.ndarray, size: int, seeds: int,
                                rng: np.random.Generator) -> np.ndarray:
    """``(seeds, size)`` positions into ``pool``, distinct within each row (uniform order)."""
    size = min(size, len(pool))
    if size * 20 < len(pool):
        # rejection-free for small budgets: draw with replacement and redraw the rare duplicates
        out = rng.integers(0, len(pool), size=(seeds, size))
        for row in out:
            while len(np.unique(row)) < size:
                _, first = np.unique(row, return_index=True)
                dup = np.setdiff1d(np.arange(size), first)
                row[dup] = rng.integers(0, len(pool), size=len(dup))
        return pool[out]
    keys = rng.random((seeds, len(pool)))
    return pool[np.argsort(keys, axis=1)[:, :size]]


@dataclass(frozen=True)
class SearchResult:
    """Best accuracy found after each budget, over many seeds."""

    label: str
    budgets: tuple[int, ...]
    mean: np.ndarray
    std: np.ndarray
    p10: np.ndarray
    hit_optimum: np.ndarray  # fraction of seeds that found the global optimum (of the full table)


def _no_cells(label: str, budgets: tuple[int, ...]) -> SearchResult:
    """The result of a search whose pool is empty (a filter that keeps no benchmark cell): NaN."""
    nan = np.full(len(budgets), np.nan)
    return SearchResult(label, budgets, nan, nan, nan, nan)


def random_search(truth: np.ndarray, budgets: Sequence[int], *, keep: np.ndarray | None = None,
                  seeds: int = 1000, rng: int = 0, label: str = "random") -> SearchResult:
    """Random search by table lookup: sample ``K`` distinct cells (from ``keep`` if given) and
    report the best true accuracy among them, for every ``K`` in ``budgets``.

    Cells with NaN truth are never sampled (they are not in the benchmark); an empty pool gives
    NaN. Raises :class:`~nasplug.errors.NasplugError` for ``seeds < 1`` or a budget below 1.
    """
    integer("seeds", seeds, 1)
    truth = np.asarray(truth, dtype=np.float64)
    ok = np.isfinite(truth) if keep is None else np.isfinite(truth) & np.asarray(keep, dtype=bool)
    pool = np.flatnonzero(ok)
    budgets = tuple(integer("budget", b, 1) for b in budgets)
    if len(pool) == 0:
        return _no_cells(label, budgets)
    picks = _sample_without_replacement(pool, max(budgets), seeds, np.random.default_rng(rng))
    best = np.maximum.accumulate(truth[picks], axis=1)
    cols = [min(b, best.shape[1]) - 1 for b in budgets]
    at = best[:, cols]
    optimum = np.nanmax(truth)
    return SearchResult(label, budgets, at.mean(axis=0), at.std(axis=0), np.percentile(at, 10, axis=0),
                        (at >= optimum).mean(axis=0))


def score_guided_search(scores: np.ndarray, truth: np.ndarray, samples: Sequence[int], *,
                        keep: np.ndarray | None = None, seeds: int = 1000, rng: int = 0,
                        label: str = "score") -> SearchResult:
    """The table-lookup analogue of [C22]'s WOT / WOT+DAG runs: sample ``N`` cells (from ``keep``
    if given), train only the one with the best training-free score, report its true accuracy.

    ``scores`` are oriented higher-is-better. Ties among the best-scored samples are broken
    uniformly at random (the first in a random sampling order), which is what a search that
    cannot tell tied cells apart gets on average.
    """
    integer("seeds", seeds, 1)
    truth = np.asarray(truth, dtype=np.float64)
    scores = np.nan_to_num(np.asarray(scores, dtype=np.float64), nan=-np.inf)
    ok = np.isfinite(truth) if keep is None else np.isfinite(truth) & np.asarray(keep, dtype=bool)
    pool = np.flatnonzero(ok)
    samples = tuple(integer("samples", s, 1) for s in samples)
    if len(pool) == 0:
        return _no_cells(label, samples)
    generator = np.random.default_rng(rng)
    means, stds, p10s, hits = [], [], [], []
    optimum = np.nanmax(truth)
    for n in samples:
        picks = _sample_without_replacement(pool, n, seeds, generator)
        chosen = picks[np.arange(seeds), np.argmax(scores[picks], axis=1)]
        acc = truth[chosen]
        means.append(acc.mean())
        stds.append(acc.std())
        p10s.append(np.percentile(acc, 10))
        hits.append((acc >= optimum).mean())
    return SearchResult(label, samples, np.array(means), np.array(stds), np.array(p10s), np.array(hits))
