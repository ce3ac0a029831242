"""A rank ensemble of registered scorers as a per-architecture score, fitted on a search space.

Scorers measure different things on different scales, so they are combined by their *ranks*
(:func:`aggregate_ranks`). A rank is relative to a reference set; fitting on a space fixes that set
(the whole space, or a seeded uniform sample when it is too large,
:meth:`~nasplug.search_spaces.DigitSpace.fit_batch`, or given cells), after which any architecture
gets a score: each member's normalized mid-rank of its value among the reference values (the
empirical CDF), then the weighted mean (or log-mean) over members. On the reference cells themselves
this equals ``nasplug rank --aggregate`` (:func:`~nasplug.ranking.rank_aggregate`).

The default members, :data:`RECOMMENDED`, were chosen by the pre-registered protocol of
``benchmarks/ntk_ensemble.py`` on a random half of NAS-Bench-201 with CIFAR-10 only
(docs/ntk_ranking.md): held-out Spearman ρ 0.893 / 0.869 / 0.836 on CIFAR-10 / CIFAR-100 /
ImageNet16-120.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from nasplug.errors import NasplugError
from nasplug.graph import ArchBatch
from nasplug.scorers.base import Archs, BatchScorer, fit_cells, oriented
from nasplug.scorers.registry import entry, get, register
from nasplug.search_spaces import DigitSpace


def normalized_ranks(values: np.ndarray) -> np.ndarray:
    """Average ranks scaled to (0, 1], best = 1 (higher value = better); NaN ranks lowest."""
    from scipy.stats import rankdata

    v = np.nan_to_num(np.asarray(values, dtype=np.float64), nan=-np.inf)
    return rankdata(v, method="average") / len(v)


AGGREGATION_MODES: tuple[str, ...] = ("mean", "log")


def rank_table(scores: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Normalized ranks of every score (oriented higher-is-better) and, under ``"-" + name``, of its
    reverse: what :func:`aggregate_ranks` and :func:`nasplug.ranking.select_rank_ensemble` read."""
    out = {}
    for name, values in scores.items():
        out[name] = normalized_ranks(values)
        out["-" + name] = normalized_ranks(-np.asarray(values, dtype=np.float64))
    return out


def aggregate_ranks(ranks: Mapping[str, np.ndarray], weights: Mapping[str, float],
                    mode: str = "mean") -> np.ndarray:
    """``Σ |w| · r / Σ |w|`` (``mode="mean"``) or ``Σ |w| · log r / Σ |w|`` (``"log"``, AZ-NAS's
    aggregation, which punishes a cell that any member ranks near the bottom) over the members of
    ``weights``; a negative weight reads the reversed ranks ``ranks["-" + name]`` (:func:`rank_table`).
    Higher result = better cell."""
    if not weights:
        raise NasplugError("a rank aggregate needs at least one weighted scorer")
    if mode not in AGGREGATION_MODES:
        raise NasplugError(f"unknown aggregation mode {mode!r}; use 'mean' or 'log'")
    total = 0.0
    for name, w in weights.items():
        key = name if w >= 0 else "-" + name
        if key not in ranks:
            raise NasplugError(f"rank aggregate: no ranks for {key!r}")
        total = total + abs(w) * (np.log(ranks[key]) if mode == "log" else ranks[key])
    return total / sum(abs(w) for w in weights.values())


#: Members and weights chosen by benchmarks/ntk_ensemble.py (split 0, CIFAR-10 tuning half).
RECOMMENDED: dict[str, float] = {"ntk_lambda_min": 1.0, "effective_depth": 1.0, "nngp_inverse_condition": 1.0}


class RankEnsemble(BatchScorer):
    """Weighted mean (``mode="mean"``) or log-mean (``"log"``) of the members' normalized ranks
    among reference values; higher is better. A negative weight uses a member in reverse.

    Parameters
    ----------
    members
        Built scorers by name, with their weights.
    reference
        Per member, its values on the reference cells, oriented higher-is-better.
    """

    def __init__(self, members: Mapping[str, tuple[object, float]], reference: Mapping[str, np.ndarray],
                 mode: str = "mean", name: str = "rank_ensemble"):
        if mode not in AGGREGATION_MODES:
            raise NasplugError(f"unknown aggregation mode {mode!r}; use 'mean' or 'log'")
        self.members, self.mode, self.name = dict(members), mode, name
        self._sorted = {n: np.sort(np.nan_to_num(np.asarray(v, dtype=np.float64), nan=-np.inf))
                        for n, v in reference.items()}
        terms = ", ".join(f"{n} × {w:+g}" for n, (_, w) in self.members.items())
        self.description = f"{mode} rank of {terms}"

    @classmethod
    def fit(cls, space: DigitSpace | str | Archs, members: Mapping[str, float] = RECOMMENDED,
            mode: str = "mean", rng: int = 0) -> RankEnsemble:
        """Build the member scorers (fitted on ``space`` when they take one) and their reference values
        on :func:`~nasplug.scorers.base.fit_cells` of ``space``: the whole space, a seeded sample of a
        large one, or the given cells (e.g. a benchmark's)."""
        if not members:
            raise NasplugError("a rank ensemble needs at least one member")
        built = {}
        for name, weight in members.items():
            found = entry(name)
            if found.kind != "scorer":
                raise NasplugError(f"ensemble member {name!r} is a {found.kind}, not a scorer")
            if found.slow:
                raise NasplugError(f"ensemble member {name!r} builds a network per cell: too slow to fit "
                                   "on a whole space")
            if not (np.isfinite(weight) and weight != 0):
                raise NasplugError(f"ensemble weight of {name!r} must be a non-zero number, got {weight}")
            built[name] = (get(name, space=space) if found.takes_space else get(name), float(weight))
        cells = fit_cells(space, rng)
        reference = {n: oriented(s.score_many(cells), s.higher_is_better) for n, (s, _) in built.items()}
        return cls(built, reference, mode)

    def score_batch(self, batch: ArchBatch) -> np.ndarray:
        ranks = {}
        for name, (scorer, _) in self.members.items():
            ref = self._sorted[name]
            v = np.nan_to_num(oriented(scorer.score_many(batch), scorer.higher_is_better), nan=-np.inf)
            left, right = np.searchsorted(ref, v, "left"), np.searchsorted(ref, v, "right")
            ranks[name] = (left + right + 1) / (2 * len(ref))  # normalized_ranks' mid-rank, in (0, 1]
            ranks["-" + name] = (len(ref) + 1) / len(ref) - ranks[name]  # that of the reversed values
        return aggregate_ranks(ranks, {n: w for n, (_, w) in self.members.items()}, self.mode)


@register("rank_ensemble", "scorer",
          "mean rank of ntk_lambda_min, effective_depth, nngp_inverse_condition over the space "
          "(chosen on held-out NB201 halves, CIFAR-10 only; docs/ntk_ranking.md)")
def rank_ensemble(space: DigitSpace | str | Archs = "nb201", members: Mapping[str, float] = RECOMMENDED,
                  mode: str = "mean") -> RankEnsemble:
    return RankEnsemble.fit(space, members, mode)
